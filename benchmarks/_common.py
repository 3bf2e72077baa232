"""Helpers shared by the benchmark scripts: finding the corpus, describing the machine."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def find_corpus(given: str | None = None) -> Path:
    """Tiny Shakespeare: the given path, data/, or the shared copy beside the checkout."""
    for candidate in [given, "data/tiny_shakespeare.txt", "../shared/data/tiny_shakespeare.txt"]:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    sys.exit("Tiny Shakespeare not found: run `uv run mygpt prepare` first, or pass --corpus PATH.")


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
