"""`mygpt prepare` on large corpora: throughput, peak memory, and a reference pipeline.

    uv run python benchmarks/prepare_scale.py [--sizes 1G,3G] [--repeat 3] [--workdir DIR] [--only NAME,...] [--json OUT]

Corpus: the Python sources (*.py) of the repository's .venv, sorted, UTF-8 readable ones
only, grouped into documents of about 4 MB and repeated to each size (decimal K/M/G).
For the first size the same documents are also written as .jsonl (`{"text", "id"}`,
~256 MB files) and .parquet (a `text` column, ~256 MB files). Corpora are built under
--workdir and reused by later runs; the build time is reported apart from the rows.

Rows (one invocation; each row --repeat times, the rows in turn, medians reported with
the spread, (max - min) / median, of the wall times), for the first size S1 and the second S2:
  char-S1, bpe-S1, char-S2, bpe-S2  `mygpt prepare --text FOLDER` on the .txt folder
  jsonl-S1, parquet-S1              bpe on the same documents as .jsonl / .parquet
  reference-S1                      rustbpe trained on all of the text, then tiktoken's
                                    batch encoder, ids written as uint16
bpe is `--tokenizer bpe --vocab-size 8192`; nothing else is passed, so mygpt's defaults
(all cores, its tokenizer sample) are what is measured. Each row: wall time, MB/s
of text (text bytes / wall s, what the targets are about) and of the files on disk
(which differs for the compressed parquet), peak RSS summed over the process and all its descendants (VmRSS
polled from /proc every 0.1 s; the JSON adds the RssAnon sum), tokens and bytes of text
per token. The bpe txt/jsonl/parquet token files are compared: with the same seed they
should be byte-identical. MB is 10^6 bytes throughout.
Prints a table and a line per target, writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from _common import write_report

REPO = Path(__file__).resolve().parents[1]
DOC_BYTES = 4_000_000  # a document: consecutive sources up to this size
FILE_DOCS = 64  # jsonl and parquet files of ~256 MB of text
ROW_GROUP_DOCS = 16  # parquet row groups of ~64 MB of text, a common size
POLL_S = 0.1
VOCAB = 8192
TARGETS = {"bpe_MB_per_s": 15.0, "char_MB_per_s": 40.0, "peak_rss_MB": 2000.0, "rss_growth": 0.10}


def parse_size(text: str) -> int:
    """'30M' -> 30_000_000 (decimal suffixes K, M, G)."""
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1].upper(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def base_documents() -> list[str]:
    """The venv's sources, sorted, grouped into ~DOC_BYTES documents."""
    docs, parts, size = [], [], 0
    for path in sorted((REPO / ".venv").rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
        except (UnicodeDecodeError, OSError):
            continue
        if "\x00" in text:  # mygpt rightly refuses NUL in a .txt file: it is not text
            continue
        parts.append(text)
        size += len(text.encode())
        if size >= DOC_BYTES:
            docs.append("".join(parts))
            parts, size = [], 0
    return docs + (["".join(parts)] if parts else [])


def corpus_docs(base: list[str], size: int) -> Iterator[str]:
    """The base documents over and over until `size` bytes of text are given."""
    given, i = 0, 0
    while given < size:
        doc = base[i % len(base)]
        given += len(doc.encode())
        i += 1
        yield doc


def write_corpora(workdir: Path, label: str, size: int, formats: list[str], base: list[str]) -> dict:
    """Write the size's corpus in every format asked for, in one pass over the documents."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folders = {f: workdir / f"{f}-{label}" for f in formats}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    docs, text_bytes, n = corpus_docs(base, size), 0, 0
    while chunk := list(itertools.islice(docs, FILE_DOCS)):  # one jsonl/parquet file's documents
        if "txt" in folders:
            for i, doc in enumerate(chunk, n):
                (folders["txt"] / f"doc{i:07d}.txt").write_text(doc, encoding="utf-8")
        if "jsonl" in folders:
            with open(folders["jsonl"] / f"part{n:07d}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(
                    json.dumps({"text": doc, "id": i}, ensure_ascii=False) + "\n" for i, doc in enumerate(chunk, n)
                )
        if "parquet" in folders:
            pq.write_table(
                pa.table({"text": chunk}), folders["parquet"] / f"part{n:07d}.parquet", row_group_size=ROW_GROUP_DOCS
            )
        text_bytes += sum(len(doc.encode()) for doc in chunk)
        n += len(chunk)
    return {"text_bytes": text_bytes, "documents": n}


def ensure_corpora(workdir: Path, needs: dict[str, tuple[int, list[str]]]) -> dict:
    """Build what is missing (a marker file beside each folder says it is complete)."""
    base: list[str] | None = None
    report = {}
    for label, (size, formats) in needs.items():
        missing = [f for f in formats if not _marker_ok(workdir, f, label, size)]
        start = time.perf_counter()
        if missing:
            base = base if base is not None else base_documents()
            info = write_corpora(workdir, label, size, missing, base)
            for f in missing:  # the marker goes last: an interrupted build is rebuilt
                disk = sum(p.stat().st_size for p in (workdir / f"{f}-{label}").iterdir())
                (workdir / f"{f}-{label}.json").write_text(json.dumps({"size": size, "disk_bytes": disk, **info}))
        for f in formats:
            report[f"{f}-{label}"] = {**json.loads((workdir / f"{f}-{label}.json").read_text()),
                                      "reused": f not in missing}  # fmt: skip
        report[f"build-{label}_s"] = round(time.perf_counter() - start, 2)
    return report


def _marker_ok(workdir: Path, fmt: str, label: str, size: int) -> bool:
    marker = workdir / f"{fmt}-{label}.json"
    return marker.is_file() and (workdir / f"{fmt}-{label}").is_dir() and json.loads(marker.read_text())["size"] == size


def tree_rss_kb(root: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in KiB summed over `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # the process ended while we looked
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after the command name, which may hold spaces
            children.setdefault(ppid, []).append(int(entry.name))
    total = anon = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        except OSError:
            continue
        total += int(fields.get("VmRSS", "0 kB").split()[0])
        anon += int(fields.get("RssAnon", "0 kB").split()[0])
    return total, anon


def run_polled(cmd: list[str]) -> dict:
    """Run `cmd` to its end while a thread keeps the largest RSS sum of its process tree."""
    peak = [0, 0]
    done = threading.Event()
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)

        def poll() -> None:
            while not done.is_set():
                total, anon = tree_rss_kb(proc.pid)
                peak[0], peak[1] = max(peak[0], total), max(peak[1], anon)
                done.wait(POLL_S)

        sampler = threading.Thread(target=poll, daemon=True)
        sampler.start()
        proc.wait()  # the wall time is not rounded up to the polling period
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        log.seek(0)
        output = log.read()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{output[-3000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_MB": round(peak[0] * 1024 / 1e6),
            "peak_rss_anon_MB": round(peak[1] * 1024 / 1e6), "output": output}  # fmt: skip


def run_prepare(workdir: Path, name: str, folder: Path, bpe: bool, vocab: int) -> dict:
    """One `mygpt prepare`; its token files are hashed (for the identity check), then removed."""
    out = workdir / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    tok = ["--tokenizer", "bpe", "--vocab-size", str(vocab)] if bpe else []
    row = run_polled([sys.executable, "-m", "mygpt", "prepare", "--text", str(folder), "--out", str(out), *tok])
    del row["output"]
    meta = json.loads((out / "meta.json").read_text())
    row["tokens"] = meta["tokens"]["train"] + meta["tokens"]["val"]
    digest = hashlib.sha256()
    for part in ("train.bin", "val.bin"):
        with open(out / part, "rb") as f:
            while block := f.read(1 << 24):
                digest.update(block)
    row["sha256"] = digest.hexdigest()
    shutil.rmtree(out)  # a 3 GB corpus makes ~6 GB of uint16 ids: keep the disk in check
    return row


def reference_child(folder: Path, out: Path, vocab: int) -> None:
    """rustbpe on all of the text, then tiktoken's batch encoder; results as JSON on stdout."""
    import numpy as np
    import rustbpe
    import tiktoken

    from mygpt import bpe

    files = sorted(folder.glob("*.txt"))
    start = time.perf_counter()
    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator((p.read_text(encoding="utf-8") for p in files), vocab - 1, pattern=bpe.SPLIT_PATTERN)
    ranks = {bytes(token): rank for token, rank in trainer.get_mergeable_ranks()}
    trained = time.perf_counter()
    eot = len(ranks)  # <|endoftext|> takes the next id, as mygpt's BPETokenizer does
    enc = tiktoken.Encoding(name="reference", pat_str=bpe.SPLIT_PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": eot})  # fmt: skip
    # Batches of one document per core: the whole 1 GB as Python int lists would take ~40 bytes
    # a token (~10 GB), which measures Python's lists, not the pipeline.
    batch, tokens = os.cpu_count() or 1, 0
    with open(out, "wb") as f:
        for i in range(0, len(files), batch):
            docs = [p.read_text(encoding="utf-8") for p in files[i : i + batch]]
            for j, ids in enumerate(enc.encode_ordinary_batch(docs, num_threads=batch)):
                ids = ([eot] if i + j else []) + ids  # a separator between documents, as mygpt writes
                np.asarray(ids, dtype=np.uint16).tofile(f)
                tokens += len(ids)
    end = time.perf_counter()
    print(json.dumps({"tokens": tokens, "train_s": round(trained - start, 2), "encode_s": round(end - trained, 2)}))


def run_reference(workdir: Path, folder: Path, vocab: int) -> dict:
    out = workdir / "out-reference.bin"
    cmd = [
        sys.executable,
        __file__,
        "--reference-child",
        str(folder),
        "--reference-out",
        str(out),
        "--vocab-size",
        str(vocab),
    ]
    row = run_polled(cmd)
    row.update(json.loads(row.pop("output").strip().splitlines()[-1]))  # the child's last line: its results
    out.unlink()
    return row


def host() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    mem_kb = int(
        next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1]
    )
    return {"cpu_model": model, "cores": os.cpu_count(), "ram_GB": round(mem_kb * 1024 / 1e9, 1),
            "python": platform.python_version(), "mygpt_commit": _git("rev-parse", "HEAD"),
            "mygpt_dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))}  # fmt: skip


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def plan(sizes: list[str]) -> list[dict]:
    """Every row: its name, corpus label, format and tokenizer, in the order they run."""
    labels = [s.lower() for s in sizes]
    rows = [
        {"run": f"{tok}-{label}", "corpus": label, "format": "txt", "tokenizer": tok}
        for label in labels
        for tok in ("char", "bpe")
    ]
    first = labels[0]
    rows += [
        {"run": f"{fmt}-{first}", "corpus": first, "format": fmt, "tokenizer": "bpe"} for fmt in ("jsonl", "parquet")
    ]
    return rows + [{"run": f"reference-{first}", "corpus": first, "format": "txt", "tokenizer": "rustbpe+tiktoken"}]


def check_targets(rows: list[dict], first: str) -> list[str]:
    """Mark each row's targets in row["meets"]; return one PASS/FAIL line per target."""
    lines, by_name = [], {r["run"]: r for r in rows}
    for r in rows:
        if r["tokenizer"] not in ("char", "bpe"):
            continue  # the reference is measured, not judged
        need = TARGETS[f"{r['tokenizer']}_MB_per_s"]
        r["meets"] = {
            f"MB/s >= {need:g}": r["text_MB_per_s"] >= need,
            f"peak RSS < {TARGETS['peak_rss_MB']:g} MB": r["peak_rss_MB"] < TARGETS["peak_rss_MB"],
        }
        if r["format"] == "txt" and r["corpus"] != first:
            small = by_name.get(f"{r['tokenizer']}-{first}")
            if small:  # RSS must not grow with the corpus: streaming means flat memory
                growth = r["peak_rss_MB"] / small["peak_rss_MB"] - 1
                r["rss_growth_vs_" + small["run"]] = round(growth, 3)
                r["meets"][f"RSS within {TARGETS['rss_growth']:.0%} of {small['run']}"] = (
                    abs(growth) <= TARGETS["rss_growth"]
                )
        for target, ok in r["meets"].items():
            lines.append(
                f"{'PASS' if ok else 'FAIL'}  {r['run']}: {target}  (MB/s {r['text_MB_per_s']}, peak RSS {r['peak_rss_MB']} MB)"
            )
    return lines


def print_table(rows: list[dict]) -> None:
    print(
        "| run | format | tokenizer | text MB | on disk MB | wall s (median) | spread | MB/s of text | MB/s on disk "
        "| peak RSS MB | tokens | bytes/token |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['format']} | {r['tokenizer']} | {r['text_MB']:,.0f} | {r['size_MB']:,.0f} | {r['wall_s']:.1f} | {100 * r['spread']:.0f}% | "
              f"{r['text_MB_per_s']:.1f} | {r['MB_per_s']:.1f} | {r['peak_rss_MB']:,.0f} | {r['tokens']:,} | {r['bytes_per_token']:.2f} |")  # fmt: skip


def measure(rows: list[dict], corpora: dict, workdir: Path, vocab: int, repeat: int) -> None:
    """Run every row `repeat` times, the rows in turn each time (so drift hits them alike);
    keep each row's runs and report the median wall time and peak memory."""
    for _ in range(repeat):
        for r in rows:
            name = f"{r['format']}-{r['corpus']}"
            if r["tokenizer"] == "rustbpe+tiktoken":
                run = run_reference(workdir, workdir / name, vocab)
            else:
                run = run_prepare(workdir, r["run"], workdir / name, r["tokenizer"] == "bpe", vocab)
            r.setdefault("runs", []).append(run)
            print(f"{r['run']}: {run['wall_s']} s, peak RSS {run['peak_rss_MB']} MB", flush=True)
    for r in rows:
        info, runs = corpora[f"{r['format']}-{r['corpus']}"], r["runs"]
        r.update({k: v for k, v in runs[0].items() if k not in ("wall_s", "peak_rss_MB", "peak_rss_anon_MB")})
        r["same_output_every_run"] = len({run.get("sha256") for run in runs}) == 1
        walls = [run["wall_s"] for run in runs]
        r.update(wall_s=statistics.median(walls), spread=round((max(walls) - min(walls)) / statistics.median(walls), 3),
                 peak_rss_MB=statistics.median(run["peak_rss_MB"] for run in runs),
                 peak_rss_anon_MB=statistics.median(run["peak_rss_anon_MB"] for run in runs))  # fmt: skip
        r.update(size_MB=round(info["disk_bytes"] / 1e6, 1), text_MB=round(info["text_bytes"] / 1e6, 1),
                 MB_per_s=round(info["disk_bytes"] / 1e6 / r["wall_s"], 1),
                 text_MB_per_s=round(info["text_bytes"] / 1e6 / r["wall_s"], 1),
                 bytes_per_token=round(info["text_bytes"] / r["tokens"], 3))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1G,3G", help="corpus sizes, decimal K/M/G; the first gets jsonl/parquet/reference"
    )
    parser.add_argument("--workdir", default="/tmp/mygpt-prepare-scale", help="corpora (kept for reruns) and outputs")
    parser.add_argument("--only", help="run only these rows, e.g. char-1g,bpe-1g")
    parser.add_argument("--vocab-size", type=int, default=VOCAB)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each row, taken in turn; the medians are reported"
    )
    parser.add_argument("--json", default="benchmarks/results/prepare_scale.json", help="where to write the results")
    parser.add_argument("--reference-child", type=Path, help=argparse.SUPPRESS)  # internal: the reference run itself
    parser.add_argument("--reference-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        return reference_child(args.reference_child, args.reference_out, args.vocab_size)

    sizes = args.sizes.split(",")
    rows = plan(sizes)
    if args.only:
        wanted = set(args.only.lower().split(","))
        if unknown := wanted - {r["run"] for r in rows}:
            sys.exit(f"unknown rows {sorted(unknown)}; these exist: {', '.join(r['run'] for r in rows)}")
        rows = [r for r in rows if r["run"] in wanted]
    workdir = Path(args.workdir)
    needs: dict[str, tuple[int, list[str]]] = {}
    for r in rows:
        fmts = needs.setdefault(r["corpus"], (parse_size(r["corpus"]), []))[1]
        fmts += [] if r["format"] in fmts else [r["format"]]
    corpora = ensure_corpora(workdir, needs)
    print("corpora:", json.dumps(corpora), flush=True)

    measure(rows, corpora, workdir, args.vocab_size, args.repeat)

    same = [r["sha256"] for r in rows if r["tokenizer"] == "bpe" and r["corpus"] == sizes[0].lower()]
    identical = len(set(same)) == 1 if len(same) > 1 else None  # None: fewer than two formats were run
    lines = check_targets(rows, sizes[0].lower())
    print()
    print_table(rows)
    print()
    print("\n".join(lines))
    print(f"bpe txt/jsonl/parquet token files identical: {identical}")
    write_report(
        args.json, "prepare_scale", host=host(), targets=TARGETS, corpora=corpora, identical=identical, rows=rows
    )


if __name__ == "__main__":
    main()
