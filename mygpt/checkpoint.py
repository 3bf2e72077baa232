"""Checkpoints: one self-describing safetensors file per run, and how to read it back.

The file holds the weights (the tied embedding / LM head matrix stored once) and, in
safetensors' string -> string metadata, the format version and JSON for each field of
`Meta`: the model config, the tokenizer (so generation needs nothing else), the train
config, progress (step, tokens seen, losses, eval history), the data source and its
checksum, library versions. File names and the files beside a checkpoint are `mygpt.runs`.

Design choices:
- No pickle, ever: safetensors holds only tensors and strings.
- The metadata is a pydantic model (`mygpt.metadata`), validated whenever a file is read;
  files of an older format are upgraded on read, one version at a time.
- Writes are atomic: a temporary file in the same folder, flushed and fsynced, then
  renamed over the target. A crash at any moment leaves the previous file intact.
- `read_header` parses the JSON header by hand and never imports torch, so `mygpt info`
  answers in a fraction of a second even for large checkpoints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mygpt.errors import CheckpointError, MyGPTError
from mygpt.files import require_regular

# the header's records are part of this module's interface (checkpoint.Meta, checkpoint.Progress, ...)
from mygpt.metadata import (
    FORMAT_VERSION,
    UPGRADES,
    DataSource as DataSource,
    Evaluation as Evaluation,
    Meta,
    Progress as Progress,
    Record,
    RunInfo as RunInfo,
    TrainingState,
)
from mygpt.tokenizer import Tokenizer, from_dict

if TYPE_CHECKING:
    import torch

    from mygpt.model import GPT

FORMAT = "mygpt"
STATE_FORMAT = "mygpt-state"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class Header:
    """What a checkpoint says about itself, read without loading any weights."""

    path: Path
    meta: Meta  # upgraded to the current format
    shapes: dict[str, list[int]]
    format_version: int  # the format the file was written in

    @property
    def num_params(self) -> int:
        """Parameters stored in the file (the tied embedding / head matrix once)."""
        return sum(_prod(shape) for shape in self.shapes.values())


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model ready to use, its tokenizer, and its header."""

    header: Header
    model: GPT
    tokenizer: Tokenizer


def save(path: str | Path, model: GPT, meta: Meta, weights: dict[str, torch.Tensor] | None = None) -> None:
    """Write weights and metadata atomically; on failure the previous file is untouched.

    `weights`: the host copy `model_tensors(model)`, when the caller has made one already.
    """
    write(path, model_tensors(model) if weights is None else weights, FORMAT, meta.model_dump(mode="json"))


def save_state(path: str | Path, tensors: dict[str, torch.Tensor], state: TrainingState) -> None:
    """Write a run's training state (for an exact resume) atomically."""
    write(path, tensors, STATE_FORMAT, state.model_dump(mode="json"))


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
        fsync_dir(dst.parent)
    except OSError as exc:
        raise CheckpointError(
            f"could not write {dst}: {exc.strerror or exc}. The previous one, if any, is unchanged."
        ) from None
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


def write(path: str | Path, tensors: dict[str, torch.Tensor], kind: str, fields: dict[str, Any]) -> None:
    """Atomically write a safetensors file: temp file in the same folder, fsync, rename.

    Each of `fields` is stored as a JSON string, beside `format` (kind) and `format_version`.
    On failure (disk full, permission denied) the previous file at `path` is untouched
    and CheckpointError says why.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from mygpt.filemode import make_ordinary

    path = Path(path)
    metadata = {"format": kind, "format_version": str(FORMAT_VERSION)}
    metadata.update({key: json.dumps(value) for key, value in fields.items()})
    # A private folder beside the target: safetensors writes through a temporary file of
    # its own, and this way everything a write creates is in one place that a later
    # resume can remove if this process is killed mid-write.
    tmp_dir = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp = tmp_dir / path.name
    try:
        tmp_dir.mkdir(exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        make_ordinary(tmp)  # safetensors makes it 0600; a checkpoint is an ordinary file
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # the same file system as the target, so the rename is atomic
        fsync_dir(path.parent)
    except (OSError, SafetensorError) as exc:  # safetensors reports its own I/O failures as SafetensorError
        raise CheckpointError(
            f"could not write {path}: {io_reason(exc, path.parent)}. The previous checkpoint, if any, is unchanged."
        ) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def io_reason(exc: Exception, path: Path) -> str:
    """An OSError, or safetensors' error wrapping one ("... Os { code: 28, ... }"), in words
    about `path` (the folder written into)."""
    from mygpt.files import describe_os_error

    if not isinstance(exc, OSError):
        code = re.search(r"code: (\d+)", str(exc))
        exc = OSError(int(code.group(1)), os.strerror(int(code.group(1)))) if code else OSError(str(exc))
    return describe_os_error(exc, path)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_header(path: str | Path) -> Header:
    """A checkpoint's metadata (validated, upgraded to the current format) and tensor
    shapes, read without loading any weights or importing torch."""
    path = Path(path)
    fields, shapes = _read_safetensors_header(path, FORMAT)
    version = fields["format_version"]
    return Header(path, _validate(Meta, fields, path), shapes, version)


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], TrainingState]:
    """Read a training state file: (tensors, metadata)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    fields, _ = _read_safetensors_header(path, STATE_FORMAT)
    state = _validate(TrainingState, fields, path)
    try:
        return load_file(str(path)), state
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} could not be read: {exc}") from None


def _validate(schema: type[Record], fields: dict[str, Any], path: Path) -> Any:
    version = fields.pop("format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}, newer than this mygpt understands ({FORMAT_VERSION}); upgrade mygpt."
        )
    if version < 1:
        raise CheckpointError(f"{path} has damaged mygpt metadata (format version {version}).")
    for v in range(version, FORMAT_VERSION):
        fields = UPGRADES[v](fields)
    try:
        return schema.model_validate(fields)
    except (ValidationError, MyGPTError) as exc:
        problem = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
        where = ".".join(str(part) for part in problem["loc"])
        why = problem["msg"].removeprefix("Value error, ")
        raise CheckpointError(f"{path} has damaged mygpt metadata ({where + ': ' if where else ''}{why}).") from None


def _read_safetensors_header(path: Path, expected_format: str) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The metadata fields (each decoded from JSON; format_version an int) and tensor
    shapes of a safetensors file of ours, checked against the file's size."""
    require_regular(path, "checkpoint", CheckpointError)  # a FIFO or device would block or never end
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
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
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
        fields = {k: json.loads(v) for k, v in metadata.items() if k != "format"}
        fields["format_version"] = int(metadata["format_version"])
    except (KeyError, ValueError, TypeError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise CheckpointError(f"{path} has damaged mygpt metadata.") from None
    return fields, shapes


def load(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Rebuild the model and tokenizer from a checkpoint file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mygpt.memory import check_shapes
    from mygpt.model import GPT

    header = read_header(path)
    try:
        tokenizer = from_dict(header.meta.tokenizer)
    except MyGPTError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    check_shapes(header.meta.model, header.shapes, str(path))  # the config may not decide what is allocated
    if tokenizer.vocab_size < (header.meta.model.vocab_size or 0):  # ids it samples would not decode
        raise CheckpointError(
            f"{path}: its tokenizer has {tokenizer.vocab_size} tokens but the model {header.meta.model.vocab_size}: "
            "the file is damaged (the two do not belong together)."
        )
    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} could not be read: {exc}") from None
    require_finite(tensors, path)
    model = GPT(header.meta.model)
    load_weights(model, tensors, str(path))
    model.to(device)
    model.eval()
    if model.transformer.wte.weight.device.type == "cpu":
        model.decoding_layout()  # every command that loads a checkpoint samples or scores with it
    return Checkpoint(header, model, tokenizer)


def require_finite(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse weights holding NaN or infinity: nothing sampled or scored from them means anything."""
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(
                f"{path} holds non-finite weights (NaN or infinite values in {name}): the run that wrote it "
                "diverged or the file is damaged. Use an earlier checkpoint, such as its .best file."
            )


def load_weights(model: GPT, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load a full set of weights into `model` (a tied head is not stored separately)."""
    tied = {"lm_head.weight"} if model.config.tie_weights else set()
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if set(missing) - tied or unexpected:
        raise CheckpointError(
            f"{source} does not match the model (missing {sorted(set(missing) - tied)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})."
        )


def _prod(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
