"""The scripts in examples/ run as written: each trains on a small corpus and prints what
its seed project's users expect to see."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_text

from mygpt import checkpoint, runs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(script: str, folder: Path) -> str:
    """Run examples/<script> on a small corpus in `folder` (data and checkpoint in folder/run); its stdout."""
    (folder / "play.txt").write_text(make_text(), encoding="utf-8")
    # The scripts' models are tiny: one thread each is faster, and steadier on a busy machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(EXAMPLES / script), "play.txt", "--out", "run", "--device", "cpu"]
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def the_checkpoint(folder: Path) -> Path:
    found = runs.find(folder / "run")
    assert len(found) == 1
    return found[0].relative_to(folder)


@pytest.mark.slow
def test_pico_gpt_counts_parameters_trains_and_generates_text(tmp_path: Path) -> None:
    out = run_example("pico_gpt.py", tmp_path)
    assert "Created tiny GPT with 108,544 parameters\nNon-embedding parameters: 106,496\n" in out  # wpe: 32 x 64
    assert "Output logits shape: torch.Size([2, 10, 100])" in out and "iter  60: loss" in out
    assert f"Model saved as '{the_checkpoint(tmp_path)}'" in out
    generated = out.partition("Generated: ")[2]
    assert generated.startswith("The king") and len(generated) == len("The king") + 100 + 1  # a char per token, "\n"


@pytest.mark.slow
def test_production_gpt_trains_from_its_yaml_file_and_calls_model_generate(tmp_path: Path) -> None:
    out = run_example("production_gpt.py", tmp_path)
    path = the_checkpoint(tmp_path)
    assert checkpoint.read_header(tmp_path / path).meta.progress.step == 60  # small.yaml's max_iters
    generated = out.partition(f"Trained: {path}\n")[2]
    assert generated.startswith("The king") and len(generated) == len("The king") + 50 + 1


@pytest.mark.slow
def test_tiny_gpt_trains_a_char_model_and_samples_from_python(tmp_path: Path) -> None:
    out = run_example("tiny_gpt.py", tmp_path)
    assert "step 30: train loss" in out and "step 60: train loss" in out
    generated = out.partition(f"saved {the_checkpoint(tmp_path)}\n")[2]
    assert generated.startswith("KING") and len(generated) == len("KING") + 200 + 1
