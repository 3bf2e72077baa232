"""What a run's config becomes once its data and device are known.

A config is written before the data is opened; some of it can only be settled after:
the vocabulary size (the tokenizer's), the embedding's row multiple (the device's),
the number of steps when it is given in passes over the data (`--epochs`), weight tying
when it depends on the corpus's size (`--auto-tie-weights`), and whether the data is
tokenized the way `--mode` says. `plan` settles them and says, as notices, what it
decided for the user. No torch here: the device is passed as its type.
"""

from __future__ import annotations

import math
from typing import Optional

from mygpt.config import TrainConfig
from mygpt.errors import ConfigError
from mygpt.tokenizer import Tokenizer

AUTO_TIE_BELOW = 1_000_000  # training tokens under which --auto-tie-weights ties (picoGPT's rule)
MODES = {"char": ("char",), "token": ("bpe", "word")}  # --mode -> the tokenizer types it accepts


def plan(
    cfg: TrainConfig, tokenizer: Tokenizer, train_tokens: int, device_type: str, world_size: int = 1
) -> tuple[TrainConfig, list[str]]:
    """The config with everything the data and device decide filled in, and notices for
    the user about what was decided."""
    check_mode(cfg.mode, tokenizer, f"the data in {cfg.data}", data=True)
    vocab_size = tokenizer.vocab_size
    if cfg.model.vocab_size is not None and cfg.model.vocab_size < vocab_size:
        raise ConfigError(
            f"model.vocab_size={cfg.model.vocab_size} is smaller than the tokenizer's {vocab_size} tokens; "
            "leave it unset to use the tokenizer's size."
        )
    notices = []
    model = {
        "vocab_size": cfg.model.vocab_size or vocab_size,
        "vocab_multiple": cfg.model.vocab_multiple or (64 if device_type == "cuda" else 1),
    }
    if cfg.auto_tie_weights:
        model["tie_weights"] = train_tokens < AUTO_TIE_BELOW
        notices.append(
            f"--auto-tie-weights: {train_tokens:,} training tokens, "
            + ("under" if model["tie_weights"] else "not under")
            + f" {AUTO_TIE_BELOW:,}, so the LM head {'shares' if model['tie_weights'] else 'does not share'} "
            "the token embedding's matrix"
        )
    update: dict = {"model": cfg.model.model_copy(update=model)}
    if cfg.epochs is not None:
        per_step = cfg.tokens_per_step(world_size)
        update["max_iters"] = max(1, math.ceil(cfg.epochs * train_tokens / per_step))
        notices.append(
            f"--epochs {cfg.epochs:g}: {cfg.epochs:g} x {train_tokens:,} training tokens at {per_step:,} tokens "
            f"per step = {update['max_iters']:,} steps"
        )
    return cfg.model_copy(update=update), notices


def check_mode(mode: Optional[str], tokenizer: Tokenizer, source: str, data: bool = False) -> None:
    """picoGPT's --mode char|token, checked against the tokenizer the data (`data`) or the
    model has."""
    if mode is None:
        return
    tokenizer_type = tokenizer.to_dict()["type"]
    if tokenizer_type not in MODES[mode]:
        actual = "char" if tokenizer_type == "char" else "token"
        fix = f"Use --mode {actual}"
        if data:
            fix += f", or prepare the data with --tokenizer {' or '.join(MODES[mode])}"
        raise ConfigError(f"--mode {mode}, but {source} is {actual}-level (a {tokenizer_type} tokenizer). {fix}.")
