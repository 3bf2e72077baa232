"""Generation speed with and without the KV cache.

    uv run python benchmarks/generate.py [--json OUT]

Shapes (random weights, 65-character vocabulary, batch 1):
  (a) nanoGPT's CPU recipe: 4 layers, 4 heads, n_embd 128, context 64
  (b) 6 layers, 6 heads, n_embd 384, context 256
For each, tokens/s generating 500 and 2000 tokens (most of them past the context
window) with the cache and with the recompute path (`--no-kv-cache`), in one run: the
two paths alternate, `--rounds` times, and each reports its median (alternating puts
any drift of the machine's speed on both sides); and the whole-process wall time of `mygpt generate` for 500 tokens from a checkpoint file.
Prints a table and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import write_report

from mygpt import checkpoint
from mygpt.config import ModelConfig, SampleConfig
from mygpt.model import GPT
from mygpt.sampling import generate
from mygpt.tokenizer import CharTokenizer

SHAPES = {
    "a: 4L 4H 128 ctx64": ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65),
    "b: 6L 6H 384 ctx256": ModelConfig(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65),
}
LENGTHS = (500, 2000)


def tokens_per_second(model: GPT, n: int, use_cache: bool) -> float:
    cfg = SampleConfig(max_new_tokens=n, temperature=1.0)
    start = time.perf_counter()
    for _ in generate(model, [0], cfg, seed=0, use_cache=use_cache):
        pass
    return n / (time.perf_counter() - start)


def whole_process(path: Path, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mygpt", "generate", str(path), "-n", "500", "--seed", "0", *extra],
                   check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="benchmarks/results/generate.json")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    tokenizer = CharTokenizer([chr(c) for c in range(32, 32 + 65)])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in SHAPES.items():
            torch.manual_seed(0)
            model = GPT(config).eval()
            tokens_per_second(model, 20, True)  # warm-up
            for n in LENGTHS:
                runs = [
                    (tokens_per_second(model, n, True), tokens_per_second(model, n, False)) for _ in range(args.rounds)
                ]
                cached, plain = (statistics.median(r) for r in zip(*runs, strict=False))
                rows.append({"shape": name, "new_tokens": n, "cached_tok_s": round(cached, 1),
                             "recompute_tok_s": round(plain, 1), "speedup": round(cached / plain, 2)})  # fmt: skip
                print(f"{name:>20}  {n:>5} tokens  cache {cached:8.1f} tok/s  recompute {plain:8.1f} tok/s  "
                      f"speedup {cached / plain:5.2f}x", flush=True)  # fmt: skip
            path = Path(tmp) / f"{config.n_layer}.safetensors"
            checkpoint.save(path, model, checkpoint.Meta(model=config, tokenizer=tokenizer.to_dict()))
            wall = {"cache": whole_process(path), "recompute": whole_process(path, "--no-kv-cache")}
            rows.append({"shape": name, "whole_process_500_tokens_s": {k: round(v, 2) for k, v in wall.items()}})
            print(f"{name:>20}  `mygpt generate -n 500` whole process: {wall['cache']:.2f} s with the cache, "
                  f"{wall['recompute']:.2f} s without", flush=True)  # fmt: skip
    write_report(args.json, "generate", rows=rows)


if __name__ == "__main__":
    main()
