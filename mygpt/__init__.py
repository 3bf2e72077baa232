"""mygpt: train GPT language models from scratch on your own text, and sample from them.

The public API is importable from here. Names are loaded on first use, so that
`import mygpt` (and the `mygpt --help` command) does not import torch. No public name is
also the name of a submodule: importing a submodule binds its name on the package, and
would otherwise replace the function (`mygpt.train` the function, `mygpt.training` the module).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_PUBLIC = {
    "GPT": ("mygpt.model", "GPT"),
    "ModelConfig": ("mygpt.config", "ModelConfig"),
    "GPTConfig": ("mygpt.config", "GPTConfig"),  # nanoGPT's, Pico-GPT's and picoGPT's name
    "TrainConfig": ("mygpt.config", "TrainConfig"),
    "SampleConfig": ("mygpt.config", "SampleConfig"),
    "PrepareConfig": ("mygpt.prepare_config", "PrepareConfig"),
    "MyGPTError": ("mygpt.errors", "MyGPTError"),
    "prepare": ("mygpt.corpus", "prepare"),
    "train": ("mygpt.training", "train"),
    "generate": ("mygpt.sampling", "generate"),
    "load_checkpoint": ("mygpt.checkpoint", "load"),
    "load_model": ("mygpt.simple", "load_model"),
    "generate_text": ("mygpt.simple", "generate_text"),
    "train_from_config": ("mygpt.simple", "train_from_config"),
    "load_config": ("mygpt.simple", "load_config"),
    "SimpleTokenizer": ("mygpt.simple", "SimpleTokenizer"),
    "BPETokenizer": ("mygpt.tokenizer", "BPETokenizer"),
    "CharTokenizer": ("mygpt.tokenizer", "CharTokenizer"),
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mygpt' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later reads find it directly
    return value
