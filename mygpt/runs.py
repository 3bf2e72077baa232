"""A run's files: its name, the files beside its checkpoint, and finding the newest run.

    checkpoints/gpt.c{block_size}.e{n_embd}.h{n_head}.b{n_layer}-{YYYY.MM.DD_HHMMSS}.safetensors

Beside a run's checkpoint X.safetensors live X.state.safetensors (what an exact resume
needs), X.best.safetensors (the weights of the best validation loss) and
X.metrics.jsonl (a line per log step and evaluation). `RunFiles` names them all.

Two runs started in the same second get different names: a name is claimed with an
exclusive create of a small hidden `.claim` file, and a `-2`, `-3`... suffix is added
when it is taken. One run has one owner: the process training it holds an exclusive
flock on that file (with its pid written inside) until it ends, so a `--resume` of a
live run is refused, and only the owner removes what killed processes left (see
`mygpt.runlock`). This module never imports torch.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mygpt import runlock
from mygpt.checkpoint import Header
from mygpt.config import DEFAULT_OUT_DIR, ModelConfig
from mygpt.errors import CheckpointError
from mygpt.files import require_regular

SUFFIX = ".safetensors"
_STEM = "gpt.c{block_size}.e{n_embd}.h{n_head}.b{n_layer}-{started}"
_STARTED = "%Y.%m.%d_%H%M%S"
# The stem as a pattern: each field a number, the start time as _STARTED writes it, then
# the optional -N of a second run started in the same second.
NAME_PATTERN = re.compile(
    re.sub(
        r"\\\{(\w+)\\\}", lambda m: r"(\d{4}\.\d{2}\.\d{2}_\d{6})" if m[1] == "started" else r"(\d+)", re.escape(_STEM)
    )
    + r"(?:-(\d+))?"
    + re.escape(SUFFIX)
)
COMPANIONS = ("state", "best", "metrics")


def run_stem(model: ModelConfig, started: datetime) -> str:
    """A run's name without the suffix, from its architecture and start time."""
    return _STEM.format(
        block_size=model.block_size, n_embd=model.n_embd, n_head=model.n_head, n_layer=model.n_layer,
        started=started.strftime(_STARTED),
    )  # fmt: skip


def companion(path: str | Path, kind: str) -> Path:
    """A file that belongs to a checkpoint: its training state, best weights or metrics."""
    path = Path(path)
    stem = path.name.removesuffix(SUFFIX)
    return path.with_name(f"{stem}.{kind}.jsonl" if kind == "metrics" else f"{stem}.{kind}{SUFFIX}")


@dataclass(frozen=True)
class RunFiles:
    """The files of one run, all named from its checkpoint's path."""

    path: Path  # X.safetensors: the weights and metadata that generation reads

    @property
    def state(self) -> Path:
        return companion(self.path, "state")

    @property
    def best(self) -> Path:
        return companion(self.path, "best")

    @property
    def metrics(self) -> Path:
        return companion(self.path, "metrics")

    @property
    def claim_file(self) -> Path:
        return self.path.with_name(f".{self.path.name}.claim")

    @classmethod
    def claim(cls, out_dir: str | Path, model: ModelConfig, started: datetime) -> RunFiles:
        """A new run's files, its name claimed so that no other run can take it."""
        out_dir = Path(out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create the checkpoint folder {out_dir}: {exc.strerror}.") from None
        base = run_stem(model, started)
        for n in range(1, 10_000):
            files = cls(out_dir / f"{base if n == 1 else f'{base}-{n}'}{SUFFIX}")
            if files.path.exists():
                continue
            if runlock.acquire(files.claim_file, files.path, new=True):
                return files
        raise CheckpointError(f"too many runs named {base} in {out_dir}.")

    def lock(self) -> None:
        """Make this process the run's one owner until `release`: an exclusive flock on its
        claim file, which the OS drops when the process dies, however it dies. Raises
        TrainingError naming the process that trains the run now."""
        runlock.acquire(self.claim_file, self.path)

    def release(self) -> None:
        """Drop the claim once this process is done with the run. The claim file is removed
        while still locked, so no other process can hold a lock on a file that is gone.
        A claim this process does not hold is left alone."""
        runlock.release(self.claim_file)

    def remove_leftovers(self) -> list[Path]:
        """Delete what a killed process of this run left behind: partial temporary writes
        (never a finished file). Only the run's owner may: the run is locked first (raising
        if a live process holds it), and stays locked until `release`. A dead process's
        claim file is taken over, not removed. Returns what was removed."""
        self.lock()
        names = [self.path.name, self.state.name, self.best.name]
        leftovers = [p for n in names for p in self.path.parent.glob(f".{n}.tmp-*")]
        removed = [p for p in leftovers if p.exists()]
        for p in removed:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        return removed


def find(out_dir: str | Path = DEFAULT_OUT_DIR) -> list[Path]:
    """Checkpoints under a folder, newest first (by modification time)."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    companions = tuple(companion(Path("x"), kind).name[1:] for kind in COMPANIONS)
    files = [
        p for p in folder.glob(f"*{SUFFIX}")
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(companions)
    ]  # fmt: skip
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def resolve(path: str | Path | None, out_dir: str | Path = DEFAULT_OUT_DIR) -> Path:
    """The checkpoint a command should use: the given one, or the newest under out_dir.

    Besides a file's path, a checkpoint may be given the ways the projects mygpt grew from
    named theirs: a folder (its newest checkpoint); a bare name, looked up in out_dir and
    then in checkpoints/, with or without the suffix (My Toy GPT's `--load NAME`);
    picoGPT's `DIR/latest.pt` and `DIR/best.pt` (the newest run in DIR, and that run's best
    weights; DIR is out_dir when not given; the production GPT's `best_model.pth` too). A name ending in .pt or .pth (PyTorch's) is
    also tried without it. What matches nothing is an error that says what was tried."""
    if path is None:
        return _newest(out_dir)
    path = Path(path)
    if path.is_dir():
        return _newest(path)
    if path.exists():
        return path
    folders = [path.parent] if len(path.parts) > 1 else list(dict.fromkeys([Path(out_dir), Path(DEFAULT_OUT_DIR)]))
    if path.suffix in (".pt", ".pth") and path.stem in ("latest", "best", "best_model"):
        for folder in (f for f in folders if f.is_dir()):
            newest = _newest(folder)
            return newest if path.stem == "latest" else companion(newest, "best")
    stems = [path.name] + ([path.stem] if path.suffix in (".pt", ".pth") else [])
    candidates = list(dict.fromkeys(f / name for f in folders for stem in stems for name in (stem, stem + SUFFIX)))
    for candidate in candidates:
        if candidate.is_dir():
            return _newest(candidate)
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates if c != path)
    raise CheckpointError(
        f"no such checkpoint: {path}"
        + (f" (nor {tried})" if tried else "")
        + f". Give none for the newest in {out_dir}/."
    )


def _newest(folder: str | Path) -> Path:
    found = find(folder)
    if not found:
        raise CheckpointError(f"no checkpoints under {folder}/. Train one with `mygpt train`, or give a path.")
    return found[0]


def summary(header: Header) -> dict[str, Any]:
    """A checkpoint described as plain data: what `mygpt info --json` prints."""
    meta, progress, files = header.meta, header.meta.progress, RunFiles(header.path)
    best = files.best.exists() and progress.best_step is not None
    return {
        "path": str(header.path),
        "params": header.num_params,
        "format_version": header.format_version,
        "model": meta.model.model_dump(mode="json"),
        "tokenizer": {k: meta.tokenizer[k] for k in ("type", "encoding", "vocab_size") if k in meta.tokenizer},
        "bytes_per_token": meta.data.bytes_per_token if meta.data else None,
        **progress.model_dump(mode="json", exclude={"evals_since_best"}),
        "created": meta.created,
        "saved": meta.saved,
        "world_size": meta.run.world_size,
        "device": meta.run.device,
        "data": meta.data.model_dump(mode="json") if meta.data else None,
        "train": meta.train,
        "imported": meta.imported,
        "versions": meta.versions,
        "best": {"path": str(files.best), "step": progress.best_step, "val_loss": progress.best_val_loss}
        if best
        else None,
        "metrics": str(files.metrics) if files.metrics.exists() else None,
        "state": str(files.state) if files.state.exists() else None,
    }


def loss_curves(summary: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(step, loss) series for a checkpoint: train from its metrics file when there is one
    (a point per log step), else from the evaluations; val from the evaluations."""
    history = summary["history"]
    train = [(h["step"], h["train_loss"]) for h in history]
    if summary["metrics"]:
        logged, metrics = [], require_regular(summary["metrics"], "metrics file", CheckpointError)
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a torn last line
                continue
            if "val_loss" not in record and "train_loss" in record:
                logged.append((record["step"], record["train_loss"]))
        train = logged or train
    return {"train": train, "val": [(h["step"], h["val_loss"]) for h in history]}


class MetricsLog:
    """X.metrics.jsonl: one JSON object per line, flushed as training goes.

    Created on the first line. On resume, lines after the resumed step are dropped:
    those steps are trained again.
    """

    def __init__(self, path: Path, keep_through: int, enabled: bool = True):
        self.path = path
        self.enabled = enabled  # only rank 0 writes
        self.file: Any = None
        self.kept: list[str] = []
        if path.exists():  # a FIFO here would block both the read below and the first write
            require_regular(path, "metrics file", CheckpointError)
        if keep_through > 0 and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= keep_through:
                        self.kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):  # a torn last line from a killed process
                    continue

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        line = json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}) + "\n"
        try:
            if self.file is None:
                self.path.write_text("".join(self.kept), encoding="utf-8")
                self.file = open(self.path, "a", encoding="utf-8")
            self.file.write(line)
            self.file.flush()
        except OSError as exc:  # the checkpoint saved so far stays; the run stops with the reason
            from mygpt.files import describe_os_error

            raise CheckpointError(
                f"could not write the metrics file {self.path}: {describe_os_error(exc, self.path.parent)}."
            ) from None

    def close(self, keep: bool) -> None:
        if self.file is not None:
            self.file.close()
            if not keep:
                self.path.unlink(missing_ok=True)


def summaries(
    paths: list[Path] | None = None, out_dir: str | Path = DEFAULT_OUT_DIR
) -> tuple[list[dict[str, Any]], list[str]]:
    """What `mygpt info` shows: the summaries of the given checkpoints (any that cannot be
    read raises), or of every checkpoint under out_dir, newest first, skipping files that
    cannot be read. Returns the summaries and why each skipped file was skipped."""
    from mygpt.checkpoint import read_header
    from mygpt.errors import MyGPTError

    if paths:
        return [summary(read_header(p)) for p in paths], []
    _newest(out_dir)  # none at all is an error
    found = find(out_dir)
    out, skipped = [], []
    for p in found:
        try:
            out.append(summary(read_header(p)))
        except MyGPTError as exc:  # one stray file should not hide the others
            skipped.append(str(exc))
    return out, skipped
