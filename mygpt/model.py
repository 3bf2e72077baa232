"""The GPT model: a decoder-only transformer shaped like GPT-2.

Design choices:
- Token embeddings plus one of three position schemes (`ModelConfig.pos`): learned
  (GPT-2's), sinusoidal (fixed), or RoPE (rotary, applied to queries and keys, so that
  attention scores depend only on how far apart two tokens are).
- Pre-LayerNorm blocks, final LayerNorm.
- Causal self-attention through `F.scaled_dot_product_attention` (flash / memory-
  efficient kernels where available; no mask buffer to rebuild after loading).
- GELU MLP with 4x expansion: exact GELU, or GPT-2's tanh approximation (`gelu="tanh"`).
- The LM head shares its weight with the token embedding (weight tying; optional).
- GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer).
- GPT-2 parameter names (transformer.wte, transformer.h.N.attn.c_attn, ..., ln_f,
  lm_head), so GPT-2 weights map onto this model name for name.

`forward(idx, cache=None)` always returns logits of shape (B, T, padded_vocab_size); the
loss belongs to the caller, and samplers ignore the padding rows (ids >= vocab_size).
A `KVCache` passed in explicitly makes generation incremental (`mygpt.decode` has the
same computation for one new token per row, written flat for speed).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mygpt.config import ModelConfig

KV = tuple[torch.Tensor, torch.Tensor]  # one layer's cached keys and values, each (B, n_head, block_size, head_size)


def _dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    # Skipping the call entirely when it is a no-op saves a few microseconds per layer,
    # which is a real share of a one-token decoding step on a small model.
    return F.dropout(x, p, True) if training and p > 0 else x


def rope_rotate(qk: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) channel pair of qk (B, T, H, hs) by the angles in freqs
    (T, hs/2), a complex tensor of unit length: RoPE, as one complex multiplication.
    Returns float32 whatever qk's dtype (complex bf16 does not exist)."""
    B, T, H, hs = qk.shape
    pairs = torch.view_as_complex(qk.float().reshape(B, T, H, hs // 2, 2))  # (B, T, H, hs/2) complex
    return torch.view_as_real(pairs * freqs[:, None, :]).reshape(B, T, H, hs)  # (B, T, H, hs)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

    def forward(
        self, x: torch.Tensor, kv: Optional[KV] = None, start: int = 0, freqs: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        B, T, C = x.shape  # batch, time, channels (n_embd)
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C)
        qk = qkv[..., : 2 * C].reshape(B, T, 2 * nh, hs)  # (B, T, 2nh, hs): queries and keys
        if freqs is not None:  # RoPE: rotate queries and keys together, by position (in fp32)
            qk = rope_rotate(qk, freqs)  # (B, T, 2nh, hs)
        q, k = qk.transpose(1, 2).split(nh, dim=1)  # 2 x (B, nh, T, hs)
        v = qkv[..., 2 * C :].reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        mask, causal = None, True
        if kv is not None:
            k, v, mask, causal = _with_cache(kv, k, v, start)
        dropout_p = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and qkv.dtype == torch.bfloat16:
            # PyTorch's CPU attention kernels are several times slower in bf16 than in
            # fp32 at these sizes (forward + backward at B=12, T=64: 3.4 ms vs 0.8 ms).
            # Autocast would cast fp32 inputs straight back to bf16, so it is paused here.
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(
                    q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout_p, is_causal=causal
                ).to(qkv.dtype)  # (B, nh, T, hs)
        else:
            q, k = q.to(v.dtype), k.to(v.dtype)  # RoPE computes in fp32
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal
            )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return _dropout(self.c_proj(y), self.dropout, self.training)  # (B, T, C)


def _with_cache(
    kv: KV, k: torch.Tensor, v: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], bool]:
    """Write this chunk's keys/values (positions start..start+T-1) into the cache and
    return the keys/values to attend to, with the mask that keeps attention causal."""
    k_cache, v_cache = kv  # (B, nh, block_size, hs) each
    T = k.size(2)
    k_cache[:, :, start : start + T] = k
    v_cache[:, :, start : start + T] = v
    k, v = k_cache[:, :, : start + T], v_cache[:, :, : start + T]  # (B, nh, start+T, hs)
    if start == 0:
        return k, v, None, True
    if T == 1:  # the newest position sees every key so far: no mask needed
        return k, v, None, False
    # query i sits at position start+i: it may see keys 0..start+i
    mask = torch.ones(T, start + T, dtype=torch.bool, device=k.device).tril(diagonal=start)  # (T, start+T)
    return k, v, mask, False


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = config.dropout
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2 used the tanh approximation ("gelu_new"); PyTorch's CPU kernel for it is
        # ~3x slower than the exact one, and the two differ by < 1e-3.
        self.gelu = nn.GELU(approximate="tanh" if config.gelu == "tanh" else "none")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c_proj(self.gelu(self.c_fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return _dropout(x, self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, kv: Optional[KV] = None, start: int = 0, freqs: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, start, freqs)  # (B, T, C): tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # (B, T, C): each token thinks on its own
        return x


class GPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set to build a model (it comes from the tokenizer).")
        self.config = config
        # token embedding; padded_vocab_size >= vocab_size rows (see ModelConfig.vocab_multiple)
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(config.padded_vocab_size, config.n_embd)))
        if config.pos == "learned":
            self.transformer.wpe = nn.Embedding(config.block_size, config.n_embd)  # learned position embedding
        elif config.pos == "sinusoidal":  # fixed, not a parameter: no weights to save
            self.register_buffer("pos_table", sinusoids(config.block_size, config.n_embd), persistent=False)
        else:  # rope: the rotation of each position and channel pair, as (cos, sin)
            self.register_buffer("rope_cis", rope_table(config.block_size, config.head_size), persistent=False)
        self.transformer.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.transformer.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
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
        """Logits (B, T, padded_vocab_size) for every position of idx (B, T).

        With a cache, idx continues the sequence the cache holds: its positions start at
        cache.pos, its keys and values are written into the cache, and the cache is
        advanced here, in this one place.
        """
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than block_size={self.config.block_size}")
        x = self.transformer.wte(idx)  # (B, T, C)
        freqs = None
        if self.config.pos == "learned":
            x = x + self.transformer.wpe.weight[start : start + T]  # (B, T, C) + (T, C)
        elif self.config.pos == "sinusoidal":
            x = x + self.pos_table[start : start + T].to(x.dtype)  # (B, T, C) + (T, C)
        else:
            freqs = self._rope_freqs(start, T)  # (T, hs/2) complex
        x = _dropout(x, self.config.dropout, self.training)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layer(i) if cache is not None else None, start, freqs)  # (B, T, C)
        x = self.transformer.ln_f(x)  # (B, T, C)
        if cache is not None:
            cache.pos += T
        return self.lm_head(x)  # (B, T, padded_vocab_size)

    def _rope_freqs(self, start: int, T: int) -> torch.Tensor:
        """Unit complex numbers e^(i * position * frequency) for positions start..start+T-1."""
        return torch.view_as_complex(self.rope_cis[start : start + T])  # (T, hs/2) complex


def sinusoids(length: int, n_embd: int, scale: float = 0.1) -> torch.Tensor:
    """The fixed position encoding of "Attention Is All You Need": sin on even channels,
    cos on odd ones, wavelengths from 2*pi to 10000*2*pi. Shape (length, n_embd).

    Scaled by 0.1: at full size (rms 0.7) it drowns the token embeddings, initialised
    with std 0.02, and training stalls (Tiny Shakespeare, 400 steps: val 2.87 at scale 1,
    2.04 at 0.1, 2.14 at 0.03; learned positions 2.05)."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, n_embd, 2, dtype=torch.float64) / n_embd)  # (ceil(C/2),)
    table = torch.zeros(length, n_embd, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq[: n_embd // 2])
    return (scale * table).float()


def rope_angles(length: int, head_size: int, base: float = 10000.0) -> torch.Tensor:
    """RoPE rotation angles position * base^(-2i/head_size), shape (length, head_size/2)."""
    inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)  # (hs/2,)
    return (torch.arange(length, dtype=torch.float64)[:, None] * inv_freq).float()  # (L, hs/2)


def rope_table(length: int, head_size: int) -> torch.Tensor:
    """cos and sin of `rope_angles`, shape (length, head_size/2, 2): viewed as complex, the
    unit rotations themselves, computed once rather than at every forward pass."""
    angles = rope_angles(length, head_size).double()  # (L, hs/2)
    return torch.stack([angles.cos(), angles.sin()], dim=-1).float()  # (L, hs/2, 2)


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
