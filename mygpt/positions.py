"""Position tables: the fixed encodings a model adds to, or rotates, its tokens with.

- `sinusoids`: the Transformer paper's sin/cos table, added to the token embeddings
  (`ModelConfig.pos = "sinusoidal"`), scaled down so it does not drown them.
- `rope_table`: RoPE's rotations as (cos, sin) pairs, applied to queries and keys
  (`pos = "rope"`) by `rope_rotate`; `rope_angles` are their angles.

Computed in float64 and stored in float32, once per model (buffers, not parameters:
nothing to save or load).
"""

from __future__ import annotations

import torch

ROPE_BASE = 10000.0  # RoPE's wavelengths run from 2*pi to ROPE_BASE*2*pi


def sinusoids(length: int, n_embd: int, scale: float = 0.1) -> torch.Tensor:
    """The fixed position encoding of "Attention Is All You Need": sin on even channels,
    cos on odd ones, wavelengths from 2*pi to 10000*2*pi. Shape (length, n_embd).

    Scaled by 0.1: at full size (rms 0.7) it drowns the token embeddings, initialised with
    std 0.02, and training stalls."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, n_embd, 2, dtype=torch.float64) / n_embd)  # (ceil(C/2),)
    table = torch.zeros(length, n_embd, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq[: n_embd // 2])
    return (scale * table).float()


def rope_angles(length: int, head_size: int, base: float = ROPE_BASE) -> torch.Tensor:
    """RoPE rotation angles position * base^(-2i/head_size), shape (length, head_size/2)."""
    inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)  # (hs/2,)
    return (torch.arange(length, dtype=torch.float64)[:, None] * inv_freq).float()  # (L, hs/2)


def rope_table(length: int, head_size: int) -> torch.Tensor:
    """cos and sin of `rope_angles`, shape (length, head_size/2, 2): viewed as complex, the
    unit rotations themselves, computed once rather than at every forward pass."""
    angles = rope_angles(length, head_size).double()  # (L, hs/2)
    return torch.stack([angles.cos(), angles.sin()], dim=-1).float()  # (L, hs/2, 2)


def rope_rotate(qk: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) channel pair of qk (B, T, H, hs) by the unit complex
    numbers rot (T, 1, hs/2): RoPE, as one complex multiplication. Returns float32
    whatever qk's dtype (complex bf16 does not exist)."""
    B, T, H, hs = qk.shape
    if qk.dtype != torch.float32:
        qk = qk.float()
    pairs = torch.view_as_complex(qk.view(B, T, H, hs // 2, 2))  # (B, T, H, hs/2) complex
    return torch.view_as_real(pairs * rot).reshape(B, T, H, hs)  # (B, T, H, hs)
