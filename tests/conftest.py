"""Shared fixtures: a small corpus written by the test, tiny configs, the arguments of a short CLI run.

Nothing here needs the network or the real Tiny Shakespeare file. Tests that mean the CPU
say so (`--device cpu`, `device="cpu"`): with a GPU visible, `auto` would pick CUDA, which
pads the vocabulary, compiles the model and samples other text for the same seed.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Iterator

# Where PYTHONDONTWRITEBYTECODE is set, no import is ever cached, and each of the twenty-odd
# Python processes the tests start (training runs, torchrun's launcher and ranks, the old code
# in test_upgrade) compiles the Python source of torch and what it imports anew: about 5 s of
# CPU each, more than most of those tests spend on anything else. So this session and the
# processes it starts cache bytecode, under .pytest_cache/ (git-ignored), not beside the sources.
PYCACHE: Path | None = None
if sys.dont_write_bytecode:
    PYCACHE = Path(
        os.environ.get("PYTHONPYCACHEPREFIX") or Path(__file__).resolve().parents[1] / ".pytest_cache" / "pycache"
    )
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix = str(PYCACHE)
    sys.dont_write_bytecode = False


def pytest_sessionfinish() -> None:
    """Drop the bytecode of code that lived in temporary folders (the old package that
    test_upgrade extracts): nothing imports it again, and the cache would only grow."""
    if PYCACHE is not None:
        temp = Path(tempfile.gettempdir()).resolve()
        shutil.rmtree(PYCACHE / temp.relative_to(temp.anchor), ignore_errors=True)


import pytest  # noqa: E402

from mygpt import datasets  # noqa: E402
from mygpt.config import ModelConfig  # noqa: E402

# The Hugging Face libraries read these when imported: no test may wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

WORDS = "the king and queen of a far land spoke to their people with words of hope and fear".split()


def make_text(n_lines: int = 300, seed: int = 0) -> str:
    """Deterministic play-like text: a few thousand characters, small vocabulary."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        speaker = rng.choice(["KING", "QUEEN", "FOOL"])
        lines.append(
            f"{speaker}:\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).capitalize() + ".\n"
        )
    return "\n".join(lines)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, so data/ and checkpoints/ are the test's own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def corpus_file(workdir: Path) -> Path:
    path = workdir / "play.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path


@pytest.fixture
def offline_shakespeare(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the built-in corpus at a local file:// source, so 'downloading' it is real but offline."""
    source = workdir / "source" / "input.txt"
    source.parent.mkdir()
    text = make_text(seed=1).encode("utf-8")
    source.write_bytes(text)
    corpus = datasets.Corpus(
        name="shakespeare",
        filename="tiny_shakespeare.txt",
        url=source.as_uri(),
        sha256=hashlib.sha256(text).hexdigest(),
    )
    monkeypatch.setitem(datasets.CORPORA, "shakespeare", corpus)
    return source


@pytest.fixture
def tiny() -> ModelConfig:
    return ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=32)


# A few seconds of training on the CPU: enough for the loss to fall clearly below uniform guessing.
TINY_TRAIN = ["--preset", "tiny", "--n-embd", "16", "--ctx", "16", "--max-iters", "30", "--eval-interval", "15",
              "--lr", "1e-2", "--min-lr", "1e-3", "--warmup-iters", "3", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail, rather than hang, when something waits on a FIFO for more than 10 s."""

    def waited(signum: int, frame: object) -> None:
        raise TimeoutError("waited on a FIFO: it was opened instead of refused")

    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
