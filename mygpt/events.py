"""What a training run tells its caller, as it goes: events, and the flag that stops it.

`mygpt.train(config)` yields these; the CLI renders them and a script may keep the
last one. This module imports neither torch nor numpy, so the CLI can name the types
without paying for them at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from mygpt.config import TrainConfig


@dataclass(frozen=True)
class Started:
    config: TrainConfig  # resolved: model.vocab_size and data are filled in
    path: Path  # where the checkpoint is written
    num_params: int
    device: str
    dtype: str
    compiled: bool
    train_tokens: int
    val_tokens: int
    start_step: int = 0  # > 0 when resuming
    world_size: int = 1  # processes training together (torchrun)


@dataclass(frozen=True)
class Stepped:
    step: int  # optimizer steps done so far
    max_iters: int
    lr: float
    elapsed: float
    loss: Optional[float] = None  # set every log_interval steps
    tokens_per_sec: Optional[float] = None


@dataclass(frozen=True)
class Evaluated:
    step: int
    train_loss: float
    val_loss: float
    lr: float
    elapsed: float
    is_best: bool


@dataclass(frozen=True)
class Saved:
    path: Path
    step: int


@dataclass(frozen=True)
class Notice:
    message: str  # something the user should know that does not stop the run


@dataclass(frozen=True)
class Interrupted:
    path: Optional[Path]  # None when nothing was trained yet, so nothing was saved
    step: int
    signum: Optional[int] = None


@dataclass(frozen=True)
class Finished:
    path: Path
    step: int
    best_val_loss: float
    elapsed: float
    reason: str = "max_iters"  # or "max_time", "patience", "target_loss"


TrainEvent = Union[Started, Stepped, Evaluated, Saved, Notice, Interrupted, Finished]


@dataclass
class StopFlag:
    """Set (from a signal handler, say) to make the loop save and stop after the current step."""

    signum: Optional[int] = None

    def set(self, signum: int) -> None:
        self.signum = signum


@dataclass(frozen=True)
class PrepareProgress:
    """How far `prepare` has come: told after each batch of about a megabyte."""

    phase: str  # downloading, reading characters, sampling, counting the sample, training the tokenizer, tokenizing, splitting
    done: int  # bytes read so far in this phase (of the files on disk)
    total: Optional[int]  # bytes to read in this phase; None when not known
    documents: int = 0
    tokens: int = 0
