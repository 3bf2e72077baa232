"""What the worker processes do to a batch of a corpus (mygpt/workers.py runs them).

- `char_set`: the characters of a batch (the char tokenizer's first pass);
- `sample_keys`, `chunk_counts`: the bpe or word tokenizer's sample, its units' keys, then
  their chunks (pieces of the tokenizer's pattern) counted;
- `encode`: a batch's token ids, documents separated as `prepare` documents.

Each worker keeps its options and tokenizer (read from the tokenizer.json path in the
options) between batches, and rebuilds them only when the options change.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from mygpt import bpe, sources
from mygpt.records import Tally, documents
from mygpt.sources import Batch
from mygpt.tokenizer import CharTokenizer, from_dict

_worker: dict[str, Any] = {}  # this process's options and tokenizer, set by `_configure`


@dataclass
class Encoded:
    ids: np.ndarray  # (N,) the batch's ids, separators inside the batch included
    starts_doc: Optional[bool]  # the batch begins a document (a separator goes before it); None: it holds none
    ends_newline: bool  # the batch's last document (so far) ends with a newline
    tally: Tally


def job(task: Callable[[Batch], Any], options: dict[str, Any]) -> Callable[[Batch], Any]:
    """`task` as a picklable function of a batch, for `Workers.map`. `options` configure the
    worker first: text_field, skip_bad, dtype, seed, threshold, pattern, tokenizer (a tokenizer.json's path)."""
    return functools.partial(_run, task, options)


def _run(task: Callable[[Batch], Any], options: dict[str, Any], batch: Batch) -> Any:
    if _worker.get("options") != options:
        _configure(options)
    return task(batch)


def _configure(options: dict[str, Any]) -> None:
    _worker.clear()
    _worker.update(options, options=dict(options))
    if options.get("tokenizer") is not None:
        tokenizer = from_dict(json.loads(Path(options["tokenizer"]).read_text(encoding="utf-8")))
        _worker["tokenizer"] = tokenizer
        if isinstance(tokenizer, CharTokenizer):
            points = np.array([ord(c) for c in tokenizer.chars], dtype=np.int64)  # (V,)
            table = np.full(max(int(points.max()) + 2, 256), -1, dtype=np.int32)  # code point -> id; -1: none
            table[points] = np.arange(points.size)
            _worker["char_table"] = table


def _documents(batch: Batch, tally: Tally) -> Iterator[tuple[str, bool]]:
    for piece in batch.pieces:
        yield from documents(piece, _worker["text_field"], _worker["skip_bad"], tally)


def char_set(batch: Batch) -> tuple[set[str], Tally]:
    tally = Tally()
    chars: set[str] = set()
    for text, _ in _documents(batch, tally):
        # Counting code points is ~10x faster than building a set of characters.
        points = _code_points(text)  # (N,)
        chars.update(map(chr, np.flatnonzero(np.bincount(points)).tolist()))
    return chars, tally


def _code_points(text: str) -> np.ndarray:
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _units(batch: Batch) -> Iterator[bytes]:
    """The batch's text in sampling units: the pieces a .txt file of each document is read
    in (a whole document unless it is large), whatever file the document came from.
    .txt pieces are not decoded here: the tokenizing pass checks their UTF-8."""
    for piece in batch.pieces:
        if piece.kind == "txt":
            raw = piece.raw()
            yield raw.removeprefix(b"\xef\xbb\xbf") if piece.first == 0 else raw
            continue
        for text, _ in documents(piece, _worker["text_field"], _worker["skip_bad"], Tally()):
            raw = text.encode("utf-8")
            yield from (raw,) if len(raw) < sources.READ_BYTES else sources.split_text(raw)


def _key(unit: bytes) -> int:
    """A unit's sampling key: a seeded hash of its content, so the sample does not depend
    on the files, their order or their format."""
    if "seeded" not in _worker:
        _worker["seeded"] = hashlib.sha1(_worker["seed"].to_bytes(8, "little"))
    h = _worker["seeded"].copy()
    h.update(unit)
    return int.from_bytes(h.digest()[:8], "little")


def sample_keys(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """(key, bytes) of every sampling unit of the batch."""
    pairs = [(_key(unit), len(unit)) for unit in _units(batch)]
    keys = np.array([k for k, _ in pairs], dtype=np.uint64)  # (U,)
    sizes = np.array([n for _, n in pairs], dtype=np.int64)  # (U,)
    return keys, sizes


def chunk_counts(batch: Batch) -> Counter[str]:
    """The chunks (of the options' pattern: BPE's pre-split, or words) of the batch's units
    that are in the sample (key <= threshold)."""
    threshold = _worker["threshold"]
    chosen = (unit.decode("utf-8", errors="replace") for unit in _units(batch) if _key(unit) <= threshold)
    return bpe.count_chunks(chosen, _worker["pattern"])


def encode(batch: Batch) -> Encoded:
    tokenizer, tally = _worker["tokenizer"], Tally()
    parts: list[np.ndarray] = []
    starts_doc: Optional[bool] = None
    ends_newline = False
    for text, starts in _documents(batch, tally):
        if starts_doc is None:
            starts_doc = starts
        elif starts:
            parts.append(separator(tokenizer, ends_newline))
        if starts:
            ends_newline = False
        if text:
            parts.append(_encode_text(tokenizer, text))
            ends_newline = text.endswith("\n")
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # (N,)
    return Encoded(ids.astype(_worker["dtype"]), starts_doc, ends_newline, tally)


def separator(tokenizer: Any, after_newline: bool) -> np.ndarray:
    """The ids between two documents: <|endoftext|>; for char, a newline unless the
    document before ends with one (then none)."""
    if tokenizer.eot_id is not None:
        return np.array([tokenizer.eot_id], dtype=np.int64)
    return np.array([] if after_newline else [tokenizer.stoi["\n"]], dtype=np.int64)


def _encode_text(tokenizer: Any, text: str) -> np.ndarray:
    if "char_table" in _worker:
        table, points = _worker["char_table"], _code_points(text)  # (N,)
        ids = table[np.minimum(points, table.size - 1) if points.dtype != np.uint8 else points]  # (N,)
        if (ids < 0).any():
            tokenizer.encode(text)  # raises, naming the characters the vocabulary lacks
        return ids
    ids = tokenizer.encode(text)
    return np.fromiter(ids, dtype=np.int64, count=len(ids))
