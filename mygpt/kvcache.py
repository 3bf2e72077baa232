"""The KV cache: keys and values of the positions a decoder has seen, kept for the next step.

`KVCache` holds a whole context window for a batch of sequences that are all at the same
position (`generate`); `RowPositions` is how a batch whose rows are each at their own
position (`batching.Batch`) tells `model.transformer` where each row's new token goes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from mygpt.config import ModelConfig

KV = tuple[torch.Tensor, torch.Tensor]  # one layer's cached keys and values, each (B, n_head, block_size, head_size)


class RowPositions(NamedTuple):
    """Rows of a batch each at its own position, with one new token each: batched
    decoding of requests that started at different times (mygpt/batching.py)."""

    pos: torch.Tensor  # (B,) the position each row's new token takes
    span: int  # max(pos) + 1: the cached positions the rows attend over
    visible: Optional[torch.Tensor]  # (B, 1, 1, span) bool, the keys each row may see; None when all rows see all


class KVCache:
    """Keys and values of the positions seen so far, pre-allocated for a whole context window.

    One tensor of shape (n_layer, B, n_head, block_size, head_size) for keys and one for
    values. `pos` counts the filled positions; `transformer` writes and advances it.
    """

    def __init__(self, config: ModelConfig, batch_size: int, device: torch.device, dtype: torch.dtype = torch.float32):
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.head_size)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0
        self._layers = list(zip(self.k, self.v, strict=False))  # views, made once: a decoding step reads them per layer

    @classmethod
    def over(cls, k: torch.Tensor, v: torch.Tensor) -> KVCache:
        """A cache over existing storage (n_layer, B, n_head, block_size, head_size): e.g.
        one row of a batch cache, filled by a prompt of its own."""
        cache = cls.__new__(cls)
        cache.k, cache.v, cache.pos, cache._layers = k, v, 0, list(zip(k, v, strict=False))
        return cache

    def layer(self, i: int) -> KV:
        return self._layers[i]  # (B, nh, block_size, hs) each

    def advance(self, T: int) -> None:
        self.pos += T

    def reset(self) -> None:
        self.pos = 0

    def repeat(self, n: int) -> None:
        """Copy a batch-of-one cache into n rows (several samples share one prompt prefill)."""
        self.select(torch.zeros(n, dtype=torch.long, device=self.k.device))

    def select(self, rows: torch.Tensor) -> None:
        """Keep the given rows, in that order, repeated as often as they are named (beam
        search keeps the best continuations of the beams it had)."""
        self.k = self.k.index_select(1, rows)  # (n_layer, len(rows), nh, block_size, hs)
        self.v = self.v.index_select(1, rows)
        self._layers = list(zip(self.k, self.v, strict=False))
