"""Serving throughput: aggregate tokens/s and time to first token with 1, 4, 8 and 16
concurrent streaming clients, against a real `mygpt serve`.

    uv run python benchmarks/serve.py [--rounds 3] [--requests 3] [--max-tokens 128] [--json OUT]

Shapes (random weights, Tiny Shakespeare's 65 characters): the default model (4 layers,
128 wide, context 64) and 6 layers, 384 wide, context 256. For each, `mygpt serve --device
cpu --max-batch 16` runs as its own process; at each concurrency c, c clients each send
`--requests` streaming completions one after another (temperature 0.8, `--max-tokens`
tokens, no stop string). Aggregate tokens/s is the completion tokens of the level over its
wall time; time to first token runs from sending a request to its first text. The levels
run in turn, `--rounds` times, and each reports its medians. Then the stress check: 16
clients x 20 requests, counting every response that is not a 200 ending in [DONE].

The clients are a lean asyncio HTTP/1.1 reader in this process, which shares the CPU with
the server: on a 2-core machine they take part of what the server could use. Prints a
table and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import find_corpus, write_report

from mygpt import checkpoint
from mygpt.config import ModelConfig
from mygpt.model import GPT
from mygpt.tokenizer import CharTokenizer

SHAPES = {
    "default: 4L 4H 128 ctx64": ModelConfig(),
    "6L 6H 384 ctx256": ModelConfig(n_layer=6, n_head=6, n_embd=384, block_size=256),
}
LEVELS = (1, 4, 8, 16)
PROMPT = "ROMEO:\nWhat light through yonder window breaks?\n"


async def request(host: str, port: int, max_tokens: int) -> tuple[float, int]:
    """One streaming completion: (seconds to the first text, completion tokens). Raises on any failure."""
    body = json.dumps({"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0.8, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    start = time.perf_counter()
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    first, tokens, done = None, 0, False
    try:
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"status {status!r}: {(await reader.read())[:300]!r}")
        async for line in reader:  # chunked: size lines, then one server-sent event per chunk
            if not line.startswith(b"data: "):
                continue
            if line.startswith(b"data: [DONE]"):
                done = True
                break
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(event["error"]["message"])
            if first is None and event["choices"] and event["choices"][0]["text"]:
                first = time.perf_counter() - start
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    finally:
        writer.close()
    if not done or first is None:
        raise RuntimeError("the stream ended without text or without [DONE]")
    return first, tokens


async def level(host: str, port: int, clients: int, requests: int, max_tokens: int) -> dict:
    """`clients` clients, each sending `requests` requests in turn; errors are counted."""
    ttfts: list[float] = []
    tokens, errors = 0, []

    async def client() -> None:
        nonlocal tokens
        for _ in range(requests):
            try:
                first, n = await request(host, port, max_tokens)
            except Exception as exc:  # counted, and the client goes on
                errors.append(str(exc))
                continue
            ttfts.append(first)
            tokens += n

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    return {"tokens_per_s": tokens / wall, "ttft_p50_ms": 1000 * _percentile(ttfts, 50),
            "ttft_p99_ms": 1000 * _percentile(ttfts, 99), "requests": len(ttfts), "errors": errors, "wall_s": wall}  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_server(path: Path) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen([sys.executable, "-m", "mygpt", "serve", str(path), "--port", "0", "--device", "cpu",
                             "--max-batch", "16"], stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stderr.readline()
    match = re.search(r"http://([\d.]+):(\d+)", line)
    if not match:
        proc.kill()
        sys.exit(f"the server did not start: {line}{proc.stderr.read()}")
    return proc, match.group(1), int(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3, help="requests per client at each level")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--json", default="benchmarks/results/serve.json")
    args = parser.parse_args()
    tokenizer = CharTokenizer.train(find_corpus().read_text(encoding="utf-8"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in SHAPES.items():
            config = shape.model_copy(update={"vocab_size": tokenizer.vocab_size})
            path = Path(tmp) / f"{name.split(':')[0].replace(' ', '_')}.safetensors"
            checkpoint.save(path, GPT(config), checkpoint.Meta(model=config, tokenizer=tokenizer.to_dict()))
            proc, host, port = start_server(path)
            try:
                asyncio.run(level(host, port, 1, 1, 8))  # warm-up
                runs = {c: [] for c in LEVELS}
                for _ in range(args.rounds):
                    for c in LEVELS:
                        runs[c].append(asyncio.run(level(host, port, c, args.requests, args.max_tokens)))
                stress = asyncio.run(level(host, port, 16, 20, args.max_tokens))
            finally:
                proc.terminate()
                proc.wait(30)
            results[name] = {"levels": {c: _medians(r) for c, r in runs.items()},
                             "stress_16x20": {"requests": stress["requests"], "errors": len(stress["errors"]),
                                              "first_errors": stress["errors"][:3], "tokens_per_s": stress["tokens_per_s"]}}  # fmt: skip
            _print(name, results[name])
    write_report(args.json, "serve", rounds=args.rounds, requests_per_client=args.requests,
                 max_tokens=args.max_tokens, results=results)  # fmt: skip


def _medians(runs: list[dict]) -> dict:
    out = {k: statistics.median(r[k] for r in runs) for k in ("tokens_per_s", "ttft_p50_ms", "ttft_p99_ms")}
    out["tokens_per_s_runs"] = [round(r["tokens_per_s"], 1) for r in runs]
    out["errors"] = sum(len(r["errors"]) for r in runs)
    return out


def _print(name: str, result: dict) -> None:
    levels = result["levels"]
    base = levels[1]["tokens_per_s"]
    print(f"\n{name}")
    print(f"{'clients':>8} {'tokens/s':>9} {'x 1 client':>10} {'TTFT p50':>9} {'TTFT p99':>9}  runs (tokens/s)")
    for c, r in levels.items():
        print(f"{c:>8} {r['tokens_per_s']:>9.0f} {r['tokens_per_s'] / base:>10.2f} {r['ttft_p50_ms']:>7.0f}ms "
              f"{r['ttft_p99_ms']:>7.0f}ms  {r['tokens_per_s_runs']}")  # fmt: skip
    s = result["stress_16x20"]
    print(
        f"stress 16 clients x 20 requests: {s['requests']} answered, {s['errors']} errors, {s['tokens_per_s']:.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
