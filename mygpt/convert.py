"""Weights from elsewhere, and back: Hugging Face GPT-2 folders and nanoGPT checkpoints.

Our model uses GPT-2's architecture and parameter names, so conversion is a renaming
with two differences:
- Hugging Face's GPT-2 stores its four projection matrices as `Conv1D` weights, shaped
  (in, out); ours are `nn.Linear` weights, (out, in): they are transposed both ways.
- GPT-2 itself is learned positions, tanh GELU, biases, a tied head: an imported model
  gets exactly that config, and only such a model can be exported.

The GPT-2 tokenizer is rebuilt from the folder's `vocab.json` and `merges.txt` as a
tiktoken encoding (its ids follow the merge order, which is what tiktoken needs), so
nothing is downloaded. nanoGPT checkpoints are read with `torch.load(weights_only=True)`
(tensors and plain containers only). Its character models' `meta.pkl` is a pickle and
is not read at all: nanoGPT's prepare.py numbers the sorted characters of its input
text, so that text rebuilds the same table.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import torch

from mygpt import checkpoint
from mygpt.checkpoint import load_weights
from mygpt.config import ModelConfig
from mygpt.errors import CheckpointError
from mygpt.filemode import make_ordinary
from mygpt.files import require_regular
from mygpt.model import GPT
from mygpt.runs import RunFiles
from mygpt.tokenizer import ENDOFTEXT, PRETRAINED, BPETokenizer, CharTokenizer, Tokenizer

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")  # (in, out) in HF
GPT2_PATTERN = PRETRAINED["gpt2"][0]


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (how vocab.json spells tokens)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


# Hugging Face GPT-2 folders


def read_hf(folder: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], BPETokenizer]:
    """The model config, our-named weights and the tokenizer of a Hugging Face GPT-2 folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    needed = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a Hugging Face GPT-2 folder: it lacks {', '.join(missing)}.")
    hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if hf.get("model_type") != "gpt2":
        raise CheckpointError(f"{folder} holds a {hf.get('model_type')!r} model; only GPT-2 ('gpt2') converts.")
    if (
        hf.get("activation_function", "gelu_new") != "gelu_new"
        or abs(hf.get("layer_norm_epsilon", 1e-5) - 1e-5) > 1e-12
    ):
        raise CheckpointError(f"{folder}: only GPT-2's gelu_new activation and LayerNorm epsilon 1e-5 convert.")
    config = ModelConfig(
        n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=hf["n_embd"], block_size=hf["n_positions"],
        vocab_size=hf["vocab_size"], vocab_multiple=1, dropout=0.0, bias=True,
        tie_weights=hf.get("tie_word_embeddings", True), gelu="tanh", pos="learned",
    )  # fmt: skip
    weights = {}
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):  # old causal-mask buffers, not weights
            continue
        ours = name if name.startswith(("transformer.", "lm_head.")) else f"transformer.{name}"
        weights[ours] = tensor.t().contiguous() if ours.endswith(CONV1D) else tensor
    tokenizer = read_hf_tokenizer(folder)
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but the model {config.vocab_size}."
        )
    return config, weights, tokenizer


def read_hf_tokenizer(folder: Path) -> BPETokenizer:
    """GPT-2's byte-level BPE from vocab.json + merges.txt, as a tiktoken encoding."""
    vocab: dict[str, int] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    special = {token: i for token, i in vocab.items() if token == ENDOFTEXT}
    try:
        ranks = {bytes(decoder[c] for c in token): i for token, i in vocab.items() if token not in special}
    except KeyError as exc:
        raise CheckpointError(f"{folder}/vocab.json has a token that is not GPT-2 byte-level: {exc}.") from None
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [line.split(" ") for line in lines if line and not line.startswith("#version")]
    for i, (a, b) in enumerate(merges):  # tiktoken ranks tokens by id: ids must follow the merge order
        if vocab.get(a + b) != 256 + i:
            raise CheckpointError(
                f"{folder}: token {a + b!r} has id {vocab.get(a + b)}, but merge {i} needs id {256 + i}; "
                "mygpt's BPE needs token ids in merge order, as GPT-2's are."
            )
    return BPETokenizer("gpt2", GPT2_PATTERN, ranks, special)


def write_hf(path: str | Path, folder: str | Path) -> Path:
    """Write a checkpoint as a Hugging Face GPT-2 folder; refuses what GPT-2 cannot express."""
    from safetensors.torch import save_file

    loaded = checkpoint.load(path)
    config, tokenizer = loaded.model.config, loaded.tokenizer
    problems = [
        what for what, bad in [
            (f"pos={config.pos} (GPT-2 has learned positions)", config.pos != "learned"),
            (f"gelu={config.gelu} (GPT-2 uses the tanh form)", config.gelu != "tanh"),
            ("bias=False (GPT-2 has biases)", not config.bias),
            ("tie_weights=False (GPT-2's head is the token embedding)", not config.tie_weights),
            (f"a {tokenizer_kind(tokenizer)} tokenizer (GPT-2's is byte-level BPE)", not isinstance(tokenizer, BPETokenizer)),
        ] if bad
    ]  # fmt: skip
    if problems:
        raise CheckpointError(f"{path} cannot be written as GPT-2: {'; '.join(problems)}.")
    tensors = {}
    for name, tensor in checkpoint.model_tensors(loaded.model).items():
        if name == "transformer.wte.weight":
            tensor = tensor[: config.vocab_size]  # without padding rows (ModelConfig.vocab_multiple)
        tensors[name] = tensor.t().contiguous() if name.endswith(CONV1D) else tensor
    hf_config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": config.vocab_size,
        "n_positions": config.block_size, "n_ctx": config.block_size, "n_embd": config.n_embd,
        "n_layer": config.n_layer, "n_head": config.n_head, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "initializer_range": 0.02, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
        "attn_pdrop": 0.0, "tie_word_embeddings": True,
        "bos_token_id": tokenizer.eot_id, "eos_token_id": tokenizer.eot_id,
    }  # fmt: skip

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        make_ordinary(tmp / "model.safetensors")  # safetensors makes it 0600, unlike the files beside it
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2), encoding="utf-8")
        write_hf_tokenizer(tokenizer, tmp)

    return _write_folder(Path(folder), write)


def _write_folder(folder: Path, write: Callable[[Path], None]) -> Path:
    """Fill a temporary folder beside `folder` with `write`, then rename it into place:
    a full disk or a kill leaves the old folder (or none), never a half-written one. An
    existing folder is replaced only if it is empty or an earlier export."""
    from safetensors import SafetensorError

    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder} exists and is not a folder.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder} exists and is not an exported model folder; choose another folder.")
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        if folder.exists():
            folder.rename(old)  # the earlier export stays whole until the new one is in place
        tmp.rename(folder)
    except (OSError, SafetensorError) as exc:
        if old.exists() and not folder.exists():
            old.rename(folder)
        raise CheckpointError(
            f"could not write {folder}: {checkpoint.io_reason(exc, folder)}; nothing was changed."
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def write_hf_tokenizer(tokenizer: BPETokenizer, folder: Path) -> None:
    """vocab.json + merges.txt: each token's merge is the split BPE reaches with lower ranks."""
    vocab = {spell(token): rank for token, rank in tokenizer.ranks.items()}
    vocab.update(tokenizer.special_tokens)
    merges = [f"{spell(a)} {spell(b)}" for a, b in merge_list(tokenizer.ranks)]
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def spell(token: bytes) -> str:
    """A token's bytes in GPT-2's byte-level alphabet, as vocab.json, merges.txt and GGUF write them."""
    alphabet = bytes_to_unicode()
    return "".join(alphabet[b] for b in token)


def merge_list(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merges of byte-level BPE ranks, in rank order: the pair each token of two or
    more bytes is made of. Tools that rank pairs (Hugging Face, llama.cpp) then merge as
    tiktoken, which ranks the merged bytes, does."""
    return [_last_merge(ranks, token) for token, _ in sorted(ranks.items(), key=lambda kv: kv[1]) if len(token) > 1]


def _last_merge(ranks: dict[bytes, int], token: bytes) -> tuple[bytes, bytes]:
    """The two tokens whose merge makes `token`: byte-level BPE on its bytes, allowing
    only merges ranked before it, ends with exactly these two parts."""
    parts = [bytes([b]) for b in token]
    limit = ranks[token]
    while len(parts) > 2:
        best = min(range(len(parts) - 1), key=lambda i: ranks.get(parts[i] + parts[i + 1], limit))
        if ranks.get(parts[best] + parts[best + 1], limit) >= limit:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    if len(parts) != 2:
        raise CheckpointError(
            f"token {token!r} is not the merge of two earlier tokens; it cannot be written as a merge."
        )
    return parts[0], parts[1]


# nanoGPT checkpoints


def read_nanogpt(
    ckpt: str | Path, corpus: Optional[str | Path] = None
) -> tuple[ModelConfig, dict[str, torch.Tensor], Tokenizer]:
    """The model config, weights and tokenizer of a nanoGPT `ckpt.pt`: characters of the
    text its prepare.py read (`corpus`), else GPT-2's BPE."""
    ckpt = Path(ckpt)
    require_regular(ckpt, "nanoGPT checkpoint", CheckpointError)
    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncation, not a torch file at all
        if "does not match expected size" in str(exc):  # torch compares each record before allocating it
            raise CheckpointError(f"{ckpt} declares tensors larger than the file holds: {exc}") from None
        raise CheckpointError(f"{ckpt} is not a nanoGPT checkpoint that loads safely (weights only): {exc}") from None
    if not isinstance(saved, dict) or "model" not in saved or "model_args" not in saved:
        raise CheckpointError(f"{ckpt} is not a nanoGPT checkpoint (no 'model' and 'model_args' in it).")
    args = saved["model_args"]
    weights = {k.removeprefix("_orig_mod."): v for k, v in saved["model"].items() if not k.endswith(".attn.bias")}
    if corpus is not None:
        tokenizer: Tokenizer = _nanogpt_chars(Path(corpus))
        if tokenizer.vocab_size != args["vocab_size"]:
            raise CheckpointError(
                f"{corpus} has {tokenizer.vocab_size} distinct characters but {ckpt} was trained on "
                f"{args['vocab_size']}: pass the text nanoGPT's prepare.py read for this model."
            )
    else:
        from mygpt.tokenizer import pretrained

        tokenizer = pretrained("gpt2")
    vocab = tokenizer.vocab_size
    if args["vocab_size"] < vocab:
        raise CheckpointError(f"{ckpt} has a vocabulary of {args['vocab_size']}, smaller than its tokenizer's {vocab}.")
    config = ModelConfig(
        n_layer=args["n_layer"], n_head=args["n_head"], n_embd=args["n_embd"], block_size=args["block_size"],
        vocab_size=vocab, vocab_multiple=_multiple(vocab, args["vocab_size"]), bias=args.get("bias", True),
        dropout=0.0, gelu="exact", pos="learned", tie_weights=True,
    )  # fmt: skip
    return config, weights, tokenizer


def _multiple(vocab: int, padded: int) -> int:
    """The vocab_multiple that pads `vocab` rows to exactly `padded` (nanoGPT pads 50257 to 50304)."""
    for multiple in range(1, padded + 1):
        if -(-vocab // multiple) * multiple == padded:
            return multiple
    raise CheckpointError(f"a vocabulary of {vocab} cannot be padded to {padded} rows.")  # pragma: no cover


def _nanogpt_chars(corpus: Path) -> CharTokenizer:
    """nanoGPT's character table: prepare.py numbers sorted(set(text)), as CharTokenizer.train does."""
    if not corpus.is_file():
        raise CheckpointError(f"no such file: {corpus}")
    raw = corpus.read_bytes()
    if raw[:1] == b"\x80":  # a pickle's PROTO opcode
        raise CheckpointError(
            f"{corpus} is a pickle (meta.pkl?), and mygpt never reads pickles: pass the text file "
            "nanoGPT's prepare.py read instead (its characters are the vocabulary)."
        )
    try:
        return CharTokenizer.train(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{corpus} is not UTF-8 text: {exc}") from None


# Both


def save_imported(config: ModelConfig, weights: dict[str, torch.Tensor], tokenizer: Tokenizer, out_dir: str | Path,
                  source: str) -> Path:  # fmt: skip
    """Build the model from the converted weights (every tensor must fit) and write it as
    an ordinary mygpt checkpoint; returns its path."""
    from mygpt.memory import check_shapes

    check_shapes(config, {name: tuple(t.shape) for name, t in weights.items()}, source)  # before allocating
    model = GPT(config)
    try:
        load_weights(model, weights, source)
    except RuntimeError as exc:  # shapes that do not match the config
        raise CheckpointError(f"{source}: the weights do not fit the model its config describes ({exc}).") from None
    started = datetime.now()
    files = RunFiles.claim(out_dir, config, started)
    try:
        meta = checkpoint.Meta(model=config, tokenizer=tokenizer.to_dict(), imported={"from": source},
                               created=started.astimezone().isoformat(timespec="seconds"))  # fmt: skip
        checkpoint.save(files.path, model, meta)
    finally:
        files.release()
    return files.path


def tokenizer_kind(tokenizer: Tokenizer) -> str:
    return {"char": "character", "word": "word"}.get(tokenizer.name, "BPE")
