"""mygpt against nanoGPT on this machine: the same config, runs alternating.

    uv run python benchmarks/vs_nanogpt.py --nanogpt DIR [--rounds 2] [--json OUT]

DIR is a checkout of nanoGPT (public: karpathy/nanoGPT; never copied into this
repository) whose character data is prepared: copy Tiny Shakespeare to
DIR/data/shakespeare_char/input.txt and run `python prepare.py` in that folder (with
input.txt present it downloads nothing).

Each round runs, one after the other, as whole processes with this Python:
  nanoGPT   its CPU recipe, exactly as its README gives it (NANOGPT_CPU below)
  same      `mygpt train` with the same settings, set by flags (SAME below)
  default   `mygpt train`: the default preset, the whole run
and records whole-process wall time, peak RSS, the median ms/iteration (nanoGPT: its
per-iteration log; mygpt: its tokens/s reports, evaluation excluded) and the final val
loss. Prints a table and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from _common import find_corpus, run_measured, write_report

from mygpt.config import TrainConfig
from mygpt.data import prepare
from mygpt.prepare_config import PrepareConfig

NANOGPT_CPU = ["train.py", "config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
               "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
               "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]  # fmt: skip
# nanoGPT's train.py defaults and config/train_shakespeare_char.py, spelled as mygpt flags.
SAME = ["--n-layer", "4", "--n-head", "4", "--n-embd", "128", "--block-size", "64", "--batch-size", "12",
        "--dropout", "0", "--lr", "1e-3", "--min-lr", "1e-4", "--warmup-iters", "100", "--max-iters", "2000",
        "--eval-interval", "250", "--eval-iters", "20", "--weight-decay", "0.1", "--grad-clip", "1",
        "--pos", "learned", "--set", "beta2=0.99", "--set", "model.bias=false"]  # fmt: skip


def nanogpt_run(nanogpt: Path, out: Path) -> dict:
    run = run_measured([sys.executable, *NANOGPT_CPU, f"--out_dir={out}"], cwd=nanogpt)
    if run["returncode"] != 0:
        sys.exit(f"nanoGPT failed:\n{run['output'][-3000:]}")
    iters = [
        (int(i), float(ms)) for i, ms in re.findall(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms", run["output"], re.M)
    ]
    evals = re.findall(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)", run["output"], re.M)
    steady = [ms for i, ms in iters if i > 50 and i % 250 != 0]  # past warm-up; an eval's time lands on i % 250 == 0
    return {"wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"], "ms_per_iter": statistics.median(steady),
            "steps": int(evals[-1][0]), "val_loss": float(evals[-1][2])}  # fmt: skip


def mygpt_run(args: list[str], data: Path, out: Path) -> dict:
    run = run_measured([sys.executable, "-m", "mygpt", "train", "--data", str(data), "--out", str(out), *args])
    if run["returncode"] != 0:
        sys.exit(f"mygpt train failed:\n{run['output'][-3000:]}")
    (metrics,) = out.glob("*.metrics.jsonl")
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    evals = [r for r in records if "val_loss" in r]
    steps = [r for r in records if "tokens_per_sec" in r and r["step"] > 50]
    defaults = TrainConfig()
    tokens_per_iter = _flag(args, "--batch-size", defaults.batch_size) * _flag(
        args, "--block-size", defaults.model.block_size
    )
    return {"wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"],
            "ms_per_iter": statistics.median(1000 * tokens_per_iter / r["tokens_per_sec"] for r in steps),
            "steps": evals[-1]["step"], "val_loss": evals[-1]["val_loss"]}  # fmt: skip


def _flag(args: list[str], name: str, default: int) -> int:
    return int(args[args.index(name) + 1]) if name in args else default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--json", default="benchmarks/results/vs_nanogpt.json")
    parser.add_argument(
        "--mygpt-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="An extra flag for both mygpt runs, e.g. --mygpt-flag=--dtype=float32 (repeatable).",
    )
    args = parser.parse_args()
    extra = [part for flag in args.mygpt_flag for part in flag.split("=", 1)]
    if not (args.nanogpt / "data/shakespeare_char/train.bin").is_file():
        sys.exit(
            f"{args.nanogpt} is not a nanoGPT checkout with prepared character data (see this script's docstring)."
        )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(PrepareConfig(text=[str(find_corpus(args.corpus))], out=str(data)))
        for r in range(args.rounds):
            runs = {"nanoGPT": lambda out: nanogpt_run(args.nanogpt.resolve(), out),
                    "same": lambda out: mygpt_run(SAME + extra, data, out),
                    "default": lambda out: mygpt_run(extra, data, out)}  # fmt: skip
            for name, run in runs.items():
                row = {"round": r + 1, "run": name, **run(Path(tmp) / f"{name}-{r}")}
                rows.append(row)
                print(f"round {r + 1}  {name:>8}  {row['wall_s']:6.1f} s whole process  {row['ms_per_iter']:6.2f} ms/iter  "
                      f"peak RSS {row['peak_rss_mb']:5.0f} MB  step {row['steps']:>5}  val {row['val_loss']:.4f}", flush=True)  # fmt: skip
    summary = {}
    for name in ("nanoGPT", "same", "default"):
        mine = [r for r in rows if r["run"] == name]
        summary[name] = {
            k: statistics.median(r[k] for r in mine) for k in ("wall_s", "ms_per_iter", "peak_rss_mb", "val_loss")
        }
    summary["throughput_ratio_same_config"] = summary["nanoGPT"]["ms_per_iter"] / summary["same"]["ms_per_iter"]
    summary["default_wall_vs_nanogpt_wall"] = summary["default"]["wall_s"] / summary["nanoGPT"]["wall_s"]
    print(json.dumps(summary, indent=2))
    write_report(
        args.json,
        "vs_nanogpt",
        nanogpt_command=NANOGPT_CPU,
        mygpt_same_flags=SAME + extra,
        mygpt_extra_flags=extra,
        rows=rows,
        summary=summary,
    )


if __name__ == "__main__":
    main()
