"""SIGKILL a training process at random moments; every checkpoint must load and resume.

    uv run python benchmarks/kill_resume.py [--runs 20] [--seed 0] [--json OUT]

Each run starts `mygpt train` (a tiny char model on Tiny Shakespeare that evaluates and
saves after every step, so a kill often lands mid-write), waits for its first
checkpoint, sleeps a random 0.05-2 s, and SIGKILLs it. Then the checkpoint, its
training state and its best weights must all load, no temporary file may be taken for
a checkpoint, and `mygpt train --resume` must continue the run for 5 more steps and
remove what the killed process left (its name claim, a partial temporary write).
Prints a table and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import find_corpus, write_report

from mygpt import checkpoint, runs
from mygpt.data import prepare
from mygpt.prepare_config import PrepareConfig

TRAIN = [
    "--preset",
    "tiny",
    "--max-iters",
    "1000000",
    "--eval-interval",
    "1",
    "--eval-iters",
    "1",
    "--set",
    "log_interval=1",
]


def one_run(data_dir: Path, out: Path, delay: float) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mygpt", "train", "--data", str(data_dir), "--out", str(out), *TRAIN],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not runs.find(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is not None:  # it ended on its own: that is a setup problem, not a finding
        sys.exit(f"training exited with {proc.returncode} before it was killed: {proc.stderr.read().strip()}")
    time.sleep(delay)
    proc.kill()
    proc.wait()
    row = {"delay_s": round(delay, 3)}
    try:
        (path,) = runs.find(out)
        step = checkpoint.load(path).header.meta.progress.step
        checkpoint.load_state(runs.companion(path, "state"))
        checkpoint.load(runs.companion(path, "best"))
        hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
        row.update(step_at_kill=step, loadable=True, partial_writes_after_kill=sum(".tmp-" in n for n in hidden))
        resume = subprocess.run(
            [sys.executable, "-m", "mygpt", "train", "--resume", str(path), "--max-iters", str(step + 5)],
            capture_output=True, text=True,
        )  # fmt: skip
        row["resumed"] = resume.returncode == 0 and checkpoint.read_header(path).progress["step"] == step + 5
        row["hidden_files_after_resume"] = len([p for p in out.iterdir() if p.name.startswith(".")])
        if resume.returncode:
            row["error"] = resume.stderr.strip().splitlines()[-1]
    except Exception as exc:  # a failure here is the finding, so record it and go on
        row.update(loadable=False, resumed=False, error=f"{type(exc).__name__}: {exc}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", help="Tiny Shakespeare's path")
    parser.add_argument("--json", default="benchmarks/results/kill_resume.json")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = prepare(PrepareConfig(text=(str(find_corpus(args.corpus)),), out=f"{tmp}/data"))
        rows = []
        for i in range(args.runs):
            row = {"run": i + 1, **one_run(data_dir, Path(tmp) / f"run{i}", rng.uniform(0.05, 2.0))}
            rows.append(row)
            print(
                f"run {row['run']:>2}: killed after {row['delay_s']:.2f} s at step {row.get('step_at_kill', '-')}; "
                f"loadable {row['loadable']}, resumed {row['resumed']}, partial writes left by the kill "
                f"{row.get('partial_writes_after_kill', '-')}, hidden files after resume {row.get('hidden_files_after_resume', '-')}"
                + (f"  ({row['error']})" if "error" in row else ""),
                flush=True,
            )
    ok = sum(r["loadable"] and r["resumed"] and r.get("hidden_files_after_resume") == 0 for r in rows)
    print(f"{ok}/{len(rows)} runs: checkpoint, state and best weights loadable and the resume continued")
    write_report(args.json, "kill_resume", ok=ok, rows=rows)


if __name__ == "__main__":
    main()
