"""A run written by the previous code (checkpoint format 1) still loads, samples and resumes.

tests/fixtures/v1 holds a checkpoint and its training state as format 1 wrote them, and
expected.json: how they were made, the text `mygpt generate` printed from them with a seed,
and the losses their resume reached. Format 2 is held to all three.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_text
from mygpt import checkpoint, runs
from mygpt.cli import app
from mygpt.config import ModelConfig

FIXTURE = Path(__file__).parent / "fixtures" / "v1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
CHECKPOINT = FIXTURE / EXPECTED["checkpoint"]

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_info_shows_a_format_1_checkpoint_upgraded() -> None:
    info = json.loads(invoke("info", "--json", str(CHECKPOINT)).stdout)
    assert info["format_version"] == 1  # as written; what is read is format 2
    assert set(info["model"]) == set(ModelConfig.model_fields)  # every field, those added since included
    assert info["model"]["vocab_multiple"] == 1 and info["tokenizer"] == {"type": "char", "vocab_size": 38}
    assert info["step"] == 6 and [h["step"] for h in info["history"]] == [3, 6]
    assert info["state"] == str(runs.companion(CHECKPOINT, "state"))
    assert checkpoint.load_state(runs.companion(CHECKPOINT, "state"))[1].progress.step == 6


def test_a_format_1_checkpoint_samples_the_text_it_sampled() -> None:
    g = EXPECTED["generate"]
    result = invoke("generate", str(CHECKPOINT), "-p", g["prompt"], "-n", str(g["max_new_tokens"]),
                    "-t", str(g["temperature"]), "--seed", str(g["seed"]), "--device", "cpu")  # fmt: skip
    assert result.stdout == g["stdout"]


def test_a_format_1_run_resumes_to_the_losses_it_reached(workdir: Path) -> None:
    for path in (CHECKPOINT, runs.companion(CHECKPOINT, "state")):
        shutil.copy(path, workdir / path.name)
    copy = workdir / CHECKPOINT.name
    Path("play.txt").write_text(make_text(), encoding="utf-8")  # the corpus the run was trained on
    invoke("prepare", "--text", "play.txt", "--out", "data/play")
    r = EXPECTED["resume"]
    # --dtype: the run was made on a CPU with bf16 instructions, where auto means bfloat16.
    invoke("train", "--resume", str(copy), "--max-iters", str(r["max_iters"]), "--data", "data/play",
           "--device", "cpu", "--dtype", "bfloat16")  # fmt: skip
    info = json.loads(invoke("info", "--json", str(copy)).stdout)
    assert info["step"] == r["step"] and info["format_version"] == checkpoint.FORMAT_VERSION == 2
    assert info["val_loss"] == pytest.approx(r["val_loss"], abs=1e-4)
    assert info["train_loss"] == pytest.approx(r["train_loss"], abs=1e-4)
    assert [h["step"] for h in info["history"]] == [3, 6, 9]
