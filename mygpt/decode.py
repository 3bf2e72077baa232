"""One-token decoding steps: `GPT.forward(idx, cache)` for T = 1, written flat for speed.

A decoding step on a small model is bound by per-operation overhead, not arithmetic:
the 4-layer, 128-wide default model does ~0.1 ms of matmuls in a 0.40 ms step through
`GPT.forward`. `DecodeStep` computes the same thing with less around it, in 0.25 ms
(a 6-layer, 384-wide model: 3.6 -> 1.7 ms; benchmarks/decode_step.py):
- parameters are gathered once, when generation starts (looking a parameter up through
  nn.Module attributes costs ~0.4 us, and a step made ~100 such lookups);
- no module calls, and tensors keep only the dimensions a single position needs;
- attention is a plain softmax over the cached keys (no kernel set-up, no mask);
- the exact GELU runs PyTorch's own kernel rather than oneDNN's (`DecodeStep.__call__`);
- one row times a mid-sized fp32 weight on the CPU is a multiply and a sum (`Linear`).
tests/test_decode.py holds it to `GPT.forward` for every position scheme, with and
without biases, for one row and several.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mygpt.model import GPT, KVCache

# One row times a weight of this many elements goes through a multiply and a sum (see
# `Linear`): below the range the weight sits in cache and BLAS is quicker, above it the
# product's temporary no longer fits in cache (GPT-2's 38M-element head: 5x slower).
ROW_PRODUCT_SIZES = (2**17, 2**22)


class Linear(NamedTuple):
    """An nn.Linear's parameters, applied to x of shape (B, in).

    With a single fp32 row on the CPU and a weight in ROW_PRODUCT_SIZES it computes
    (weight * x).sum(-1): PyTorch's one-row product (MKL gemv) streams the weight at
    about 14 GB/s on this project's AMD EPYC, well below what a plain multiply-and-sum
    reaches (a 6-layer, 384-wide model's 24 one-row products: 3.0 ms with F.linear, 1.7 ms
    this way; 768 x 2304: 424 vs 215 us). Both are exact fp32 products; only the order of
    the additions differs.
    """

    weight: torch.Tensor  # (out, in)
    bias: Optional[torch.Tensor]  # (out,)
    scratch: Optional[torch.Tensor]  # (out, in) when the row product applies, else None

    @staticmethod
    def row_product(layer: nn.Linear) -> bool:
        """Whether one row times this layer's weight is computed as a multiply and a sum."""
        w, (lo, hi) = layer.weight, ROW_PRODUCT_SIZES
        return w.device.type == "cpu" and w.dtype == torch.float32 and lo <= w.numel() <= hi

    @classmethod
    def of(cls, layer: nn.Linear, scratch: Optional[torch.Tensor] = None) -> "Linear":
        """`scratch`: a flat buffer of at least weight.numel() elements for the product's
        temporary, shared by all layers (allocating megabytes per product, thousands of
        times a second, sometimes costs more in page faults than the product itself)."""
        w = layer.weight
        if not cls.row_product(layer):
            return cls(w, layer.bias, None)
        if scratch is None:
            scratch = torch.empty(w.numel(), dtype=w.dtype, device=w.device)
        return cls(w, layer.bias, scratch[: w.numel()].view(w.shape))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scratch is not None and x.size(0) == 1 and x.dtype == torch.float32:
            y = torch.mul(self.weight, x, out=self.scratch).sum(dim=-1)[None]  # (1, out): (out, in) * (1, in) summed
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)  # (B, out)


class LayerNorm(NamedTuple):
    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    eps: float

    @classmethod
    def of(cls, ln: nn.LayerNorm) -> "LayerNorm":
        return cls(ln.weight, ln.bias, ln.eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class Layer(NamedTuple):
    """One transformer block's parameters."""

    ln_1: LayerNorm
    c_attn: Linear
    attn_proj: Linear
    ln_2: LayerNorm
    c_fc: Linear
    gelu: str  # "none" (exact) or "tanh"
    mlp_proj: Linear


class DecodeStep:
    """`step(idx, cache)`: logits (B, padded_vocab_size) for one new token per row, idx
    (B, 1), continuing the sequence the cache holds; the cache is written and advanced.

    Built once per generation: it holds references to the model's parameters, so later
    in-place updates are seen, but replacing a parameter object is not. Inference only
    (no dropout, no gradients).
    """

    def __init__(self, model: GPT):
        c = model.config
        self.block_size, self.n_embd, self.n_head, self.head_size = c.block_size, c.n_embd, c.n_head, c.head_size
        t = model.transformer
        self.wte = t.wte.weight  # (padded_vocab_size, C)
        # Exactly one of these is set: what `GPT.forward` adds or applies for positions.
        self.wpe = t.wpe.weight if c.pos == "learned" else None  # (block_size, C)
        self.pos_table = model.pos_table if c.pos == "sinusoidal" else None  # (block_size, C)
        self.rope_cis = model.rope_cis if c.pos == "rope" else None  # (block_size, hs/2, 2)
        products = [m for m in model.modules() if isinstance(m, nn.Linear) and Linear.row_product(m)]
        scratch = torch.empty(max((m.weight.numel() for m in products), default=0), device=self.wte.device)
        self.layers = [
            Layer(LayerNorm.of(b.ln_1), Linear.of(b.attn.c_attn, scratch), Linear.of(b.attn.c_proj, scratch),
                  LayerNorm.of(b.ln_2), Linear.of(b.mlp.c_fc, scratch), b.mlp.gelu.approximate,
                  Linear.of(b.mlp.c_proj, scratch))  # fmt: skip
            for b in t.h
        ]
        self.ln_f = LayerNorm.of(t.ln_f)
        self.lm_head = Linear.of(model.lm_head, scratch)

    def __call__(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        # PyTorch sends an fp32 exact GELU on the CPU through oneDNN, whose set-up costs
        # ~7 us a call; its own kernel takes ~1 us for a row of 512 (and the two agree to
        # 1e-6). Turning oneDNN off for the step changes nothing else here: fp32 matmuls
        # go to MKL either way.
        onednn = torch.backends.mkldnn.enabled
        try:
            torch.backends.mkldnn.enabled = False
            return self._step(idx, cache)
        finally:
            torch.backends.mkldnn.enabled = onednn

    def _step(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        B, pos = idx.size(0), cache.pos
        if pos >= self.block_size:
            raise ValueError(f"the cache is full (block_size={self.block_size}): re-prefill a shorter window")
        C, nh, hs = self.n_embd, self.n_head, self.head_size
        x = self.wte[idx[:, 0]]  # (B, C)
        rot = None
        if self.wpe is not None:
            x = x + self.wpe[pos]  # (B, C) + (C,)
        elif self.pos_table is not None:
            x = x + self.pos_table[pos].to(x.dtype)  # (B, C) + (C,)
        else:
            rot = torch.view_as_complex(self.rope_cis[pos])  # (hs/2,) complex
        scale = 1.0 / math.sqrt(hs)
        for i, layer in enumerate(self.layers):
            k_cache, v_cache = cache.k[i], cache.v[i]  # (B, nh, block_size, hs) each
            qkv = layer.c_attn(layer.ln_1(x))  # (B, 3C)
            qk = qkv[:, : 2 * C].reshape(B, 2 * nh, hs)  # (B, 2nh, hs): queries and keys
            if rot is not None:  # RoPE, in fp32 as in model.rope_rotate
                pairs = torch.view_as_complex(qk.float().reshape(B, 2 * nh, hs // 2, 2))  # (B, 2nh, hs/2)
                qk = torch.view_as_real(pairs * rot).reshape(B, 2 * nh, hs)  # (B, 2nh, hs)
            k_cache[:, :, pos] = qk[:, nh:]  # (B, nh, hs)
            v_cache[:, :, pos] = qkv[:, 2 * C :].reshape(B, nh, hs)  # (B, nh, hs)
            att = (qk[:, :nh, None] @ k_cache[:, :, : pos + 1].transpose(-2, -1)) * scale  # (B, nh, 1, pos+1)
            y = att.softmax(dim=-1) @ v_cache[:, :, : pos + 1]  # (B, nh, 1, hs)
            x = x + layer.attn_proj(y.reshape(B, C))  # (B, C)
            h = F.gelu(layer.c_fc(layer.ln_2(x)), approximate=layer.gelu)  # (B, 4C)
            x = x + layer.mlp_proj(h)  # (B, C)
        cache.pos += 1
        return self.lm_head(self.ln_f(x))  # (B, padded_vocab_size)
