"""A run written by the previous code (checkpoint format 1) still loads, samples and resumes.

The previous code is taken from this repository's history (FORMAT_1_COMMIT, the last commit
that wrote format 1) and run as it was: it prepares a small corpus, trains a tiny model,
samples from it with a seed, and resumes a copy of the run. Today's code must then read
that checkpoint, print the same sample, and resume to the same losses. Nothing binary is
kept in the repository for this; the old code makes its files anew each time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_text
from mygpt import checkpoint, runs
from mygpt.cli import app
from mygpt.config import ModelConfig

FORMAT_1_COMMIT = "bb04cd52e8ad00243ac6bf166c3d072dceef10e6"
REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--preset", "tiny", "--n-embd", "16", "--ctx", "16", "--eval-interval", "3", "--lr", "1e-2", "--min-lr", "1e-3",
         "--warmup-iters", "3", "--device", "cpu", "--dtype", "float32"]  # fmt: skip
SAMPLE = ["-p", "KING:", "-n", "80", "-t", "1.0", "--seed", "7", "--device", "cpu"]

runner = CliRunner()
pytestmark = pytest.mark.slow  # the old code runs as four processes of its own


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def old_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The previous code's run: its checkpoint (6 steps), the text it sampled, and the
    summary of a copy it resumed to step 9. Today's code never touches these files."""
    root = tmp_path_factory.mktemp("format1")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", FORMAT_1_COMMIT, "mygpt"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"this checkout has no history with commit {FORMAT_1_COMMIT[:7]} (the format-1 writer)")
    (root / "old.tar").write_bytes(archive.stdout)
    with tarfile.open(root / "old.tar") as tar:
        tar.extractall(root / "old", filter="data")
    env = {**os.environ, "PYTHONPATH": str(root / "old")}  # the old package before the installed one

    def old(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "mygpt", *args], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    (root / "play.txt").write_text(make_text(), encoding="utf-8")
    old("prepare", "--text", "play.txt", "--out", "data/play")
    path = root / old("train", "--data", "data/play", "--out", "ck", "--max-iters", "6", *TRAIN).strip()
    sample = old("generate", str(path), *SAMPLE)
    resumed = root / "resumed" / path.name
    resumed.parent.mkdir()
    for f in (path, runs.companion(path, "state")):
        shutil.copy(f, resumed.parent / f.name)
    old("train", "--resume", str(resumed), "--max-iters", "9", "--device", "cpu", "--dtype", "float32")
    return {"root": root, "path": path, "sample": sample, "resumed": json.loads(old("info", "--json", str(resumed)))}


def test_info_shows_a_format_1_checkpoint_upgraded(old_run: dict) -> None:
    path = old_run["path"]
    info = json.loads(invoke("info", "--json", str(path)).stdout)
    assert info["format_version"] == 1  # as written; what is read is format 2
    assert set(info["model"]) == set(ModelConfig.model_fields)  # every field, those added since included
    assert info["model"]["vocab_multiple"] == 1 and info["tokenizer"]["type"] == "char"
    assert info["step"] == 6 and [h["step"] for h in info["history"]] == [3, 6]
    assert checkpoint.load_state(runs.companion(path, "state"))[1].progress.step == 6


def test_a_format_1_checkpoint_samples_the_text_the_old_code_sampled(old_run: dict) -> None:
    assert invoke("generate", str(old_run["path"]), *SAMPLE).stdout == old_run["sample"]


def test_a_format_1_run_resumes_to_the_losses_the_old_code_reached(old_run: dict, workdir: Path) -> None:
    path = old_run["path"]
    for f in (path, runs.companion(path, "state")):
        shutil.copy(f, workdir / f.name)
    copy = workdir / path.name
    invoke("train", "--resume", str(copy), "--max-iters", "9", "--data", str(old_run["root"] / "data/play"),
           "--device", "cpu", "--dtype", "float32")  # fmt: skip
    info, expected = json.loads(invoke("info", "--json", str(copy)).stdout), old_run["resumed"]
    assert info["step"] == expected["step"] == 9 and info["format_version"] == checkpoint.FORMAT_VERSION == 2
    assert info["val_loss"] == pytest.approx(expected["val_loss"], abs=1e-5)
    assert info["train_loss"] == pytest.approx(expected["train_loss"], abs=1e-5)
    assert [h["step"] for h in info["history"]] == [h["step"] for h in expected["history"]] == [3, 6, 9]
