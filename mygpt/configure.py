"""A config from its layers: defaults, presets, a config file, flags and `--set`.

Precedence, lowest first: field defaults < `base` (a resumed run's stored config) <
`--preset` < `--config FILE` < explicit flags < `--set key=value`. Each layer is merged
as a nested dict and the result validated once, by the pydantic models of
`mygpt.config`; an error names the value and the layer it came from.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mygpt.errors import ConfigError
from mygpt.files import describe_os_error, require_regular, stat_mode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib


# Presets are partial overrides of TrainConfig's defaults. The defaults themselves are the
# "default" preset: a 0.8M-parameter character model small enough to train on a laptop CPU
# in the time it takes to read the README, and large enough to write readable Shakespeare.
PRESETS: dict[str, dict[str, Any]] = {
    # The field defaults: 4 layers, 4 heads, n_embd 128, context 64, RoPE, batch 32,
    # 800 steps of AdamW at 3e-3 (cosine to 3e-4).
    "default": {},
    "tiny": {
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32},
        "batch_size": 32,
        "max_iters": 100,
        "lr": 5e-3,
        "min_lr": 5e-4,
        "warmup_iters": 10,
        "eval_interval": 50,
        "eval_iters": 5,
    },
    # nanoGPT's GPU recipe shape for Tiny Shakespeare (6 layers, 6 heads, 384 wide,
    # context 256, batch 64, dropout 0.2), with RoPE; meant for a GPU.
    "shakespeare": {
        "model": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2},
        "batch_size": 64,
        "max_iters": 5000,
        "lr": 1e-3,
        "min_lr": 1e-4,
        "warmup_iters": 100,
        "eval_interval": 250,
        "eval_iters": 200,
    },
    # My Toy GPT's defaults (`uv run training` starts from them): one block of 16 heads,
    # 128 wide, context 64, dropout 0.2, 5000 steps of AdamW at a constant 1e-3 with
    # weight decay 0.01 (its --l2-reg), batches of 128.
    "toygpt": {
        "model": {"n_layer": 1, "n_head": 16, "n_embd": 128, "block_size": 64, "dropout": 0.2},
        "batch_size": 128,
        "max_iters": 5000,
        "lr": 1e-3,
        "min_lr": 0.0,
        "lr_schedule": "constant",
        "warmup_iters": 0,
        "weight_decay": 0.01,
    },
    # GPT-2 small (124M): GPT-2's architecture (learned positions, tanh GELU) and
    # nanoGPT's OpenWebText recipe on one GPU (16 x 1024 tokens x 32 micro-steps =
    # 0.5M tokens per step). Prepare data with `mygpt prepare --tokenizer gpt2`.
    "gpt2": {
        "model": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "pos": "learned", "gelu": "tanh"},
        "batch_size": 16,
        "grad_accum": 32,
        "max_iters": 600_000,
        "lr": 6e-4,
        "min_lr": 6e-5,
        "warmup_iters": 2000,
        "beta2": 0.95,
        "eval_interval": 1000,
        "eval_iters": 200,
    },
}

C = TypeVar("C", bound=BaseModel)

# Settings of the projects mygpt grew from (the production GPT's config files, TinyGPT's
# script variables) that have another name here: only for the hint of an unknown key.
OTHER_NAMES = {
    "embed_dim": "model.n_embd", "d_model": "model.n_embd", "num_layers": "model.n_layer", "n_layers": "model.n_layer",
    "heads": "model.n_head", "max_block_size": "model.block_size", "learning_rate": "lr", "mixed_precision": "dtype",
    "ff_dim": "nothing: the MLP is 4 x n_embd wide", "validation_split": "`mygpt prepare --val-fraction`",
}  # fmt: skip


def build(
    cls: type[C],
    *,
    base: dict[str, Any] | None = None,
    preset: str | None = None,
    file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
) -> C:
    """Resolve a config from its layers, lowest precedence first, and validate it once.

    `base` is the lowest layer after the defaults (a resumed run's stored config).
    `flags` maps dotted field names (`model.n_layer`, `lr`) to values; entries that are
    `None` were not given and are skipped; `labels` names the option each flag was given
    as (default: --field-name). `sets` are `key=value` strings for any field.
    Raises ConfigError with a message that names the value and where it came from.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def apply(values: dict[str, Any], source: str) -> None:
        for key, value in _flatten(values).items():
            _set_dotted(merged, key, value)
            origin[key] = source

    if base is not None:
        apply(base, "the checkpoint")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}. Presets: {', '.join(PRESETS)}.")
        apply(PRESETS[preset], f"preset {preset}")
    if file is not None:
        values = load_file(file)
        _check_keys(cls, values, f"config file {file}")
        apply(values, f"config file {file}")
    for key, value in (flags or {}).items():
        if value is not None:
            apply({key: value}, (labels or {}).get(key) or "--" + key.split(".")[-1].replace("_", "-"))
    for item in sets:
        key, value = _parse_set(item)
        _check_keys(cls, {key: value}, "--set")
        apply({key: value}, f"--set {key}")

    try:
        return cls.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, origin)) from None


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a .toml, .json or .yaml config file into a nested dict."""
    path = Path(path)
    if stat_mode(path, "config file", ConfigError) is None:
        example = Path("examples/configs") / path.name  # the seed's configs/small.yaml has a mygpt twin there
        hint = f" (mygpt's example of that name is {example})" if example.is_file() and example != path else ""
        if not hint and path.parent.name == "configs" and example.parent.is_dir():
            hint = f" (mygpt's examples: {', '.join(str(p) for p in sorted(example.parent.glob('*.yaml')))})"
        raise ConfigError(f"config file {path} does not exist{hint}.")
    require_regular(path, "config file", ConfigError)  # a folder, FIFO or device: said, never opened
    if path.suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ConfigError(f"config file {path} must end in .toml, .json, .yaml or .yml.")
    try:
        values = _parse(path.suffix, path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # each parser's error is a ValueError
        raise ConfigError(f"config file {path} could not be parsed: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} could not be read: {describe_os_error(exc, path)}.") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, not {type(values).__name__}.")
    return values


def _parse(suffix: str, text: str) -> Any:
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix == ".json":
        return json.loads(text)
    import yaml  # only for a YAML file

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def field_help(
    cls: type[BaseModel], dotted: str, preset: dict[str, Any] | None = None, description: str | None = None,
    show_default: bool = True,
) -> str:  # fmt: skip
    """Help text for a CLI option: the field's description (or the one given) and its
    default (the preset's, for a command that starts from one)."""
    for part in dotted.split(".")[:-1]:
        cls = cls.model_fields[part].annotation  # type: ignore[assignment]
    info = cls.model_fields[dotted.split(".")[-1]]
    default = _flatten(preset or {}).get(dotted, info.get_default(call_default_factory=True))
    shown = "" if default in (None, (), "") or not show_default else f" (default: {default})"
    return f"{description or info.description}{shown}"


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _parse_set(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r} is not of the form key=value (for example --set model.n_layer=6).")
    try:
        # JSON gives numbers, true/false and null their types; anything else stays a string.
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _check_keys(cls: type[BaseModel], values: dict[str, Any], source: str) -> None:
    """Reject unknown keys with a suggestion, before pydantic's terser message."""
    known = _known_keys(cls)
    for key in _flatten(values):
        if key not in known:
            close = (
                difflib.get_close_matches(key, known, n=1)
                or [k for k in known if k.split(".")[-1] == key.split(".")[-1]][:1]
            )
            leaf = key.split(".")[-1]
            close = [OTHER_NAMES[leaf]] if leaf in OTHER_NAMES else close
            hint = f" Did you mean {close[0]!r}?" if close else ""
            if key.split(".")[0] in ("training", "tokenizer") or key.startswith("data."):  # the production GPT's
                hint += (
                    " This looks like another project's config layout: mygpt's settings are the fields of its"
                    " TrainConfig (lr, batch_size, epochs, model.n_embd, ...), as in examples/configs/small.yaml."
                )
            raise ConfigError(f"unknown setting {key!r} in {source}.{hint} Known settings: {', '.join(known)}.")


def _known_keys(cls: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, info in cls.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += _known_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _explain(exc: ValidationError, origin: dict[str, str]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error":  # a cross-field rule: its message already names the values
            lines.append(msg)
        else:
            source = origin.get(key, "default")
            lines.append(f"{key}={err['input']!r} (from {source}): {msg}.")
    return (
        "invalid configuration: " + " ".join(lines)
        if len(lines) == 1
        else ("invalid configuration:\n" + "\n".join(f"  - {line}" for line in lines))
    )
