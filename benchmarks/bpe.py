"""BPE training speed against rustbpe, and tiktoken encode/decode throughput.

    uv run python benchmarks/bpe.py [--corpus PATH] [--json OUT]

Corpora: Tiny Shakespeare (data/tiny_shakespeare.txt, or ../shared/data/ beside the
checkout), and a ~10 MB corpus built here from it plus the Python standard library's
own sources, one document per file. For each corpus and vocabulary size (512, 4096,
8192) it trains mygpt's trainer and rustbpe in the same process, one after the other,
and reports CPU time (all threads) and wall time, their ratio, and whether the merges
are identical. Then tiktoken encode/decode MB/s with the trained 4096 tokenizer.
Not part of the test run.
"""

from __future__ import annotations

import argparse
import sysconfig
import time
from pathlib import Path

import rustbpe
from _common import find_corpus, write_report

from mygpt import bpe
from mygpt.tokenizer import BPETokenizer

VOCAB_SIZES = (512, 4096, 8192)
TEN_MB = 10_000_000


def ten_mb_corpus(shakespeare: str) -> list[str]:
    """Tiny Shakespeare, then the standard library's .py files in sorted order, to 10 MB."""
    docs, size = [shakespeare], len(shakespeare.encode())
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        docs.append(text)
        size += len(text.encode())
        if size >= TEN_MB:
            break
    return docs


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def train_both(docs: list[str], vocab_size: int) -> dict:
    # vocab_size counts <|endoftext|> for mygpt, so mygpt learns vocab_size - 257 merges; rustbpe's
    # vocabulary has no special token, so the same number of merges is vocab_size - 1 for it.
    ours, ours_cpu, ours_wall = timed(lambda: bpe.train(docs, vocab_size - 257))
    tok = rustbpe.Tokenizer()
    _, rust_cpu, rust_wall = timed(lambda: tok.train_from_iterator(docs, vocab_size - 1, pattern=bpe.SPLIT_PATTERN))
    theirs = [token for token, _ in sorted(tok.get_mergeable_ranks(), key=lambda x: x[1])]
    return {
        "vocab_size": vocab_size,
        "merges": len(ours.merges),
        "mygpt_cpu_s": round(ours_cpu, 3),
        "mygpt_wall_s": round(ours_wall, 3),
        "rustbpe_cpu_s": round(rust_cpu, 3),
        "rustbpe_wall_s": round(rust_wall, 3),
        "cpu_ratio": round(ours_cpu / rust_cpu, 2),
        "identical_merges": ours.vocab == theirs,
        "_result": ours,
    }


def throughput(tokenizer: BPETokenizer, docs: list[str]) -> dict:
    n_bytes = sum(len(d.encode()) for d in docs)
    ids, _, enc_wall = timed(lambda: [tokenizer.encode(d) for d in docs])
    _, _, dec_wall = timed(lambda: [tokenizer.decode_bytes(i) for i in ids])
    return {
        "encode_MB_per_s": round(n_bytes / 1e6 / enc_wall, 1),
        "decode_MB_per_s": round(n_bytes / 1e6 / dec_wall, 1),
        "bytes_per_token": round(n_bytes / sum(map(len, ids)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="Tiny Shakespeare's path")
    parser.add_argument("--json", default="benchmarks/results/bpe.json", help="where to write the results")
    args = parser.parse_args()

    shakespeare = find_corpus(args.corpus).read_text(encoding="utf-8")
    corpora = {"tiny_shakespeare": [shakespeare], "shakespeare+stdlib": ten_mb_corpus(shakespeare)}
    rows = []
    for name, docs in corpora.items():
        mb = sum(len(d.encode()) for d in docs) / 1e6
        for vocab_size in VOCAB_SIZES:
            row = {"corpus": name, "MB": round(mb, 1), **train_both(docs, vocab_size)}
            result = row.pop("_result")
            if vocab_size == 4096:
                row.update(throughput(BPETokenizer.from_merges(result), docs))
            rows.append(row)
            print(
                f"{name:>18} {mb:5.1f} MB  vocab {vocab_size:>5}  mygpt {row['mygpt_cpu_s']:6.2f} s cpu "
                f"({row['mygpt_wall_s']:.2f} wall)  rustbpe {row['rustbpe_cpu_s']:6.2f} s cpu "
                f"({row['rustbpe_wall_s']:.2f} wall)  ratio {row['cpu_ratio']:4.2f}  "
                f"identical {row['identical_merges']}"
                + (
                    f"  encode {row['encode_MB_per_s']} MB/s decode {row['decode_MB_per_s']} MB/s"
                    if "encode_MB_per_s" in row
                    else ""
                ),
                flush=True,
            )
    write_report(args.json, "bpe", rows=rows)


if __name__ == "__main__":
    main()
