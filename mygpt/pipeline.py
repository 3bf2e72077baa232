"""Batches of a corpus through worker processes: results come back in input order.

`ordered_map` keeps at most 2 x workers batches in flight, so memory does not grow
with the corpus, and yields each batch's result in the order the batches were read,
so 1 worker and 8 workers write the same bytes. With one worker, or a corpus that fits
in one batch, it all runs in this process (no start-up cost).

The tasks, run in the workers:
- `char_set`: the characters of a batch (the char tokenizer's first pass);
- `chunk_counts`: BPE's pre-split chunks of a batch, counted (the tokenizer sample);
- `encode`: a batch's token ids, documents separated as `prepare` documents.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np

from mygpt import bpe
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


def ordered_map(task: Callable[[Batch], Any], batches: Iterable[Batch], workers: int,
                options: dict[str, Any]) -> Iterator[tuple[Batch, Any]]:  # fmt: skip
    """(batch, task(batch)) for every batch, in order. `options` (text_field, skip_bad,
    tokenizer: a to_dict() form or None) configure each worker."""
    batches = iter(batches)
    head = [b for b in (next(batches, None), next(batches, None)) if b is not None]
    if workers <= 1 or len(head) < 2:
        _configure(options)
        for batch in chain(head, batches):
            yield batch, task(batch)
        return
    context = multiprocessing.get_context("spawn")  # fork is unsafe in a process that has threads (torch, tests)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(options,))
    in_flight: deque[tuple[Batch, Future]] = deque()
    try:
        for batch in chain(head, batches):
            in_flight.append((batch, pool.submit(task, batch)))
            if len(in_flight) >= 2 * workers:
                done, future = in_flight.popleft()
                yield done, future.result()
        while in_flight:
            done, future = in_flight.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(options: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _configure(options)


def _configure(options: dict[str, Any]) -> None:
    _worker.clear()
    _worker.update(options)
    if options.get("tokenizer") is not None:
        tokenizer = from_dict(options["tokenizer"])
        _worker["tokenizer"] = tokenizer
        if isinstance(tokenizer, CharTokenizer):
            points = np.array([ord(c) for c in tokenizer.chars], dtype=np.int64)  # (V,)
            table = np.full(int(points.max()) + 1, -1, dtype=np.int64)  # code point -> id
            table[points] = np.arange(points.size)
            _worker["char_table"] = table


def _documents(batch: Batch, tally: Tally) -> Iterator[tuple[str, bool]]:
    for piece in batch.pieces:
        yield from documents(piece, _worker["text_field"], _worker["skip_bad"], tally)


def char_set(batch: Batch) -> tuple[set[str], Tally]:
    tally = Tally()
    chars: set[str] = set()
    for text, _ in _documents(batch, tally):
        chars.update(text)
    return chars, tally


def chunk_counts(batch: Batch) -> tuple[Counter[str], Tally]:
    tally = Tally()
    return bpe.count_chunks(text for text, _ in _documents(batch, tally)), tally


def encode(batch: Batch) -> Encoded:
    tokenizer, tally = _worker["tokenizer"], Tally()
    parts: list[np.ndarray] = []
    starts_doc: Optional[bool] = None
    ends_newline = False
    for text, starts in _documents(batch, tally):
        if starts_doc is None:
            starts_doc = starts
        elif starts and separator(tokenizer, ends_newline) >= 0:
            parts.append(np.array([separator(tokenizer, ends_newline)], dtype=np.int64))
        if starts:
            ends_newline = False
        if text:
            parts.append(_encode_text(tokenizer, text))
            ends_newline = text.endswith("\n")
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # (N,)
    return Encoded(ids.astype(_worker["dtype"]), starts_doc, ends_newline, tally)


def separator(tokenizer: Any, after_newline: bool) -> int:
    """The id between two documents: <|endoftext|>; for char, a newline unless the
    document before ends with one. Returns -1 when nothing goes between."""
    if tokenizer.eot_id is not None:
        return tokenizer.eot_id
    return -1 if after_newline else tokenizer.stoi["\n"]


def _encode_text(tokenizer: Any, text: str) -> np.ndarray:
    if "char_table" in _worker:
        points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # (N,) code points
        table = _worker["char_table"]
        ids = table[np.minimum(points, table.size - 1)]  # (N,)
        if (ids < 0).any() or (points >= table.size).any():
            tokenizer.encode(text)  # raises, naming the characters the vocabulary lacks
        return ids
    return np.array(tokenizer.encode(text), dtype=np.int64)
