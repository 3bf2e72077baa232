"""Whole-process wall time for a preset to reach a target val loss on Tiny Shakespeare.

    uv run python benchmarks/time_to_loss.py [--preset default] [--target 1.8857]
        [--eval-interval 100] [--set key=value ...] [--device auto] [--runs 1] [--json OUT]

Runs `mygpt train --preset P --target-loss L --eval-interval E` as a whole process (start-up,
data loading, training, evaluations, checkpoint writes, exit) on character-level Tiny
Shakespeare, prepared beforehand (preparing is not counted).
The run stops at the first evaluation at or below the target; `--eval-interval` sets how
often it looks (evaluations cost time too). Records wall time, peak RSS, the step and
training time at which the target was reached, and the val loss there. Prints a table
and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _common import find_corpus, run_measured, write_report

from mygpt.data import prepare
from mygpt.prepare_config import PrepareConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--target", type=float, default=1.8857)
    parser.add_argument("--eval-interval", type=int, default=100)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--json", default="benchmarks/results/time_to_loss.json")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(PrepareConfig(text=[str(find_corpus(args.corpus))], out=str(data)))
        for r in range(args.runs):
            out = Path(tmp) / f"run{r}"
            cmd = ["-m", "mygpt", "train", "--preset", args.preset, "--target-loss", str(args.target),
                   "--eval-interval", str(args.eval_interval), "--device", args.device,
                   "--data", str(data), "--out", str(out)] + [x for s in args.sets for x in ("--set", s)]  # fmt: skip
            run = run_measured([sys.executable, *cmd])
            if run["returncode"] != 0:
                sys.exit(f"mygpt train failed:\n{run['output'][-3000:]}")
            (metrics,) = out.glob("*.metrics.jsonl")
            evals = [r for r in map(json.loads, metrics.read_text().splitlines()) if "val_loss" in r]
            hit = next((e for e in evals if e["val_loss"] <= args.target), None)
            row = {"run": r + 1, "command": "mygpt " + " ".join(cmd[2:]), "wall_s": round(run["wall_s"], 2),
                   "peak_rss_mb": round(run["peak_rss_mb"]), "reached": hit is not None,
                   "step": evals[-1]["step"], "train_time_s": evals[-1]["elapsed"], "val_loss": evals[-1]["val_loss"]}  # fmt: skip
            rows.append(row)
            print(f"run {r + 1}: {'reached' if hit else 'did NOT reach'} val {args.target} -> {row['val_loss']:.4f} at step "
                  f"{row['step']}, {row['train_time_s']:.1f} s of training; whole process {row['wall_s']:.1f} s, "
                  f"peak RSS {row['peak_rss_mb']} MB", flush=True)  # fmt: skip
    summary = {
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "all_reached": all(r["reached"] for r in rows),
    }
    print(json.dumps(summary))
    write_report(args.json, "time_to_loss", preset=args.preset, target=args.target, rows=rows, summary=summary)


if __name__ == "__main__":
    main()
