"""mygpt checkpoints as GGUF files, for llama.cpp and the tools built on it (Ollama, LM Studio).

What maps to what (llama.cpp's graphs are src/models/gpt2.cpp and gptneox.cpp):
- Learned positions: llama.cpp's `gpt2` architecture, tensor for tensor. Sinusoidal
  positions are a fixed table added to the token embeddings, so they are written as
  gpt2's position table. llama.cpp sizes its context in multiples of 256 positions and
  stops with an assertion when a position has no row: the table is padded with rows of
  zeros to such a multiple (the context length the file states), and the trained
  context is `mygpt.block_size`. Past it, llama.cpp goes on where mygpt slides its window.
- RoPE: `gptneox` with use_parallel_residual false, which computes what mygpt does:
  pre-LayerNorm blocks, a sequential residual, rotary on the whole head, a GELU MLP with
  biases. llama.cpp rotates channel i of a head with channel i + hs/2 (NeoX's halves),
  mygpt channels 2i and 2i + 1 (pairs): each head's query and key rows are written in the
  order 0, 2, 4, ..., 1, 3, 5, ..., which makes the two the same computation (a query-key
  product does not change when both are reordered alike).
- No biases (bias=False): both graphs read biases, so zeros are written. An untied head is
  written as `output`; a tied one gpt2 reads from the token embedding, gptneox needs a copy.
- GELU: both graphs compute GPT-2's tanh form (on CPUs through a float16 table). A model
  trained with exact GELU is refused unless approximations are allowed: the two differ by
  at most 4.7e-4 per activation (near x = 2.7, where that table itself rounds by up to 2e-3).
- The vocabulary: `mygpt.gguf_vocab`. Padding rows beyond vocab_size are dropped; rows for
  tokens the file adds are zeros.

The file is written beside its destination and renamed into place: a full disk or a kill
leaves the previous file (or none), never half of one. An existing destination is
replaced only if it is a GGUF file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mygpt import __version__, checkpoint
from mygpt.errors import CheckpointError
from mygpt.gguf_vocab import Vocab, gguf_vocab
from mygpt.positions import ROPE_BASE

if TYPE_CHECKING:
    from mygpt.config import ModelConfig
    from mygpt.metadata import Meta
    from mygpt.model import GPT

DTYPES = ("f32", "f16", "q8_0")
CONTEXT_MULTIPLE = 256  # llama.cpp rounds a context up to a multiple of this (llama-context.cpp)
MAGIC = b"GGUF"
EXACT_GELU = (
    "exact GELU (erf): llama.cpp's gpt2 and gptneox graphs compute the tanh approximation, "
    "which differs by at most 4.7e-4 per activation"
)


@dataclass(frozen=True)
class GGUFExport:
    """What `write_gguf` wrote."""

    path: Path
    arch: str  # llama.cpp architecture
    pre: str  # llama.cpp pre-tokenizer
    dtype: str
    approximations: tuple[str, ...]  # what llama.cpp computes differently (only with approximate=True)
    tensors: int
    bytes: int


def architecture(config: ModelConfig) -> str:
    return "gptneox" if config.pos == "rope" else "gpt2"


def approximations(config: ModelConfig, vocab: Vocab) -> list[str]:
    """What llama.cpp would compute differently from mygpt for this model, in words."""
    found = [EXACT_GELU] if config.gelu == "exact" else []
    return found + ([vocab.approximation] if vocab.approximation else [])


def write_gguf(path: str | Path, out: str | Path, dtype: str = "f32", approximate: bool = False) -> GGUFExport:
    """Write checkpoint `path` as the GGUF file `out` (into a folder: as <run name>.gguf).

    Refuses (CheckpointError) what llama.cpp cannot express, and what it can express only
    approximately unless `approximate`; the refusal names each feature."""
    if dtype not in DTYPES:
        raise CheckpointError(f"unknown GGUF dtype {dtype!r}: choose one of {', '.join(DTYPES)}.")
    path = Path(path)
    out = _destination(Path(out), path)
    loaded = checkpoint.load(path)
    config, meta = loaded.model.config, loaded.header.meta
    vocab = gguf_vocab(loaded.tokenizer)
    if vocab.model_vocab != config.vocab_size:
        raise CheckpointError(
            f"{path}: its tokenizer has {vocab.model_vocab} tokens but the model {config.vocab_size} rows; "
            "GGUF needs one row per token."
        )
    inexact = approximations(config, vocab)
    if inexact and not approximate:
        raise CheckpointError(
            f"{path} cannot be written as GGUF exactly: {'; '.join(inexact)}. "
            "Pass --approximate to write it anyway (the README's `export gguf` section says what changes)."
        )
    tensors = gguf_tensors(loaded.model, vocab.added_rows)
    eps = loaded.model.transformer.ln_f.eps
    size = _write(
        out, architecture(config), tensors, dtype, lambda w: _metadata(w, path, meta, tensors, eps, vocab, dtype)
    )
    return GGUFExport(out, architecture(config), vocab.pre, dtype, tuple(inexact), len(tensors), size)


def _destination(out: Path, ckpt: Path) -> Path:
    """Where to write: `out`, or <run name>.gguf inside it when it is a folder; refuses to
    replace what is not an earlier GGUF file."""
    from mygpt.tokenfiles import clean_leftovers

    if out.is_dir():
        out = out / f"{ckpt.stem}.gguf"
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise CheckpointError(f"{out} exists and is not a regular file; choose another name.")
        try:
            with open(out, "rb") as f:
                magic = f.read(4)
        except OSError as exc:
            raise CheckpointError(f"cannot check {out}: {checkpoint.io_reason(exc, out)}.") from None
        if magic != MAGIC:
            raise CheckpointError(f"{out} exists and is not a GGUF file; choose another name.")
    clean_leftovers(out)  # what a killed export of the same file left beside it
    return out


def gguf_tensors(model: GPT, added_rows: int = 0) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's tensor names, as float32 arrays shaped as
    mygpt stores them ((out, in); GGUF lists the dimensions the other way round)."""
    config = model.config
    C, V = config.n_embd, config.vocab_size
    state = {name: t.detach().float().cpu().numpy() for name, t in model.state_dict().items()}

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return state[name] if name in state else np.zeros(shape, np.float32)  # bias=False: zeros do nothing

    def rows(matrix: np.ndarray) -> np.ndarray:  # (padded_vocab, C) -> (V + added_rows, C)
        return np.concatenate([matrix[:V], np.zeros((added_rows, C), np.float32)])

    out = {"token_embd.weight": rows(state["transformer.wte.weight"])}
    if config.pos != "rope":
        table = state["transformer.wpe.weight"] if config.pos == "learned" else model.pos_table.float().numpy()
        padding = -config.block_size % CONTEXT_MULTIPLE
        out["position_embd.weight"] = np.concatenate([table, np.zeros((padding, C), np.float32)])  # (ctx, C)
    out["output_norm.weight"], out["output_norm.bias"] = (
        state["transformer.ln_f.weight"],
        get("transformer.ln_f.bias", (C,)),
    )
    if not config.tie_weights or config.pos == "rope":
        out["output.weight"] = rows(state["lm_head.weight"])
    order = neox_order(C, config.n_head) if config.pos == "rope" else slice(None)
    names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
             "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}  # fmt: skip
    for i in range(config.n_layer):
        for ours, theirs in names.items():
            weight = state[f"transformer.h.{i}.{ours}.weight"]
            bias = get(f"transformer.h.{i}.{ours}.bias", weight.shape[:1])
            if ours == "attn.c_attn":
                weight, bias = weight[order], bias[order]  # (3C, C), (3C,): q and k rows in NeoX's order
            out[f"blk.{i}.{theirs}.weight"], out[f"blk.{i}.{theirs}.bias"] = weight, bias
    return out


def neox_order(n_embd: int, n_head: int) -> np.ndarray:
    """The row order of the fused query/key/value projection (3C rows) under which
    llama.cpp's NeoX rotary (channel i with i + hs/2) rotates what mygpt's rotary (channel
    2i with 2i + 1) does: in each query and key head, the even channels, then the odd."""
    hs = n_embd // n_head
    within = np.concatenate([np.arange(0, hs, 2), np.arange(1, hs, 2)])  # (hs,)
    heads = (np.arange(n_head)[:, None] * hs + within).reshape(-1)  # (C,)
    return np.concatenate([heads, n_embd + heads, 2 * n_embd + np.arange(n_embd)])  # (3C,): v unchanged


def _metadata(
    w: Any, path: Path, meta: Meta, tensors: dict[str, np.ndarray], eps: float, vocab: Vocab, dtype: str
) -> None:
    import gguf

    config = meta.model
    w.add_name(path.stem)
    origin = f"imported from {meta.imported.get('from')}" if meta.imported else "trained with mygpt"
    if meta.data is not None and meta.data.corpus:
        origin += f" on {meta.data.corpus}"
    w.add_description(f"mygpt checkpoint {path.name}, {origin} ({meta.progress.step} steps).")
    w.add_string("mygpt.checkpoint", path.name)
    w.add_string("mygpt.version", __version__)
    w.add_uint32("mygpt.block_size", config.block_size)  # the trained context (see the module's docstring)
    if meta.imported:
        w.add_base_model_count(1)
        w.add_base_model_name(0, str(meta.imported.get("from")))
    table = tensors.get("position_embd.weight")
    w.add_context_length(config.block_size if table is None else len(table))
    w.add_embedding_length(config.n_embd)
    w.add_feed_forward_length(len(tensors["blk.0.ffn_up.weight"]))  # (n_ff, C)
    w.add_block_count(config.n_layer)
    w.add_head_count(config.n_head)
    w.add_layer_norm_eps(eps)
    if config.pos == "rope":
        w.add_rope_dimension_count(config.head_size)  # rotary on the whole head
        w.add_rope_freq_base(ROPE_BASE)
        w.add_parallel_residual(False)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]  # fmt: skip
    w.add_file_type(file_type)
    if dtype == "q8_0":
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    w.add_token_merges(vocab.merges)
    for add in (w.add_bos_token_id, w.add_eos_token_id, w.add_eot_token_id):
        add(vocab.eot_id)  # GPT-2's convention: one token begins and ends a text
    w.add_add_bos_token(False)  # mygpt encodes a prompt as it is
    w.add_add_eos_token(False)
    if vocab.suppress:
        w.add_array("tokenizer.ggml.suppress_tokens", vocab.suppress)


def _encode(array: np.ndarray, dtype: str) -> tuple[np.ndarray, Any]:
    """The array in the file's type: vectors stay float32 (as llama.cpp's converters keep
    them); a matrix whose rows do not divide into Q8_0's blocks of 32 is float16."""
    import gguf

    if array.ndim == 1 or dtype == "f32":
        return array.astype(np.float32), None
    if dtype == "q8_0" and array.shape[-1] % 32 == 0:
        return gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    half = array.astype(np.float16)
    if not np.isfinite(half).all():
        raise CheckpointError(f"the weights hold values beyond float16's range (65504); write them as {DTYPES[0]}.")
    return half, None


def _write(out: Path, arch: str, tensors: dict[str, np.ndarray], dtype: str, metadata: Any) -> int:
    """Write the GGUF file through a temporary file beside `out`; returns its size."""
    import gguf

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = gguf.GGUFWriter(tmp, arch)
        metadata(writer)
        for name, array in tensors.items():
            data, raw_dtype = _encode(array, dtype)
            writer.add_tensor(name, data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)  # the same folder, so the rename is atomic
        checkpoint.fsync_dir(out.parent)
        return out.stat().st_size
    except OSError as exc:
        raise CheckpointError(
            f"could not write {out}: {checkpoint.io_reason(exc, out.parent)}; the previous file, if any, is unchanged."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
