"""Continuous batching: many sequences decoded together, each joining and leaving at any step.

`Batch` holds the rows being decoded (one per choice of each request) and one KV cache
with a slot per row, each slot at its own position. A step (`sample`, then `feed`) samples one
token for every row, each with its own settings and random generator, then feeds the new
tokens back in one forward pass for all rows (`kvcache.RowPositions`: each row writes its
key and value at its own position and attends only to its own past). A row that joins is
prefilled alone in its slot; one that leaves hands its slot to the last row, so the rows in
use are always slots 0..n-1 and a step reads them as one view.

Every row follows `sampling.generate`'s rules, so a row decoded alone gives exactly the
text `generate` gives: the prompt keeps its last block_size tokens, the first token is
sampled from the prefill's logits, and when the context is full the row restarts from its
most recent `keep_after_full` tokens (a re-prefill of its slot). Rows decoded together
differ from that only by floating-point rounding.

This module computes; mygpt/engine.py runs it in a thread and talks to requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from mygpt import device as devices
from mygpt.kvcache import KVCache, RowPositions
from mygpt.model import GPT
from mygpt.sampling import keep_after_full, last, race_winners, token_probs


@dataclass
class RowSettings:
    """How one row samples: `generate`'s settings for one sample."""

    temperature: float = 0.8
    top_k: Optional[int] = None
    top_p: float = 1.0
    seed: int = 0


@dataclass(eq=False)  # rows are told apart by identity
class Row:
    """One sequence being decoded. `owner` is whatever the caller uses to route its tokens."""

    owner: object
    settings: RowSettings
    context: list[int]  # the tokens in the window, the newest last
    generator: torch.Generator
    logits: Optional[torch.Tensor] = None  # (1, vocab_size): where the next token is sampled from
    length: int = 0  # positions filled in the row's cache slot
    tokens: list[int] = field(default_factory=list)  # sampled so far


class Batch:
    """The rows decoded together and their KV cache: at most `rows` at a time."""

    def __init__(self, model: GPT, rows: int, device: torch.device):
        self.model, self.device, self.capacity = model, device, rows
        self.config = model.config
        self.vocab_size = model.config.vocab_size
        dtype = devices.inference_dtype(device)
        self.autocast = devices.autocast(device, dtype)
        devices.configure(device)
        model.eval()
        self.cache = KVCache(model.config, rows, device, dtype)  # (n_layer, rows, nh, block_size, hs) each
        self.step_fn = model.decoder()
        self.rows: list[Row] = []

    @property
    def free(self) -> int:
        return self.capacity - len(self.rows)

    @torch.inference_mode()
    def add(self, owner: object, prompt: Sequence[int], settings: Sequence[RowSettings]) -> list[Row]:
        """Add one row per settings, all continuing `prompt`: it is prefilled once and the
        slot copied to the others. Raises ValueError for an empty prompt or too few free
        slots; if the prefill fails, nothing is added."""
        if not prompt:
            raise ValueError("an empty prompt: there is nothing to continue")
        if len(settings) > self.free or not settings:
            raise ValueError(f"{len(settings)} rows asked for, {self.free} free")
        context = list(prompt)[-self.config.block_size :]
        first, slot = self._row(owner, settings[0], context), len(self.rows)
        self._prefill(first, slot)  # before the row joins: a prompt that fails leaves the batch as it was
        self.rows.append(first)
        for s in settings[1:]:
            row = self._row(owner, s, context)
            self._copy_slot(slot, len(self.rows), first.length)
            row.length, row.logits = first.length, first.logits
            self.rows.append(row)
        return self.rows[slot:]

    def _row(self, owner: object, settings: RowSettings, context: list[int]) -> Row:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(settings.seed)
        return Row(owner, settings, list(context), generator)

    @torch.inference_mode()
    def sample(self) -> list[int]:
        """One next token for every row, from its logits, with its own settings and generator.

        Rows with the same settings are sampled together, each with draws from its own
        generator: the same tokens as `sample_next_token` gives each row alone."""
        groups: dict[tuple, list[int]] = {}
        for i, row in enumerate(self.rows):
            s = row.settings
            groups.setdefault((s.temperature, s.top_k, s.top_p), []).append(i)
        ids = [0] * len(self.rows)
        for (temperature, top_k, top_p), members in groups.items():
            logits = torch.cat([self.rows[i].logits for i in members])  # (G, V)
            if temperature == 0:
                picked = logits.argmax(dim=-1)  # (G,)
            else:
                probs = token_probs(logits, temperature, top_k, top_p)  # (G, V)
                race = torch.empty_like(probs)
                for j, i in enumerate(members):
                    race[j].exponential_(generator=self.rows[i].generator)  # (V,) from the row's own generator
                picked = race_winners(probs, race)  # (G,)
            for i, token in zip(members, picked.tolist(), strict=True):
                ids[i] = token
        for row, token in zip(self.rows, ids, strict=True):
            row.tokens.append(token)
        return ids

    def remove(self, rows: Sequence[Row]) -> None:
        """Take rows out of the batch (finished, or nobody is waiting for them)."""
        for row in rows:
            i = self.rows.index(row)
            last_i = len(self.rows) - 1
            if i != last_i:  # the last row moves into the freed slot: slots 0..n-1 stay in use
                self._copy_slot(last_i, i, self.rows[last_i].length)
                self.rows[i] = self.rows[last_i]
            self.rows.pop()

    @torch.inference_mode()
    def feed(self) -> None:
        """Feed every row's newest token: each row then has logits for its next token.

        A row whose context is full restarts from its recent tokens, prefilled alone; it
        is moved to the end first, and the others take one forward pass together."""
        full = [r for r in self.rows if len(r.context) + 1 > self.config.block_size]
        m = len(self.rows) - len(full)
        holes = [i for i, r in enumerate(self.rows[:m]) if r in full]
        movers = [j for j, r in enumerate(self.rows[m:], m) if r not in full]
        for i, j in zip(holes, movers, strict=True):  # the rows fed together take slots 0..m-1
            self._copy_slot(j, i, self.rows[j].length)
            self.rows[i], self.rows[j] = self.rows[j], self.rows[i]
        together = self.rows[:m]  # in slot order
        for row in self.rows:
            row.context.append(row.tokens[-1])
        for i, row in enumerate(self.rows[m:], m):
            del row.context[: len(row.context) - keep_after_full(self.config.block_size)]
            self._prefill(row, i)
        if together:
            self._step(together)

    def _step(self, rows: list[Row]) -> None:
        lengths = [r.length for r in rows]
        span = max(lengths) + 1
        pos = torch.tensor(lengths, device=self.device)  # (B,)
        visible = None
        if min(lengths) != span - 1:  # rows at different places: each sees only its own past
            visible = (torch.arange(span, device=self.device) <= pos[:, None]).view(len(rows), 1, 1, span)
        view = _RowsView(self.cache, len(rows), RowPositions(pos, span, visible))
        idx = torch.tensor([[r.context[-1]] for r in rows], device=self.device)  # (B, 1)
        with self.autocast:
            logits = last(self.step_fn(idx, view), self.vocab_size)  # (B, V)
        for i, row in enumerate(rows):
            row.length += 1
            row.logits = logits[i : i + 1]  # (1, V)

    def _prefill(self, row: Row, i: int) -> None:
        """Fill slot i with the row's context; the row gets the logits of its next token."""
        slot = KVCache.over(self.cache.k.narrow(1, i, 1), self.cache.v.narrow(1, i, 1))
        idx = torch.tensor([row.context], device=self.device)  # (1, T)
        with self.autocast:
            row.logits = last(self.step_fn(idx, slot), self.vocab_size)  # (1, V)
        row.length = len(row.context)

    def _copy_slot(self, src: int, dst: int, length: int) -> None:
        for t in (self.cache.k, self.cache.v):  # (n_layer, rows, nh, block_size, hs)
            t[:, dst, :, :length].copy_(t[:, src, :, :length])


class _RowsView:
    """The first n slots of a batch cache, as `model.transformer` reads a cache."""

    def __init__(self, cache: KVCache, n: int, pos: RowPositions):
        self.pos = pos
        self._layers = [(k.narrow(0, 0, n), v.narrow(0, 0, n)) for k, v in zip(cache.k, cache.v, strict=False)]

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._layers[i]  # (n, nh, block_size, hs) each

    def advance(self, T: int) -> None:
        """The rows' lengths are counted by `Batch`."""
