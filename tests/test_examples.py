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


def run_script(script: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Run examples/<script> with bash in `folder`, on a small corpus at data/play.txt."""
    (folder / "data").mkdir()
    # the prompts of the scripts' picoGPT flow, so that a char model knows their characters
    text = make_text() + "Q: What is wisdom? A: knowledge and virtue.\n" * 3
    (folder / "data" / "play.txt").write_text(text, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(EXAMPLES / script), *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.slow
def test_picogpt_flow_runs_as_picogpts_readme_types_it(tmp_path: Path) -> None:
    done = run_script("picogpt.sh", tmp_path, "data/play.txt", "out")
    char, token = runs.find(tmp_path / "out" / "char"), runs.find(tmp_path / "out" / "token")
    assert len(char) == 2 and len(token) == 1  # the run (resumed in place) and the warm start; the token run
    steps = sorted(checkpoint.read_header(p).meta.progress.step for p in char)
    assert steps == [20, 150]  # resumed to 150 in all; warm-started for 20
    samples = done.stdout.split("\n")
    assert any(line.startswith("What is wisdom?") for line in samples)
    assert "Q: What is knowledge?\nA:" in done.stdout
    assert checkpoint.read_header(token[0]).meta.tokenizer["type"] == "word"
    assert "no tokenizer file is needed" in done.stderr


@pytest.mark.slow
def test_my_toy_gpt_flow_runs_as_its_readme_types_it(tmp_path: Path) -> None:
    done = run_script("my_toy_gpt.sh", tmp_path, "play.txt")
    first, second = sorted(runs.find(tmp_path / "checkpoints" / "my_model"), key=lambda p: p.name)  # --load: beside it
    assert checkpoint.read_header(first).meta.progress.step == 100  # --epochs counts steps in `training`
    assert checkpoint.read_header(second).meta.progress.step == 50
    # the last command samples the newest run with seed 42, as `mygpt generate` does
    again = subprocess.run([sys.executable, "-m", "mygpt", "generate", str(second), "-n", "200", "--seed", "42"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0 and done.stdout.endswith(again.stdout)
