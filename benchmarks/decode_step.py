"""What each part of the decoding step buys: one-token step times.

    uv run python benchmarks/decode_step.py [--json OUT]

For the two shapes of benchmarks/generate.py (random weights, batch 1), the time of a
one-token step filling a whole context window, through
  - `GPT.forward(idx, cache)` (the parameters gathered on every call),
  - `GPT.decoder()` with the exact GELU left to oneDNN (a contiguous input),
  - `GPT.decoder()` as shipped.
Variants alternate, `--rounds` times; medians. Not part of the test run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from _common import write_report
from generate import SHAPES

import mygpt.model as gpt
from mygpt.kvcache import KVCache
from mygpt.model import GPT


def window_ms(model: GPT, step: Callable[[torch.Tensor, KVCache], torch.Tensor]) -> float:
    """Mean ms per step over a whole window of one-token steps after a one-token prompt."""
    cache = KVCache(model.config, 1, torch.device("cpu"))
    with torch.inference_mode():
        model(torch.tensor([[0]]), cache)
        idx = torch.tensor([[5]])
        n = model.config.block_size - 1
        start = time.perf_counter()
        for _ in range(n):
            step(idx, cache)
    return (time.perf_counter() - start) / n * 1e3


def variants(model: GPT) -> dict[str, Callable[[torch.Tensor, KVCache], torch.Tensor]]:
    shipped = model.decoder()

    def onednn_gelu(idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        real = gpt.gelu
        gpt.gelu = lambda x, form: torch.nn.functional.gelu(x, approximate="tanh" if form == "tanh" else "none")
        try:
            return shipped(idx, cache)
        finally:
            gpt.gelu = real

    return {
        "GPT.forward": lambda idx, cache: model(idx, cache),
        "decoder, oneDNN GELU": onednn_gelu,
        "decoder": shipped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="benchmarks/results/decode_step.json")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    rows = []
    for shape, config in SHAPES.items():
        torch.manual_seed(0)
        model = GPT(config).eval()
        steps = variants(model)
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                times[name].append(window_ms(model, step))
        for name, ms in times.items():
            rows.append({"shape": shape, "step": name, "ms": round(statistics.median(ms), 3)})
            print(f"{shape:>20}  {name:<28} {statistics.median(ms):7.3f} ms", flush=True)
    write_report(args.json, "decode_step", rows=rows)


if __name__ == "__main__":
    main()
