"""Training throughput: ms/iteration, tokens/s, model FLOPs utilisation, peak memory.

    uv run python benchmarks/train_speed.py [--preset P] [--set key=value ...] [--iters 300]
        [--device auto] [--json OUT]

Trains the given config (any `mygpt train` preset and `--set` overrides) on Tiny
Shakespeare, characters, in this process, for `--iters` steps, and reads the trainer's
own throughput reports (tokens/s over each `log_interval` window, evaluation time left
out). The first `--warmup` steps (torch.compile, allocator, caches) are not counted;
the figure is the median of the remaining windows.

MFU = model FLOPs per token x tokens/s / the device's peak, where FLOPs per token are
6 x (parameters without the position table) + 12 x n_layer x n_embd x block_size (the
attention scores and their use, forward and backward; as in the PaLM paper and
nanoGPT), and the peak is measured here: the best of several large matmuls in the
training dtype. Peak memory: the process's peak RSS on CPU, the CUDA allocator's peak
on a GPU. Prints a table and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import find_corpus, write_report

from mygpt import config as configs, device as devices
from mygpt.config import TrainConfig
from mygpt.data import prepare
from mygpt.events import Started, Stepped
from mygpt.prepare_config import PrepareConfig
from mygpt.training import train


def peak_flops(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """FLOP/s of the best of several n x n matmuls: what this device can do at best."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * n**3 / best


def flops_per_token(cfg: TrainConfig, num_params: int) -> float:
    m = cfg.model
    non_embedding = num_params - (m.block_size * m.n_embd if m.pos == "learned" else 0)
    return 6 * non_embedding + 12 * m.n_layer * m.n_embd * m.block_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--json", default="benchmarks/results/train_speed.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        prepare(PrepareConfig(text=[str(find_corpus(args.corpus))], out=str(data_dir)))
        cfg = configs.build(
            TrainConfig, preset=args.preset,
            flags={"data": str(data_dir), "out_dir": str(Path(tmp) / "out"), "max_iters": args.iters,
                   "eval_interval": args.iters, "eval_iters": 1, "device": args.device},
            sets=args.sets,
        )  # fmt: skip
        rates, started = [], None
        for event in train(cfg):
            if isinstance(event, Started):
                started = event
            elif isinstance(event, Stepped) and event.tokens_per_sec and event.step > args.warmup:
                rates.append(event.tokens_per_sec)
    assert started is not None and rates, "the run produced no throughput reports"
    device = torch.device(started.device)
    cfg = started.config
    dtype = devices.resolve_dtype(cfg.dtype, device)
    tok_s = statistics.median(rates)
    tokens_per_iter = cfg.batch_size * cfg.grad_accum * cfg.model.block_size
    peak = peak_flops(device, dtype, 8192 if device.type == "cuda" else 2048)
    mfu = flops_per_token(cfg, started.num_params) * tok_s / peak
    if device.type == "cuda":
        memory = {"cuda_peak_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20)}
    else:
        memory = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    row = {
        "preset": args.preset, "sets": args.sets, "device": started.device, "dtype": started.dtype,
        "compiled": started.compiled, "params": started.num_params, "tokens_per_iter": tokens_per_iter,
        "iters": args.iters, "warmup": args.warmup, "ms_per_iter": round(1000 * tokens_per_iter / tok_s, 2),
        "tokens_per_s": round(tok_s), "peak_tflops": round(peak / 1e12, 3), "mfu": round(mfu, 4), **memory,
    }  # fmt: skip
    for key, value in row.items():
        print(f"{key:>18}  {value}")
    write_report(args.json, "train_speed", row=row)


if __name__ == "__main__":
    main()
