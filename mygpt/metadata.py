"""The metadata of a checkpoint and of a run's training state: one typed, versioned schema.

A checkpoint's safetensors metadata holds `format` ("mygpt"), `format_version` and one
JSON string per field of `Meta`; a state file (X.state.safetensors) holds those of
`TrainingState`. Every read validates them here. A file written in an older format is
upgraded on read, one version at a time (`UPGRADES`), so each reader sees only the
current shape and never guesses a default.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mygpt.config import ModelConfig, TrainConfig
from mygpt.errors import CheckpointError

FORMAT_VERSION = 2


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Evaluation(Record):
    step: int
    train_loss: float
    val_loss: float
    lr: float
    elapsed: float  # seconds of training when it was made


class Progress(Record):
    """How far a run got. A run that is still going writes it at every evaluation."""

    step: int = 0
    max_iters: Optional[int] = None
    tokens_seen: int = 0
    train_loss: Optional[float] = None  # at the last evaluation
    val_loss: Optional[float] = None
    best_val_loss: Optional[float] = None
    best_step: Optional[int] = None
    evals_since_best: int = 0
    elapsed: float = 0.0  # seconds of training, over every session of the run
    history: tuple[Evaluation, ...] = ()


class DataSource(Record):
    """The prepared data a run trained on (from its meta.json)."""

    path: Optional[str] = None
    corpus: Optional[str] = None
    checksum: Optional[str] = None
    sources: Optional[tuple[dict[str, Any], ...]] = None
    tokens: Optional[dict[str, int]] = None
    bytes_per_token: Optional[float] = None


class RunInfo(Record):
    device: Optional[str] = None
    world_size: int = Field(1, ge=1)


class Meta(Record):
    """Everything a checkpoint says about itself besides its weights."""

    model: ModelConfig
    tokenizer: dict[str, Any]  # Tokenizer.to_dict(); checked by tokenizer.from_dict when loaded
    train: Optional[dict[str, Any]] = None  # the run's TrainConfig without `model`; None when imported
    progress: Progress = Progress()
    data: Optional[DataSource] = None
    run: RunInfo = RunInfo()
    files: dict[str, str] = {}  # companion kind -> file name
    versions: dict[str, str] = {}
    imported: Optional[dict[str, str]] = None  # {"from": source} for converted weights
    created: Optional[str] = None  # when the run started (ISO 8601)
    saved: Optional[str] = None

    @model_validator(mode="after")
    def _complete(self) -> Meta:
        if self.model.vocab_size is None:
            raise ValueError("the model config has no vocab_size")
        if not isinstance(self.tokenizer.get("type"), str):
            raise ValueError("the tokenizer has no type")
        if self.train is not None:
            self.train_config()  # raises if the stored train config is not one we can use
        return self

    def train_config(self) -> TrainConfig:
        """The run's resolved TrainConfig (its model included)."""
        if self.train is None:
            raise CheckpointError("this checkpoint was imported, not trained here: it has no train config.")
        return TrainConfig.model_validate({**self.train, "model": self.model})


class TrainingState(Record):
    """The metadata of a run's state file (X.state.safetensors), beside its tensors."""

    progress: Progress
    rng: dict[str, Any]  # Python's, numpy's and the sampler's generators (mygpt.resume)
    scaler: Optional[dict[str, Any]] = None  # the fp16 gradient scaler's state


def _upgrade_v1(meta: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: fields are checked now. Architecture fields added after the first
    checkpoints take the value those checkpoints were trained with; the state file's
    progress (which carried evals_since_best beside a checkpoint's) is unchanged."""
    older_model_defaults = {"gelu": "tanh", "pos": "learned", "vocab_multiple": 1}
    if isinstance(meta.get("model"), dict):
        meta = {**meta, "model": {**older_model_defaults, **meta["model"]}}
    return meta


# format version -> the step that turns its metadata into the next version's
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_v1}
