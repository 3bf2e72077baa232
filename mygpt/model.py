"""The GPT model: a decoder-only transformer shaped like GPT-2.

Design choices:
- Token embeddings plus one of three position schemes (`ModelConfig.pos`): learned
  (GPT-2's), sinusoidal (fixed), or RoPE (rotary, applied to queries and keys, so that
  attention scores depend only on how far apart two tokens are); the tables are in
  `mygpt.positions`.
- Pre-LayerNorm blocks, final LayerNorm.
- Causal self-attention through `F.scaled_dot_product_attention` (flash / memory-
  efficient kernels where available; no mask buffer to rebuild after loading).
- GELU MLP with 4x expansion: exact GELU, or GPT-2's tanh approximation (`gelu="tanh"`).
- The LM head shares its weight with the token embedding (weight tying; optional).
- GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer).
- GPT-2 parameter names (transformer.wte, transformer.h.N.attn.c_attn, ..., ln_f,
  lm_head), so GPT-2 weights map onto this model name for name.

The modules hold the parameters under those names; the computation is one function,
`transformer(weights, config, idx, cache)`, over the parameters gathered into
NamedTuples (`GPT.weights()`). `GPT.forward` gathers them on each call; a generator
gathers them once (`GPT.decoder()`): a one-token step on a small model is bound by
per-operation overhead, of which looking each parameter up through module attributes
is a good part. Both run every line of the same math, and the cache advances in one place.

`forward(idx, cache=None)` always returns logits of shape (B, T, padded_vocab_size); the
loss belongs to the caller, and samplers ignore the padding rows (ids >= vocab_size).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from mygpt.config import GPTConfig, ModelConfig
from mygpt.kvcache import KV, KVCache, RowPositions
from mygpt.positions import rope_rotate, rope_table, sinusoids


class Linear(NamedTuple):
    weight: torch.Tensor  # (out, in)
    bias: Optional[torch.Tensor]  # (out,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)  # (N, in) -> (N, out)


class LayerNorm(NamedTuple):
    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    eps: float
    shape: tuple[int, ...]  # the normalised dimensions: (C,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


class LayerWeights(NamedTuple):
    """One transformer block's parameters."""

    ln_1: LayerNorm
    c_attn: Linear  # q, k, v for all heads at once
    attn_proj: Linear
    ln_2: LayerNorm
    c_fc: Linear
    mlp_proj: Linear


class Weights(NamedTuple):
    """Every parameter (and fixed table) the computation reads."""

    wte: torch.Tensor  # (padded_vocab_size, C)
    wpe: Optional[torch.Tensor]  # (block_size, C): learned positions
    pos_table: Optional[torch.Tensor]  # (block_size, C): sinusoidal positions
    rope_cis: Optional[torch.Tensor]  # (block_size, hs/2, 2): RoPE rotations as (cos, sin)
    layers: tuple[LayerWeights, ...]
    ln_f: LayerNorm
    lm_head: Linear


def transformer(
    w: Weights, config: ModelConfig, idx: torch.Tensor, cache: Optional[KVCache] = None, training: bool = False,
    recompute: bool = False,
) -> torch.Tensor:  # fmt: skip
    """Logits (B, T, padded_vocab_size) for every position of idx (B, T).

    With a cache, idx continues the sequence the cache holds: its positions start at
    cache.pos (an int; or RowPositions, one per row, when T is 1), its keys and values
    are written into the cache, and the cache is advanced here, in this one place. With
    `recompute`, each block keeps only its input for the backward pass and computes its
    inside again there (gradient checkpointing).
    """
    B, T = idx.shape
    start = cache.pos if cache is not None else 0
    if isinstance(start, int) and start + T > config.block_size:
        raise ValueError(f"sequence of length {start + T} is longer than block_size={config.block_size}")
    dropout = config.dropout if training else 0.0
    # Every token is a row: x is (B*T, C) through the blocks, and only attention looks at
    # which sequence a row belongs to (a one-token step is then plain matrix-vector work).
    x = torch.embedding(w.wte, idx.reshape(-1))  # (B*T, C)
    rot = None
    if w.wpe is not None:
        x = (x.view(B, T, -1) + _at(w.wpe, start, T)).view(B * T, -1)  # (B, T, C) + (T, C) or (B, 1, C)
    elif w.pos_table is not None:
        x = (x.view(B, T, -1) + _at(w.pos_table, start, T).to(x.dtype)).view(
            B * T, -1
        )  # (B, T, C) + (T, C) or (B, 1, C)
    else:
        rot = torch.view_as_complex(_at(w.rope_cis, start, T)).unsqueeze(
            -2
        )  # (T, 1, hs/2) or (B, 1, 1, hs/2) rotations
    x = _dropout(x, dropout)
    for i, layer in enumerate(w.layers):
        kv = cache.layer(i) if cache is not None else None
        if recompute:  # the same dropout masks are drawn again: the gradients do not change
            x = checkpoint(block, layer, x, B, config, kv, start, rot, dropout, use_reentrant=False)
        else:
            x = block(layer, x, B, config, kv, start, rot, dropout)  # (B*T, C)
    x = w.ln_f(x)  # (B*T, C)
    if cache is not None:
        cache.advance(T)
    return w.lm_head(x).view(B, T, -1)  # (B, T, padded_vocab_size)


def block(
    layer: LayerWeights, x: torch.Tensor, B: int, config: ModelConfig, kv: Optional[KV], start: int | RowPositions,
    rot: Optional[torch.Tensor], dropout: float,
) -> torch.Tensor:  # fmt: skip
    """One transformer block on the rows x (B*T, C): attention, then the MLP, each added to the residual."""
    x = x + attention(layer, layer.ln_1(x), B, config.n_head, kv, start, rot, dropout)  # tokens exchange information
    return x + mlp(layer, layer.ln_2(x), config.gelu, dropout)  # each token thinks on its own


def _at(table: torch.Tensor, start: int | RowPositions, T: int) -> torch.Tensor:
    """The rows of a position table (block_size, ...) that T new tokens take: (T, ...) when
    every sequence starts at `start`, (B, 1, ...) when each row has its own position."""
    if isinstance(start, int):
        return table.narrow(0, start, T)
    return table[start.pos].unsqueeze(1)


def attention(
    layer: LayerWeights, x: torch.Tensor, B: int, n_head: int, kv: Optional[KV], start: int | RowPositions,
    rot: Optional[torch.Tensor], dropout: float,
) -> torch.Tensor:  # fmt: skip
    """Causal self-attention of the rows x (B*T, C) of B sequences; with kv, over the
    cached positions too."""
    N, C = x.shape
    T, nh, hs = N // B, n_head, C // n_head
    qkv = layer.c_attn(x)  # (B*T, 3C)
    qk = qkv.narrow(1, 0, 2 * C).view(B, T, 2 * nh, hs)  # (B, T, 2nh, hs): queries and keys
    if rot is not None:  # RoPE: rotate queries and keys together, by position (in fp32)
        qk = rope_rotate(qk, rot)  # (B, T, 2nh, hs)
    q, k = qk.transpose(1, 2).split(nh, dim=1)  # (B, nh, T, hs) each: one gradient buffer for both in training
    v = qkv.narrow(1, 2 * C, C).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
    mask, causal = None, True
    if kv is not None:
        k, v, mask, causal = _with_cache(kv, k, v, start)
    if qkv.dtype == torch.bfloat16 and x.device.type == "cpu":
        # PyTorch's CPU attention kernels are several times slower in bf16 than in fp32 at
        # these sizes. Autocast would cast fp32 inputs straight back to bf16: paused here.
        with torch.autocast("cpu", enabled=False):
            y = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout, is_causal=causal
            ).to(qkv.dtype)  # (B, nh, T, hs)
    else:
        if q.dtype != v.dtype:
            q, k = q.to(v.dtype), k.to(v.dtype)  # RoPE computes in fp32
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal
        )  # (B, nh, T, hs)
    y = y.transpose(1, 2).reshape(N, C)  # (B*T, C): heads side by side again
    return _dropout(layer.attn_proj(y), dropout)  # (B*T, C)


def _with_cache(
    kv: KV, k: torch.Tensor, v: torch.Tensor, start: int | RowPositions
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], bool]:
    """Write this chunk's keys/values (positions start..start+T-1) into the cache and
    return the keys/values to attend to, with the mask that keeps attention causal."""
    k_cache, v_cache = kv  # (B, nh, block_size, hs) each
    if isinstance(start, RowPositions):  # one new token per row, each at its own position
        rows = torch.arange(k.size(0), device=k.device)
        k_cache[rows, :, start.pos] = k.squeeze(2).to(k_cache.dtype)  # (B, nh, hs) into each row's own position
        v_cache[rows, :, start.pos] = v.squeeze(2).to(v_cache.dtype)
        return k_cache.narrow(2, 0, start.span), v_cache.narrow(2, 0, start.span), start.visible, False
    T = k.size(2)
    k_cache.narrow(2, start, T).copy_(k)
    v_cache.narrow(2, start, T).copy_(v)
    k, v = k_cache.narrow(2, 0, start + T), v_cache.narrow(2, 0, start + T)  # (B, nh, start+T, hs)
    if start == 0:
        return k, v, None, True
    if T == 1:  # the newest position sees every key so far: no mask needed
        return k, v, None, False
    # query i sits at position start+i: it may see keys 0..start+i
    mask = torch.ones(T, start + T, dtype=torch.bool, device=k.device).tril(diagonal=start)  # (T, start+T)
    return k, v, mask, False


def mlp(layer: LayerWeights, x: torch.Tensor, form: str, dropout: float) -> torch.Tensor:
    h = gelu(layer.c_fc(x), form)  # (B*T, C) -> (B*T, 4C)
    return _dropout(layer.mlp_proj(h), dropout)  # (B*T, C)


def gelu(x: torch.Tensor, form: str) -> torch.Tensor:
    """GELU, exact (erf) or GPT-2's tanh approximation.

    PyTorch hands a contiguous fp32 CPU tensor to oneDNN for the exact form, whose set-up
    costs several times what PyTorch's own kernel takes on one row (a decoding step has
    one per layer). A single row is therefore passed as a non-contiguous view of itself,
    which PyTorch computes with its own kernel (the two agree to float32 rounding).
    """
    approximate = "tanh" if form == "tanh" else "none"
    N, n = x.shape  # rows
    if N == 1 and n % 2 == 0 and x.is_contiguous():
        pairs = x.as_strided((2, n // 2), (1, 2))  # the same memory, read column-wise
        return F.gelu(pairs, approximate=approximate).as_strided((N, n), (n, 1))  # in the same order
    return F.gelu(x, approximate=approximate)


def _dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    return F.dropout(x, p, True) if p > 0 else x  # no call at all when it does nothing


class Block(nn.Module):
    """One transformer block's parameters, under GPT-2's names."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        C, bias = config.n_embd, config.bias
        self.ln_1 = nn.LayerNorm(C, bias=bias)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.attn.c_proj = nn.Linear(C, C, bias=bias)
        self.ln_2 = nn.LayerNorm(C, bias=bias)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp.c_proj = nn.Linear(4 * C, C, bias=bias)


class GPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if isinstance(config, GPTConfig):  # settable field by field: checked and frozen now
            config = config.frozen()
        if config.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set to build a model (it comes from the tokenizer).")
        self.config = config
        self.grad_checkpoint = False  # training's choice (TrainConfig.grad_checkpoint), not the architecture's
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
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, counting a tied embedding / head matrix once. `non_embedding` leaves out
        the lookup tables, as nanoGPT does: the learned position table, and the token table
        unless it is tied (then it is also the LM head, which does count)."""
        n = sum(p.numel() for p in self.parameters())  # a shared Parameter is listed once
        if non_embedding and self.config.pos == "learned":
            n -= self.transformer.wpe.weight.numel()
        if non_embedding and not self.config.tie_weights:
            n -= self.transformer.wte.weight.numel()
        return n

    def get_num_params(self, non_embedding: bool = False) -> int:
        """`num_params` under nanoGPT's and Pico-GPT's name."""
        return self.num_params(non_embedding)

    def generate(
        self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: Optional[int] = None,
        top_p: float = 1.0, seed: Optional[int] = None,
    ) -> torch.Tensor:  # fmt: skip
        """nanoGPT's `generate`: idx (B, T) -> (B, T + max_new_tokens), each row continued
        by sampling; see `mygpt.simple.generate_ids` (the sampling of `mygpt generate`)."""
        from mygpt.simple import generate_ids  # it imports this module

        return generate_ids(self, idx, max_new_tokens, temperature, top_k, top_p, seed)

    def forward(self, idx: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        """Logits (B, T, padded_vocab_size) for idx (B, T); see `transformer`. With
        `grad_checkpoint` set, a training pass that needs gradients recomputes each block's
        activations in the backward pass instead of keeping them."""
        recompute = self.grad_checkpoint and self.training and torch.is_grad_enabled()
        return transformer(self.weights(), self.config, idx, cache, self.training, recompute)

    def decoder(self) -> Callable[[torch.Tensor, KVCache], torch.Tensor]:
        """`step(idx, cache)`: what forward(idx, cache) computes, with the parameters
        gathered now, once. For inference (no dropout): it holds references to the
        parameters, so in-place updates are seen, but replaced parameter objects are not."""
        return functools.partial(transformer, self.weights(), self.config)

    @torch.no_grad()
    def decoding_layout(self) -> GPT:
        """Store each block's linear weights column by column (as the contiguous transpose,
        seen through a transposed view): the same values and shapes, but on the CPU a matrix
        product with a few rows, a batched decoding step's, reads them faster (MKL, 6 layers,
        384 wide: 8 rows 1.17x faster, one row 4% slower). For inference: training keeps
        PyTorch's usual layout. Returns the model."""
        for block in self.transformer.h:
            for linear in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                linear.weight.data = linear.weight.data.t().contiguous().t()  # (out, in), stored (in, out)
        return self

    def weights(self) -> Weights:
        """The parameters (and fixed tables) as NamedTuples, for `transformer`."""
        t = self.transformer

        def linear(m: nn.Linear) -> Linear:
            return Linear(m.weight, m.bias)

        def norm(m: nn.LayerNorm) -> LayerNorm:
            return LayerNorm(m.weight, m.bias, m.eps, m.normalized_shape)

        layers = tuple(
            LayerWeights(
                norm(b.ln_1),
                linear(b.attn.c_attn),
                linear(b.attn.c_proj),
                norm(b.ln_2),
                linear(b.mlp.c_fc),
                linear(b.mlp.c_proj),
            )  # fmt: skip
            for b in t.h
        )
        pos = self.config.pos
        return Weights(
            t.wte.weight, t.wpe.weight if pos == "learned" else None, self.pos_table if pos == "sinusoidal" else None,
            self.rope_cis if pos == "rope" else None, layers, norm(t.ln_f), linear(self.lm_head),
        )  # fmt: skip
