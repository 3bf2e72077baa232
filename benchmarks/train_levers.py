"""What each CPU training lever changes, measured as interleaved A/B step times.

    uv run python benchmarks/train_levers.py [--shape nanogpt|default] [--rounds 15] [--json OUT]

For the nanoGPT CPU recipe's shape (4 layers, 4 heads, n_embd 128, block 64, batch 12,
no biases, learned positions) or the default preset's (the same with RoPE and batch
32), time one training step (forward, backward, gradient clipping, optimizer step:
what `mygpt train` does) under each variant of a lever. Variants alternate in short
bursts, `--rounds` times, and each reports its median burst: a machine's speed can drift
from minute to minute, and alternating puts the drift on both sides. Random tokens,
fixed seed. Prints a table and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from _common import write_report

from mygpt import device as devices
from mygpt.config import ModelConfig, TrainConfig
from mygpt.model import GPT
from mygpt.session import make_optimizer

SHAPES = {
    "nanogpt": (
        ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65, bias=False, pos="learned"),
        12,
    ),
    "default": (ModelConfig(vocab_size=65), TrainConfig().batch_size),
}
CPU = torch.device("cpu")


def make_step(mcfg: ModelConfig, batch: int, dtype: torch.dtype, fused: bool = True, compile_: bool = False,
              clip: bool = True, **model: str) -> Callable[[], None]:  # fmt: skip
    torch.manual_seed(0)
    mcfg = mcfg.model_copy(update=model)
    model = GPT(mcfg)
    optimizer = make_optimizer(model, TrainConfig(model=mcfg), CPU)
    if not fused:
        optimizer = torch.optim.AdamW(optimizer.param_groups, lr=1e-3, foreach=True)
    forward = torch.compile(model) if compile_ else model
    x = torch.randint(0, mcfg.vocab_size, (batch, mcfg.block_size))
    y = torch.randint(0, mcfg.vocab_size, (batch, mcfg.block_size))

    def step() -> None:
        with devices.autocast(CPU, dtype):
            logits = forward(x)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compare(variants: dict[str, tuple[Callable[[], None], Callable[[], contextlib.AbstractContextManager]]],
            rounds: int, burst: int = 5) -> dict[str, float]:  # fmt: skip
    """Median ms per step of each variant, variants alternating in bursts."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step, ctx in variants.values():  # warm-up (and compile)
        with ctx():
            for _ in range(5):
                step()
    for _ in range(rounds):
        for name, (step, ctx) in variants.items():
            with ctx():
                start = time.perf_counter()
                for _ in range(burst):
                    step()
                times[name].append((time.perf_counter() - start) / burst * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def attention_step(mcfg: ModelConfig, batch: int, dtype: torch.dtype, kernel_dtype: torch.dtype) -> Callable[[], None]:
    """Attention alone, forward and backward, with inputs in `dtype` computed in `kernel_dtype`."""
    shape = (batch, mcfg.n_head, mcfg.block_size, mcfg.head_size)
    q, k, v = (torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3))
    grad = torch.randn(shape, dtype=dtype)

    def step() -> None:
        y = F.scaled_dot_product_attention(q.to(kernel_dtype), k.to(kernel_dtype), v.to(kernel_dtype), is_causal=True)
        y.to(dtype).backward(grad)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="nanogpt")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    mcfg, batch = SHAPES[args.shape]
    bf16, fp32 = torch.bfloat16, torch.float32
    plain = contextlib.nullcontext
    # Each lever is measured against the settings `mygpt train` uses on this CPU (bf16
    # autocast where the CPU has bf16 instructions); within a lever, the first variant is
    # the baseline the others are compared with (vs_first).
    dtype = devices.resolve_dtype("auto", CPU)
    levers = {
        "dtype": {"float32": (make_step(mcfg, batch, fp32), plain), "bf16 autocast": (make_step(mcfg, batch, bf16), plain)},
        "attention kernel (bf16 run)": {"bf16": (attention_step(mcfg, batch, bf16, bf16), plain),
                                        "fp32": (attention_step(mcfg, batch, bf16, fp32), plain)},
        "GELU": {"tanh": (make_step(mcfg, batch, dtype, gelu="tanh"), plain),
                 "exact": (make_step(mcfg, batch, dtype, gelu="exact"), plain)},
        "AdamW": {"foreach": (make_step(mcfg, batch, dtype, fused=False), plain),
                  "fused": (make_step(mcfg, batch, dtype), plain)},
        "threads": {"1": (make_step(mcfg, batch, dtype), lambda: threads(1)),
                    "2": (make_step(mcfg, batch, dtype), lambda: threads(2))},
        "grad clipping": {"on": (make_step(mcfg, batch, dtype), plain),
                          "off": (make_step(mcfg, batch, dtype, clip=False), plain)},
        "positions": {"learned": (make_step(mcfg, batch, dtype, pos="learned"), plain),
                      "rope": (make_step(mcfg, batch, dtype, pos="rope"), plain)},
        "torch.compile": {"off": (make_step(mcfg, batch, dtype), plain),
                          "on": (make_step(mcfg, batch, dtype, compile_=True), plain)},
    }  # fmt: skip
    rows = []
    for lever, variants in levers.items():
        result = compare(variants, args.rounds)
        base = next(iter(result.values()))
        for name, ms in result.items():
            rows.append({"lever": lever, "variant": name, "ms_per_step": round(ms, 2), "vs_first": round(base / ms, 3)})
            print(f"{lever:>28}  {name:>14}  {ms:7.2f} ms/step  {base / ms:5.2f}x", flush=True)
    out = args.json or f"benchmarks/results/train_levers_{args.shape}.json"
    write_report(out, "train_levers", shape=args.shape, rows=rows)


if __name__ == "__main__":
    main()
