"""Checkpoints: one self-describing safetensors file per run.

    checkpoints/gpt.c{block_size}.e{n_embd}.h{n_head}.b{n_layer}-{YYYY.MM.DD_HHMMSS}.safetensors

The file holds the weights (the tied embedding / LM head matrix stored once) and, in
safetensors' string -> string metadata, JSON for: the format version, the model config,
the tokenizer (so generation needs nothing else), the train config, progress (step,
tokens seen, losses, eval history), the data source and its checksum, library versions.

Design choices:
- No pickle, ever: safetensors holds only tensors and strings.
- Writes are atomic: a temporary file in the same folder, flushed and fsynced, then
  renamed over the target. A crash at any moment leaves the previous file intact.
- `read_header` parses the JSON header by hand and never imports torch, so `mygpt info`
  answers in a fraction of a second even for large checkpoints.
- Two runs started in the same second get different names: a name is claimed with an
  exclusive create of a small hidden `.claim` file, and a `-2`, `-3`... suffix is
  added when it is taken.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mygpt.config import ModelConfig
from mygpt.errors import CheckpointError, MyGPTError
from mygpt.tokenizer import Tokenizer, from_dict

if TYPE_CHECKING:
    from mygpt.model import GPT

FORMAT = "mygpt"
STATE_FORMAT = "mygpt-state"
COMPANIONS = ("state", "best")  # X.state.safetensors, X.best.safetensors beside X.safetensors
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
NAME_PATTERN = re.compile(r"gpt\.c(\d+)\.e(\d+)\.h(\d+)\.b(\d+)-(\d{4}\.\d{2}\.\d{2}_\d{6})(?:-(\d+))?\.safetensors")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
# Architecture fields added after checkpoints were first written, with the value those
# older checkpoints were trained with (where it differs from today's default).
OLDER_MODEL_DEFAULTS = {"gelu": "tanh", "pos": "learned", "vocab_multiple": 1}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class Header:
    """What a checkpoint says about itself, read without loading any weights."""

    path: Path
    meta: dict[str, Any]  # the metadata, each value decoded from JSON
    shapes: dict[str, list[int]]

    @property
    def num_params(self) -> int:
        """Parameters stored in the file (the tied embedding / head matrix once)."""
        return sum(_prod(shape) for shape in self.shapes.values())

    @property
    def model(self) -> dict[str, Any]:
        stored = self.meta["model"]
        return {**stored, **{k: v for k, v in OLDER_MODEL_DEFAULTS.items() if k not in stored}}

    @property
    def progress(self) -> dict[str, Any]:
        return self.meta.get("progress", {})


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model ready to use, its tokenizer, and its header."""

    header: Header
    model: GPT
    tokenizer: Tokenizer


def run_stem(model: ModelConfig, started: datetime) -> str:
    return f"gpt.c{model.block_size}.e{model.n_embd}.h{model.n_head}.b{model.n_layer}-{started:%Y.%m.%d_%H%M%S}"


def claim_path(out_dir: str | Path, model: ModelConfig, started: datetime) -> Path:
    """A checkpoint path for a new run, claimed so that no other run can take it."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the checkpoint folder {out_dir}: {exc.strerror}.") from None
    base = run_stem(model, started)
    for n in range(1, 10_000):
        stem = base if n == 1 else f"{base}-{n}"
        path = out_dir / f"{stem}{SUFFIX}"
        if path.exists():
            continue
        try:
            os.close(os.open(_claim_file(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        except OSError as exc:
            raise CheckpointError(f"cannot write in the checkpoint folder {out_dir}: {exc.strerror}.") from None
        return path
    raise CheckpointError(f"too many runs named {base} in {out_dir}.")


def release_path(path: Path) -> None:
    """Drop the claim on a run's name once the run is over."""
    _claim_file(path).unlink(missing_ok=True)


def remove_leftovers(path: Path) -> list[Path]:
    """Delete what a killed process of this run left behind: its name claim and partial
    temporary writes (never a finished file). Returns what was removed."""
    names = [path.name] + [companion(path, kind).name for kind in COMPANIONS]
    leftovers = [_claim_file(path)] + [p for n in names for p in path.parent.glob(f".{n}.tmp-*")]
    removed = [p for p in leftovers if p.exists()]
    for p in removed:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return removed


def _claim_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.claim")


def save(path: str | Path, model: GPT, meta: dict[str, Any], weights: dict[str, Any] | None = None) -> None:
    """Write weights and metadata atomically; on failure the previous file is untouched.

    `weights`: the host copy `model_tensors(model)`, when the caller has made one already.
    """
    write(path, model_tensors(model) if weights is None else weights, {"format": FORMAT, **meta})


def copy(src: str | Path, dst: str | Path) -> None:
    """Atomically make `dst` a copy of the finished file `src`.

    A hard link where the file system has them: checkpoint files are never changed in
    place, only replaced by a rename, so `dst` keeps this version when `src` is replaced.
    """
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        _fsync_dir(dst.parent)
    except OSError as exc:
        raise CheckpointError(f"could not write {dst}: {exc.strerror or exc}. The previous one, if any, is unchanged.") from None
    finally:
        tmp.unlink(missing_ok=True)


def model_tensors(model: GPT) -> dict[str, Any]:
    """The model's state dict with a tied weight (lm_head = wte) stored once."""
    tensors = {}
    seen: set[int] = set()
    for name, t in model.state_dict().items():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        tensors[name] = t.detach().cpu().contiguous()
    return tensors


def write(path: str | Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Atomically write a safetensors file: temp file in the same folder, fsync, rename.

    `meta` values other than `format` are stored as JSON strings. On failure (disk full,
    permission denied) the previous file at `path` is untouched and CheckpointError says why.
    """
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {"format": meta["format"], "format_version": str(FORMAT_VERSION)}
    metadata.update({key: json.dumps(value) for key, value in meta.items() if key != "format"})
    # A private folder beside the target: safetensors writes through a temporary file of
    # its own, and this way everything a write creates is in one place that a later
    # resume can remove if this process is killed mid-write.
    tmp_dir = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp = tmp_dir / path.name
    try:
        tmp_dir.mkdir(exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # the same file system as the target, so the rename is atomic
        _fsync_dir(path.parent)
    except OSError as exc:
        raise CheckpointError(
            f"could not write {path}: {exc.strerror or exc}. The previous checkpoint, if any, is unchanged."
        ) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def companion(path: str | Path, kind: str) -> Path:
    """A file that belongs to a checkpoint: its training state, best weights or metrics."""
    path = Path(path)
    stem = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
    return path.with_name(f"{stem}.{kind}.jsonl" if kind == "metrics" else f"{stem}.{kind}{SUFFIX}")


def save_state(path: str | Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write a run's training state (for an exact resume) atomically."""
    write(path, tensors, {"format": STATE_FORMAT, **meta})


def load_state(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a training state file: (tensors, metadata)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    header = read_header(path, expected_format=STATE_FORMAT)
    try:
        return load_file(str(path)), header.meta
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} could not be read: {exc}") from None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_header(path: str | Path, expected_format: str = FORMAT) -> Header:
    """Parse a checkpoint's safetensors header and metadata without importing torch."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file.")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path} is not a safetensors file (only {size} bytes).")
        (n,) = struct.unpack("<Q", prefix)
        if n > min(_MAX_HEADER, size - 8):
            raise CheckpointError(f"{path} is not a safetensors file, or is truncated (its header does not fit).")
        raw = f.read(n)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        metadata = header.pop("__metadata__", {}) or {}
        shapes, end = {}, 0
        for name, info in header.items():
            shapes[name] = [int(d) for d in info["shape"]]
            start, stop = (int(x) for x in info["data_offsets"])
            expected = _DTYPE_BYTES.get(info["dtype"], 0) * _prod(shapes[name])
            if not 0 <= start <= stop or (expected and stop - start != expected):
                raise ValueError(f"tensor {name} has inconsistent offsets")
            end = max(end, stop)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a safetensors file (its header is not valid).") from None
    if 8 + n + end != size:
        raise CheckpointError(
            f"{path} is truncated or damaged: the header describes {8 + n + end} bytes but the file has {size}."
        )
    if metadata.get("format") != expected_format:
        if metadata.get("format") == STATE_FORMAT:
            raise CheckpointError(f"{path} is a training-state file; use the checkpoint beside it.")
        raise CheckpointError(f"{path} is a safetensors file but not a mygpt checkpoint (it has no mygpt metadata).")
    try:
        version = int(metadata["format_version"])
        meta = {k: json.loads(v) for k, v in metadata.items() if k not in ("format", "format_version")}
        if expected_format == FORMAT and not (isinstance(meta.get("model"), dict) and isinstance(meta.get("tokenizer"), dict)):
            raise ValueError("the model config and the tokenizer are required")
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"{path} has damaged mygpt metadata.") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}, newer than this mygpt understands ({FORMAT_VERSION}); upgrade mygpt."
        )
    return Header(path, meta, shapes)


def summary(header: Header) -> dict[str, Any]:
    """A checkpoint described as plain data: what `mygpt info --json` prints."""
    meta, progress = header.meta, header.progress
    tokenizer = meta["tokenizer"]
    return {
        "path": str(header.path),
        "params": header.num_params,
        "model": header.model,
        "tokenizer": {k: tokenizer.get(k) for k in ("type", "encoding", "vocab_size") if k in tokenizer},
        "bytes_per_token": (meta.get("data") or {}).get("bytes_per_token"),
        "step": progress.get("step"),
        "max_iters": progress.get("max_iters"),
        "tokens_seen": progress.get("tokens_seen"),
        "train_loss": progress.get("train_loss"),
        "val_loss": progress.get("val_loss"),
        "best_val_loss": progress.get("best_val_loss"),
        "elapsed": progress.get("elapsed"),
        "created": meta.get("created"),
        "saved": meta.get("saved"),
        "world_size": meta.get("run", {}).get("world_size", 1),
        "device": meta.get("run", {}).get("device"),
        "data": meta.get("data"),
        "train": meta.get("train"),
        "versions": meta.get("versions"),
        "history": progress.get("history", []),
        "best": _best(header),
        "metrics": str(companion(header.path, "metrics")) if companion(header.path, "metrics").exists() else None,
        "state": str(companion(header.path, "state")) if companion(header.path, "state").exists() else None,
    }


def _best(header: Header) -> dict[str, Any] | None:
    """Where the best-validation weights are, if the run kept them."""
    best = companion(header.path, "best")
    if not best.exists() or header.progress.get("best_step") is None:
        return None
    return {"path": str(best), "step": header.progress["best_step"], "val_loss": header.progress.get("best_val_loss")}


def loss_curves(summary: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(step, loss) series for a checkpoint: train from its metrics file when there is one
    (a point per log step), else from the evaluations; val from the evaluations."""
    history = summary.get("history") or []
    train = [(h["step"], h["train_loss"]) for h in history]
    if summary.get("metrics"):
        logged = []
        for line in Path(summary["metrics"]).read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a torn last line
                continue
            if "val_loss" not in record and "train_loss" in record:
                logged.append((record["step"], record["train_loss"]))
        train = logged or train
    return {"train": train, "val": [(h["step"], h["val_loss"]) for h in history]}


def load(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Rebuild the model and tokenizer from a checkpoint file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mygpt.model import GPT
    from mygpt.state import load_weights

    header = read_header(path)
    try:
        config = ModelConfig(**header.model)
    except Exception as exc:  # a pydantic ValidationError: the stored config is not one we can build
        raise CheckpointError(f"{path} has a model config this mygpt cannot build: {exc}") from None
    try:
        tokenizer = from_dict(header.meta["tokenizer"])
    except MyGPTError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        state = load_file(str(path), device=device)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} could not be read: {exc}") from None
    model = GPT(config)
    load_weights(model, state, str(path))
    model.to(device)
    model.eval()
    return Checkpoint(header, model, tokenizer)


def find(out_dir: str | Path = "checkpoints") -> list[Path]:
    """Checkpoints under a folder, newest first (by modification time)."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    files = [
        p for p in folder.glob(f"*{SUFFIX}")
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(tuple(f".{k}{SUFFIX}" for k in COMPANIONS))
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def resolve(path: str | Path | None, out_dir: str | Path = "checkpoints") -> Path:
    """The checkpoint a command should use: the given path, or the newest one."""
    if path is not None:
        return Path(path)
    found = find(out_dir)
    if not found:
        raise CheckpointError(f"no checkpoints under {out_dir}/. Train one with `mygpt train`, or give a path.")
    return found[0]


def _prod(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
