"""The GPT model: a decoder-only transformer shaped like GPT-2.

Design choices:
- Token + learned position embeddings, pre-LayerNorm blocks, final LayerNorm.
- Causal self-attention through `F.scaled_dot_product_attention` (flash / memory-
  efficient kernels where available; no mask buffer to rebuild after loading).
- GELU MLP with 4x expansion, tanh approximation as in GPT-2.
- The LM head shares its weight with the token embedding (weight tying; optional).
- GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer).
- GPT-2 parameter names (transformer.wte, transformer.h.N.attn.c_attn, ..., ln_f,
  lm_head), so GPT-2 weights map onto this model name for name.

`forward(idx, cache=None)` always returns logits of shape (B, T, vocab_size); the loss
belongs to the caller. A `KVCache` passed in explicitly makes generation incremental.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mygpt.config import ModelConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, kv: Optional[tuple[torch.Tensor, torch.Tensor]] = None, start: int = 0) -> torch.Tensor:
        B, T, C = x.shape  # batch, time, channels (n_embd)
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        mask, causal = None, True
        if kv is not None:  # write this chunk's keys/values at positions start.., attend to all so far
            k_cache, v_cache = kv  # (B, nh, block_size, hs) each
            k_cache[:, :, start : start + T] = k
            v_cache[:, :, start : start + T] = v
            k, v = k_cache[:, :, : start + T], v_cache[:, :, : start + T]  # (B, nh, start+T, hs)
            if start > 0:  # query i sits at position start+i: it may see keys 0..start+i
                causal = False
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)  # (T, start+T)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv: Optional[tuple[torch.Tensor, torch.Tensor]] = None, start: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, start)  # (B, T, C): tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # (B, T, C): each token thinks on its own
        return x


class GPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set to build a model (it comes from the tokenizer).")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embedding
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight  # tied: one matrix reads and writes tokens
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                # Each block adds two residual contributions; scaling keeps the residual
                # stream's variance from growing with depth (GPT-2 paper, section 2.3).
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters, counting a tied embedding / head matrix once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        """Logits (B, T, vocab_size) for every position of idx (B, T).

        With a cache, idx continues the sequence the cache holds: its positions start at
        cache.pos, its keys and values are written into the cache, and the cache is
        advanced here, in this one place.
        """
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than block_size={self.config.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C) + (T, C) -> (B, T, C)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layer(i) if cache is not None else None, start)  # (B, T, C)
        x = self.transformer.ln_f(x)  # (B, T, C)
        if cache is not None:
            cache.pos += T
        return self.lm_head(x)  # (B, T, vocab_size)


class KVCache:
    """Keys and values of the positions seen so far, pre-allocated for a whole context window.

    One tensor of shape (n_layer, B, n_head, block_size, head_size) for keys and one for
    values. `pos` counts the filled positions; GPT.forward writes and advances it.
    """

    def __init__(self, config: ModelConfig, batch_size: int, device: torch.device, dtype: torch.dtype = torch.float32):
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.head_size)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0

    @property
    def full(self) -> bool:
        return self.pos == self.k.size(3)

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k[i], self.v[i]  # (B, nh, block_size, hs) each

    def reset(self) -> None:
        self.pos = 0

    def repeat(self, n: int) -> None:
        """Copy a batch-of-one cache into n rows (several samples share one prompt prefill)."""
        self.k = self.k.repeat(1, n, 1, 1, 1)  # (n_layer, n, nh, block_size, hs)
        self.v = self.v.repeat(1, n, 1, 1, 1)
