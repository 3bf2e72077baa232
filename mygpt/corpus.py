"""`prepare`: a corpus of any size -> a prepared data folder (mygpt/data.py reads it).

The corpus is streamed, never held: files are read a block at a time (mygpt/sources.py),
parsed and tokenized by worker processes (mygpt/pipeline.py), and the ids are appended
to the token file in input order as they arrive (mygpt/tokenfiles.py). Memory stays flat
whatever the size of the corpus, and any number of workers writes the same bytes.

The tokenizer comes first:
- char: a first streaming pass collects the characters (sorted: the same corpus always
  gives the same vocabulary);
- bpe: trained on a seeded sample of the corpus's batches of about `tokenizer_sample`
  bytes (all of it when the corpus is smaller), the chunks counted by the workers;
- word: the same sample, its words, punctuation marks and whitespace runs counted by
  the workers; the most frequent make the vocabulary;
- a pretrained encoding: as is.
Documents are separated as they always were: <|endoftext|> for BPE and word, a newline
for char where a document does not already end with one.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from mygpt import bpe, datasets, pipeline, sources
from mygpt.data import DATA_FORMAT, DATA_VERSION, token_dtype
from mygpt.errors import DataError
from mygpt.events import PrepareProgress
from mygpt.prepare_config import PrepareConfig
from mygpt.records import Tally
from mygpt.sources import Batch, SourceFile, find_files, kind_of, read_batches
from mygpt.tokenfiles import TokenFolder, check_out
from mygpt.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, pretrained
from mygpt.word_tokenizer import WORD_PATTERN, WordTokenizer
from mygpt.workers import Workers

OnProgress = Callable[[PrepareProgress], None]
MAX_LISTED_SOURCES = 100  # meta.json (and every checkpoint) lists this many files at most


def prepare(cfg: PrepareConfig, on_progress: Optional[OnProgress] = None) -> Path:
    """Tokenize a corpus and write a prepared data folder; return its path."""
    report = on_progress or (lambda event: None)
    files, name = _inputs(cfg, report)
    label = f"{cfg.tokenizer}{cfg.trained_vocab_size}" if cfg.tokenizer in ("bpe", "word") else cfg.tokenizer
    out = Path(cfg.out) if cfg.out else Path(cfg.data_dir) / f"{name}-{label}"
    check_out(out)  # before reading anything
    options: dict[str, Any] = {"text_field": cfg.text_field, "skip_bad": cfg.skip_bad_records, "tokenizer": None}
    small = sum(f.size for f in files) < 2 * sources.BATCH_BYTES  # too little work to pay for starting processes
    with Workers(1 if small else cfg.workers or len(os.sched_getaffinity(0))) as workers:
        tokenizer, notes = _tokenizer(files, cfg, workers, options, report)
        dtype = token_dtype(tokenizer.vocab_size)
        with TokenFolder(out, dtype) as folder:
            options = {**options, "tokenizer": str(folder.write_tokenizer(tokenizer.to_dict())), "dtype": dtype.str}
            digests: dict[Path, str] = {}
            tally = _encode(read_batches(files, cfg.text_field, digests), tokenizer, workers, options, folder,
                            _Progress("tokenizing", files, report))  # fmt: skip
            _check_content(tally, files)
            report(PrepareProgress("splitting", 0, None, tally.documents, folder.tokens))
            n_train, n_val = folder.split(cfg.val_fraction, cfg.split, cfg.seed)
            meta = {
                "format": DATA_FORMAT, "version": DATA_VERSION, "corpus": name,
                "sources": [{"path": str(f.path), "bytes": f.size, ("fingerprint" if f.kind == "hf" else "sha256"): digests[f.path]}
                            for f in files[:MAX_LISTED_SOURCES]],
                "files": len(files), "bytes": sum(f.size for f in files),
                "checksum": digests[files[0].path] if len(files) == 1 else _combined(digests[f.path] for f in files),
                "documents": tally.documents,
                "tokenizer": {k: v for k, v in tokenizer.to_dict().items() if k in ("type", "encoding", "vocab_size")},
                "dtype": dtype.name, "tokens": {"train": n_train, "val": n_val},
                "bytes_per_token": tally.text_bytes / max(folder.tokens, 1),
                "split": cfg.split, "val_fraction": cfg.val_fraction, "seed": cfg.seed,
                **({"text_field": cfg.text_field} if any(f.kind != "txt" for f in files) else {}),
                **({"skipped_records": tally.bad_records, "skipped_examples": tally.notes} if cfg.skip_bad_records else {}),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **notes,
            }  # fmt: skip
            folder.commit(meta)
    return out


def _encode(batches: Iterable[Batch], tokenizer: Tokenizer, workers: Workers, options: dict[str, Any],
            folder: TokenFolder, progress: _Progress) -> Tally:  # fmt: skip
    """Every batch's ids appended to the folder in corpus order, separators between
    documents included; returns what the workers saw."""
    tally = Tally()
    after_newline: Optional[bool] = None  # how the last document so far ended; None before the first
    for batch, encoded in workers.map(pipeline.job(pipeline.encode, options), batches):
        if encoded.starts_doc is not None:
            if encoded.starts_doc and after_newline is not None:
                folder.append(pipeline.separator(tokenizer, after_newline))
            after_newline = encoded.ends_newline
        folder.append(encoded.ids)
        _add(tally, encoded.tally)
        progress.update(batch, tally.documents, folder.tokens)
    return tally


def _inputs(cfg: PrepareConfig, report: OnProgress) -> tuple[list[SourceFile], str]:
    """The corpus's files, and the name of its prepared folder."""
    if cfg.text:
        files, name = find_files(cfg.text), _name_of(cfg.text[0])
    elif cfg.hf_dataset:
        from mygpt import hf_dataset

        files, name = [hf_dataset.source(cfg.hf_dataset, cfg.text_field)], Path(cfg.hf_dataset.split(":")[0]).name
    else:
        name = cfg.corpus or datasets.DEFAULT_CORPUS
        path = datasets.ensure(
            name, cfg.data_dir, lambda done, total: report(PrepareProgress("downloading", done, total))
        )
        files = find_files([str(path)])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "corpus"
    return files, name


def _name_of(given: str) -> str:
    """A folder's name, a file's name without the extensions that give its format, or a
    glob pattern's folder ('books/**/*.txt' -> books)."""
    literal = Path(given).exists() or not glob.has_magic(given)
    path = Path(given) if literal else Path(re.split(r"[*?\[]", given)[0])
    if not path.is_file():
        return path.name
    n_suffixes = 2 if kind_of(path)[1] else 1
    return path.name[: len(path.name) - len("".join(path.suffixes[-n_suffixes:]))]


def _tokenizer(files: list[SourceFile], cfg: PrepareConfig, workers: Workers, options: dict[str, Any],
               report: OnProgress) -> tuple[Tokenizer, dict[str, Any]]:  # fmt: skip
    """The tokenizer `cfg` asks for, and facts about it for meta.json."""
    notes: dict[str, Any] = {}
    if cfg.tokenizer == "char":
        chars: set[str] = set()
        tally = Tally()
        progress = _Progress("reading characters", files, report)
        for batch, (found, seen) in workers.map(
            pipeline.job(pipeline.char_set, options), read_batches(files, cfg.text_field)
        ):
            chars |= found
            _add(tally, seen)
            progress.update(batch, tally.documents, 0)
        _check_content(tally, files)
        if tally.documents > 1:
            chars.add("\n")  # what separates documents that do not end with a newline
        return CharTokenizer(sorted(chars)), notes
    if cfg.tokenizer not in ("bpe", "word"):
        return pretrained(cfg.tokenizer, cfg.tokenizer_file), notes
    threshold, chosen, sample_bytes = _sample(files, cfg, workers, options, report)
    # Both count the pieces of their pattern in the sample: distinct words, like distinct
    # chunks, grow with the text counted, and the sample bounds them whatever the corpus.
    pattern = WORD_PATTERN if cfg.tokenizer == "word" else bpe.SPLIT_PATTERN
    options = {**options, "seed": cfg.seed, "threshold": threshold, "pattern": pattern}
    counts: Counter[str] = Counter()
    batches = (b for b in read_batches(files, cfg.text_field) if b.index in chosen)
    progress = _Progress("counting the sample", files, report)
    for batch, found in workers.map(pipeline.job(pipeline.chunk_counts, options), batches):
        counts.update(found)
        progress.update(batch, 0, 0)
    report(PrepareProgress("training the tokenizer", 0, None))
    start = time.perf_counter()
    size = cfg.trained_vocab_size
    if cfg.tokenizer == "word":
        tokenizer: Tokenizer = WordTokenizer.from_counts(counts, size)
    else:
        tokenizer = BPETokenizer.from_merges(bpe.train_counts(counts, size - 257))
    notes["tokenizer_seconds"] = round(time.perf_counter() - start, 3)
    notes["tokenizer_sample"] = {"limit": cfg.tokenizer_sample, "bytes": sample_bytes, "seed": cfg.seed}
    if tokenizer.vocab_size < size:
        why = "has too few distinct pieces" if cfg.tokenizer == "word" else "ran out of pairs to merge"
        notes["note"] = f"the corpus {why}: the vocabulary has {tokenizer.vocab_size} tokens, not the {size} asked for"
    return tokenizer, notes


def _sample(files: list[SourceFile], cfg: PrepareConfig, workers: Workers, options: dict[str, Any],
            report: OnProgress) -> tuple[int, set[int], int]:  # fmt: skip
    """The bpe or word tokenizer's sample: (key threshold, batches that hold sampled text, bytes).

    The text is cut into units (documents, or pieces of large ones) and each unit's key
    is a seeded hash of its content; the sample is every unit whose key is at most the
    threshold, the smallest one whose units reach `tokenizer_sample` bytes (all units,
    for a smaller corpus). It is a uniform random sample that depends only on the
    documents and the seed, so every format of the same documents gives the same
    tokenizer. Only candidates below the running threshold are kept: memory is bounded
    by the sample, not the corpus.
    """
    keys, sizes, where = np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    threshold, limit, kept = np.uint64(2**64 - 1), cfg.tokenizer_sample, 1 << 16
    progress = _Progress("sampling", files, report)
    keyed = pipeline.job(pipeline.sample_keys, {**options, "seed": cfg.seed})
    for batch, (batch_keys, batch_sizes) in workers.map(keyed, read_batches(files, cfg.text_field)):
        candidate = batch_keys <= threshold  # (U,)
        keys = np.concatenate([keys, batch_keys[candidate]])
        sizes = np.concatenate([sizes, batch_sizes[candidate]])
        where = np.concatenate([where, np.full(int(candidate.sum()), batch.index)])
        if keys.size > 2 * kept:
            keys, sizes, where, threshold = _below_threshold(keys, sizes, where, limit)
            kept = max(keys.size, 1 << 16)
        progress.update(batch, 0, 0)
    keys, sizes, where, threshold = _below_threshold(keys, sizes, where, limit)
    return int(threshold), set(where.tolist()), int(sizes.sum())


def _below_threshold(keys: np.ndarray, sizes: np.ndarray, where: np.ndarray, limit: int) -> tuple[np.ndarray, ...]:
    """The units whose keys are at most the smallest key at which they reach `limit` bytes."""
    order = np.argsort(keys, kind="stable")
    keys, sizes, where = keys[order], sizes[order], where[order]
    reached = np.searchsorted(np.cumsum(sizes), limit)  # the first unit at which the sum reaches limit
    if reached >= keys.size:  # fewer bytes than the limit so far: keep them all
        return keys, sizes, where, np.uint64(2**64 - 1)
    threshold = keys[reached]
    keep = keys <= threshold  # (U,) with every unit that shares the threshold key
    return keys[keep], sizes[keep], where[keep], threshold


class _Progress:
    """Turns batches done into PrepareProgress events: bytes of the files on disk, or,
    for a list of batches (the sample), bytes of their text."""

    def __init__(self, phase: str, source: list[SourceFile] | list[Batch], report: OnProgress):
        self.phase, self.report, self.done = phase, report, 0
        self.on_disk = not source or isinstance(source[0], SourceFile)
        self.total = sum(s.size if isinstance(s, SourceFile) else s.text_bytes for s in source)
        report(PrepareProgress(phase, 0, self.total))

    def update(self, batch: Batch, documents: int, tokens: int) -> None:
        self.done += batch.disk_bytes if self.on_disk else batch.text_bytes
        self.report(PrepareProgress(self.phase, self.done, self.total, documents, tokens))


def _add(into: Tally, other: Tally) -> None:
    into.documents += other.documents
    into.bad_records += other.bad_records
    into.text_bytes += other.text_bytes
    into.has_text = into.has_text or other.has_text
    into.notes += other.notes[: 3 - len(into.notes)]


def _check_content(tally: Tally, files: list[SourceFile]) -> None:
    shown = ", ".join(str(f.path) for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    if tally.documents == 0:
        skipped = f" ({tally.bad_records} bad records skipped)" if tally.bad_records else ""
        raise DataError(f"the corpus has no documents{skipped} ({shown}): there is nothing to learn from.")
    if not tally.has_text:
        raise DataError(f"the corpus is empty or only whitespace ({shown}): there is nothing to learn from.")


def _combined(digests: Iterable[str]) -> str:
    """One checksum for several files: the sha256 of their sha256s, in order."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()
