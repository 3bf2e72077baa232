"""Training under torchrun: 2 CPU processes (--device cpu, also with a GPU visible), gloo, real `torchrun` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import make_text
from safetensors.torch import load_file

from mygpt import checkpoint, corpus, runs
from mygpt.prepare_config import PrepareConfig

TESTS = Path(__file__).parent
pytestmark = pytest.mark.slow  # each test starts torchrun and its ranks


def torchrun(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(TESTS.parent), **(env or {})})  # fmt: skip


@pytest.fixture
def play(workdir: Path) -> Path:
    (workdir / "play.txt").write_text(make_text(n_lines=400), encoding="utf-8")
    return corpus.prepare(PrepareConfig(text=("play.txt",)))


TRAIN = ["--preset", "tiny", "--n-embd", "16", "--block-size", "16", "--batch-size", "8", "--device", "cpu",
         "--eval-interval", "10", "--eval-iters", "2", "--dropout", "0.1"]  # fmt: skip


def test_two_ranks_train_one_model_and_resume(play: Path, workdir: Path) -> None:
    weights = workdir / "weights"
    weights.mkdir()
    run = torchrun(str(TESTS / "ddp_worker.py"), str(weights), "train", "--data", str(play), "--out", "ck",
                   "--max-iters", "20", *TRAIN)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (ckpt,) = runs.find("ck")  # one checkpoint, written once (by rank 0)
    assert run.stdout.strip() == str(ckpt)  # only rank 0 prints the path
    assert "x 2 ranks" in run.stderr  # the global batch is shown
    rank0, rank1 = load_file(str(weights / "rank0.safetensors")), load_file(str(weights / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for name in rank0:  # DDP keeps the replicas identical
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0)
    summary = runs.summary(checkpoint.read_header(ckpt))
    assert summary["world_size"] == 2
    losses = [
        json.loads(line)["train_loss"]
        for line in ckpt.with_name(ckpt.name.replace(".safetensors", ".metrics.jsonl")).read_text().splitlines()
    ]
    assert losses[-1] < losses[0]  # it learns

    resumed = torchrun("-m", "mygpt", "train", "--resume", str(ckpt), "--max-iters", "30", "--device", "cpu")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip() == str(ckpt)
    header = checkpoint.read_header(ckpt)
    assert header.meta.progress.step == 30 and summary["step"] == 20
    assert [h.step for h in header.meta.progress.history] == [10, 20, 30]


def test_a_failing_rank_ends_the_job_promptly_with_its_message(play: Path, workdir: Path) -> None:
    start = time.monotonic()
    run = torchrun(str(TESTS / "ddp_worker.py"), str(workdir), "train", "--data", str(play), "--out", "ck",
                   "--max-iters", "1000", *TRAIN, env={"MYGPT_TEST_FAIL": "1:5"})  # fmt: skip
    elapsed = time.monotonic() - start
    assert run.returncode != 0
    assert "error: rank 1: injected failure on batch 5" in run.stderr
    assert elapsed < 60, f"the job took {elapsed:.0f} s to end"
    print(f"failing job ended in {elapsed:.1f} s")


def test_ddp_gradients_equal_one_process_with_the_whole_batch(workdir: Path) -> None:
    run = torchrun(str(TESTS / "ddp_grads.py"), "grads.safetensors", "4")
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = load_file("grads.safetensors")

    sys.path.insert(0, str(TESTS))
    from ddp_grads import CONFIG, batch

    from mygpt.model import GPT

    torch.manual_seed(0)
    model = GPT(CONFIG)
    x, y = batch(8)  # both ranks' rows at once
    F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp[name], p.grad, rtol=1e-4, atol=1e-6)
