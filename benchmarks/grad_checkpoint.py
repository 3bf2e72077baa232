"""Gradient checkpointing: the memory it saves and the time it costs, for one training run.

    uv run python benchmarks/grad_checkpoint.py [--steps 2] [--batch-size 32] [--json OUT]

Trains a 6-layer, 384-wide model with a 256-token context on Tiny Shakespeare (characters)
for a few steps, once as usual and once with `--grad-checkpoint`, each as its own
`mygpt train` process on the CPU, in turn, `--rounds` times. Reports each one's peak
resident memory (the process's ru_maxrss: the weights, the optimizer, the activations
kept for the backward pass) and its wall time, medians of the rounds. Not part of the
test run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import find_corpus, run_measured, write_report

MODEL = ["--n-layer", "6", "--n-head", "6", "--n-embd", "384", "--ctx", "256"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default="benchmarks/results/grad_checkpoint.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, "-m", "mygpt", "prepare", "--text", str(find_corpus()), "--out", str(data)],
                       check=True, capture_output=True)  # fmt: skip
        train = [sys.executable, "-m", "mygpt", "train", "--data", str(data), *MODEL, "-B", str(args.batch_size),
                 "--max-iters", str(args.steps), "--eval-iters", "1", "--device", "cpu", "--out", str(Path(tmp) / "ck")]  # fmt: skip
        runs: dict[str, list[dict]] = {"plain": [], "grad_checkpoint": []}
        for _ in range(args.rounds):
            for name, extra in (("plain", []), ("grad_checkpoint", ["--grad-checkpoint"])):
                result = run_measured(train + extra)
                if result["returncode"] != 0:
                    sys.exit(f"{name} failed:\n{result['output'][-2000:]}")
                runs[name].append(result)
    summary = {name: {"peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
                      "wall_s": statistics.median(r["wall_s"] for r in rs),
                      "peak_rss_mb_runs": [round(r["peak_rss_mb"]) for r in rs]} for name, rs in runs.items()}  # fmt: skip
    plain, saved = summary["plain"], summary["grad_checkpoint"]
    print(f"{'':18}{'peak RSS':>10}{'wall':>8}")
    for name, s in summary.items():
        print(f"{name:18}{s['peak_rss_mb']:>8.0f}MB{s['wall_s']:>7.1f}s")
    print(f"saved {plain['peak_rss_mb'] - saved['peak_rss_mb']:.0f} MB "
          f"({1 - saved['peak_rss_mb'] / plain['peak_rss_mb']:.0%}); time x{saved['wall_s'] / plain['wall_s']:.2f}")  # fmt: skip
    write_report(args.json, "grad_checkpoint", model=" ".join(MODEL), batch_size=args.batch_size, steps=args.steps,
                 rounds=args.rounds, results=summary)  # fmt: skip


if __name__ == "__main__":
    main()
