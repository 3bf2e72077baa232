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
import threading
from pathlib import Path

import pytest
from conftest import make_text
from typer.testing import CliRunner

from mygpt import checkpoint, runs
from mygpt.cli import app
from mygpt.config import ModelConfig

FORMAT_1_COMMIT = "bb04cd52e8ad00243ac6bf166c3d072dceef10e6"
REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--preset", "tiny", "--n-embd", "16", "--ctx", "16", "--eval-interval", "3", "--lr", "1e-2", "--min-lr", "1e-3",
         "--warmup-iters", "3", "--device", "cpu", "--dtype", "float32"]  # fmt: skip
SAMPLE = ["-p", "KING:", "-n", "80", "-t", "1.0", "--seed", "7", "--device", "cpu"]

runner = CliRunner()
pytestmark = pytest.mark.slow  # the old code runs in a process of its own

# The old code's command line, one command per line of stdin (a JSON list of arguments),
# one JSON reply per line of stdout. Its commands run one after another in this one
# process, so torch is imported once, not once per command (seconds each).
OLD_CLI = """\
import json, os, sys
from typer.testing import CliRunner
from mygpt.cli import app  # the old package: PYTHONPATH puts it before the installed one

runner = CliRunner()
for line in sys.stdin:
    result = runner.invoke(app, json.loads(line))
    failure = f"\\n{result.exception!r}" if result.exit_code else ""
    print(json.dumps({"code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr + failure}), flush=True)
os._exit(0)  # as the old command line left once torch was loaded: tearing it down takes a second
"""


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
    server = subprocess.Popen([sys.executable, "-c", OLD_CLI], cwd=root, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert server.stdin is not None and server.stdout is not None

    def old(*args: str) -> str:
        watchdog = threading.Timer(300, server.kill)  # a command that hangs fails the test instead
        watchdog.start()
        try:
            server.stdin.write(json.dumps(args) + "\n")
            server.stdin.flush()
            reply = server.stdout.readline()
        finally:
            watchdog.cancel()
        assert reply, f"the old code's process ended (exit code {server.poll()}) during {args[0]}"
        done = json.loads(reply)
        assert done["code"] == 0, done["stderr"]
        return done["stdout"]

    try:
        (root / "play.txt").write_text(make_text(), encoding="utf-8")
        old("prepare", "--text", "play.txt", "--out", "data/play")
        path = root / old("train", "--data", "data/play", "--out", "ck", "--max-iters", "6", *TRAIN).strip()
        sample = old("generate", str(path), *SAMPLE)
        resumed = root / "resumed" / path.name
        resumed.parent.mkdir()
        for f in (path, runs.companion(path, "state")):
            shutil.copy(f, resumed.parent / f.name)
        old("train", "--resume", str(resumed), "--max-iters", "9", "--device", "cpu", "--dtype", "float32")
        resumed_info = json.loads(old("info", "--json", str(resumed)))
    finally:
        server.stdin.close()  # the old code's loop ends
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {"root": root, "path": path, "sample": sample, "resumed": resumed_info}


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
