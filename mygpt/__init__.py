"""mygpt: train GPT language models from scratch on your own text, and sample from them.

The public API is importable from here. Names are loaded on first use, so that
`import mygpt` (and the `mygpt --help` command) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "GPT": "mygpt.model",
    "ModelConfig": "mygpt.config",
    "TrainConfig": "mygpt.config",
    "SampleConfig": "mygpt.config",
    "PrepareConfig": "mygpt.config",
    "MyGPTError": "mygpt.errors",
    "prepare": "mygpt.data",
    "train": "mygpt.training",
    "generate": "mygpt.sampling",
    "load_checkpoint": "mygpt.checkpoint",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mygpt' has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name])
    return getattr(module, "load" if name == "load_checkpoint" else name)
