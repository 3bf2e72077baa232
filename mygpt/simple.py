"""One call per task, for scripts and notebooks, in the shapes the seed projects used.

- `generate_ids(model, idx, max_new_tokens, ...)`: nanoGPT's `model.generate` (and
  `GPT.generate` is this function): token ids (B, T) in, (B, T + max_new_tokens) out.
- `generate_text(model, tokenizer, prompt, ...)`: text in, the prompt and its continuation
  out (Pico-GPT's `generate.py`), with `load_model(path)` giving (model, tokenizer).
- `train_from_config(path, **overrides)`: a whole training run from a config file, as
  `mygpt train --config FILE` runs it; returns the checkpoint's path. `load_config(path)`
  gives the config itself (the production GPT's name).
- `SimpleTokenizer()`: Pico-GPT's tokenizer that needs no training: UTF-8 bytes.

Design choices:
- Thin layers, no math of their own: sampling is `mygpt.sampling.generate` (so the same
  seed gives the same tokens as `mygpt generate`: KV cache, context window and all),
  training is `mygpt.training.train`.
- The rows of a batch are independent samples, each from its own prompt: row b is
  sampled with seed + b. Without a seed, one is drawn from torch's global generator, so
  `torch.manual_seed(n)` makes a script repeatable, as it does in nanoGPT.
- Sampling puts the model in eval mode; these functions put back the mode they found,
  so a training loop may sample between steps.
- Invalid arguments raise `ConfigError` naming the argument; nothing here prints.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from mygpt import bpe, chat, checkpoint, data, device as devices, runs, sampling, training
from mygpt.config import SampleConfig, TrainConfig
from mygpt.configure import build
from mygpt.events import Interrupted
from mygpt.model import GPT
from mygpt.tokenizer import ENDOFTEXT, BPETokenizer, Tokenizer


def generate_ids(
    model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: Optional[int] = None,
    top_p: float = 1.0, seed: Optional[int] = None,
) -> torch.Tensor:  # fmt: skip
    """idx (B, T) followed by max_new_tokens sampled ids per row: (B, T + max_new_tokens),
    on idx's device. Row b is what `mygpt.sampling.generate` gives for the prompt idx[b]
    and seed + b; a row longer than the context is seen through its last block_size ids."""
    if idx.dim() != 2 or idx.dtype.is_floating_point or idx.dtype.is_complex:
        raise ValueError(f"idx must be a (B, T) tensor of token ids, not {idx.dtype} of shape {tuple(idx.shape)}: "
                         "for one prompt, pass torch.tensor([ids]).")  # fmt: skip
    if idx.size(1) == 0:
        raise ValueError("idx has no tokens to continue: give each row at least one token id.")
    cfg = _sample_config(
        dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    )
    seed = _seed(cfg.seed)
    rows = []
    with _mode_kept(model):
        for b, prompt in enumerate(idx.tolist()):
            steps = list(sampling.generate(model, prompt, cfg, seed + b))  # (1,) ids each, on the model's device
            rows.append(torch.cat(steps).to(idx) if steps else idx.new_empty(0))  # (max_new_tokens,)
    return torch.cat([idx, torch.stack(rows)], dim=1)  # (B, T + max_new_tokens)


def generate_text(
    model: GPT, tokenizer: Tokenizer, prompt: str, max_tokens: int = 100, temperature: float = 0.8,
    top_k: Optional[int] = None, top_p: float = 1.0, seed: Optional[int] = None, stop: Sequence[str] = (),
) -> str:  # fmt: skip
    """The prompt followed by up to max_tokens sampled tokens' text, ending before the first
    stop string if one appears. An empty prompt starts from the document separator (or a
    newline), as `mygpt generate` does."""
    values = dict(max_new_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, stop=stop)
    cfg = _sample_config(values, spelled={"max_new_tokens": "max_tokens"})
    start = sampling.prompt_ids(tokenizer, prompt)
    with _mode_kept(model):
        steps = sampling.generate(model, start, cfg, _seed(cfg.seed))
        return prompt + "".join(chat.stream_text(steps, sampling.TextStream(tokenizer, cfg.stop)))


def load_model(path: str | Path | None = None, device: str = "cpu") -> tuple[GPT, Tokenizer]:
    """(model, tokenizer) from a checkpoint file; without a path, the newest checkpoint
    under checkpoints/. device: cpu, auto, cuda, cuda:N or mps. The model is in eval mode."""
    loaded = checkpoint.load(runs.resolve(path), device=str(devices.resolve(device)))
    return loaded.model, loaded.tokenizer


class SimpleTokenizer(BPETokenizer):
    """Pico-GPT's `SimpleTokenizer()`: a tokenizer that needs no corpus. Each byte of the
    UTF-8 text is one token (256 of them, then <|endoftext|>): byte-level BPE without
    merges, what `mygpt prepare --tokenizer bpe --vocab-size 257` trains."""

    def __init__(self) -> None:
        super().__init__("bpe", bpe.SPLIT_PATTERN, {bytes([b]): b for b in range(256)}, {ENDOFTEXT: 256})


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """The TrainConfig a .toml, .json or .yaml file describes, with `overrides` on top
    (as `train_from_config` takes them); an invalid file or value is a ConfigError."""
    labels = {key: f"load_config({key}=...)" for key in overrides}
    return build(TrainConfig, file=path, flags=overrides, labels=labels)


def train_from_config(path: str | Path, **overrides: Any) -> Path:
    """Train as the config file (.toml, .json, .yaml) says, with `overrides` on top, and
    return the path of the checkpoint written at the end.

    overrides are TrainConfig fields: `max_iters=200`, `device="cpu"`, nested ones as a
    dict (`model={"n_layer": 2}`); None means not given. Without data in the file or the
    overrides, the default corpus is prepared first (downloaded if missing), as `mygpt
    train` does. Nothing is printed: for progress, iterate `mygpt.train(config)`. Ctrl-C
    saves the run and raises KeyboardInterrupt.
    """
    cfg = load_config(path, **overrides)
    if cfg.data is None:
        cfg = cfg.model_copy(update={"data": str(data.ensure_default())})
    last = None
    for event in training.train(cfg):
        last = event  # the run ends with Finished, or Interrupted
    if isinstance(last, Interrupted):
        raise KeyboardInterrupt(f"training stopped at step {last.step}; saved: {last.path}")
    return last.path


def _sample_config(values: dict[str, Any], spelled: Optional[dict[str, str]] = None) -> SampleConfig:
    """A SampleConfig from a function's arguments (field -> value; `spelled`: field -> the
    argument's name where they differ); an invalid value is a ConfigError naming the argument."""
    labels = {key: f"the {(spelled or {}).get(key, key)} argument" for key in values}
    return build(SampleConfig, flags=values, labels=labels)


def _seed(seed: Optional[int]) -> int:
    """The given seed, or one drawn from torch's global generator (torch.manual_seed sets it)."""
    return seed if seed is not None else int(torch.randint(2**31, ()))


@contextlib.contextmanager
def _mode_kept(model: GPT) -> Iterator[None]:
    """Put back the model's train/eval mode afterwards (sampling switches it to eval)."""
    training_mode = model.training
    try:
        yield
    finally:
        model.train(training_mode)
