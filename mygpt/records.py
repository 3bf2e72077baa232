"""A piece of a file (mygpt/sources.py) -> its documents, with errors that name file and line.

Runs in the workers. A .txt piece is UTF-8 text (part of one document); a JSON-lines
piece holds whole lines, one record each, whose `text_field` is the document (blank
lines are skipped); a rows piece (parquet) holds the documents already. A record that
cannot be used (a line that is not JSON, a record without the field, a value that is
not a string) is an error naming the file and line or row, or, with skip_bad, a count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from mygpt.data import decode_text
from mygpt.errors import DataError
from mygpt.sources import Piece

SKIP_HINT = ". --skip-bad-records skips such records and counts them."


@dataclass
class Tally:
    """What a worker saw besides the text."""

    documents: int = 0
    bad_records: int = 0
    text_bytes: int = 0  # UTF-8 bytes of the documents' text
    has_text: bool = False  # some document has a character other than whitespace
    notes: list[str] = field(default_factory=list)


def documents(piece: Piece, text_field: str, skip_bad: bool, tally: Tally) -> Iterator[tuple[str, bool]]:
    """(text, starts a new document) for each document or part of one in the piece."""
    if piece.kind == "txt":
        text = decode_text(piece.raw(), piece.path, piece.first)
        yield text, piece.starts_doc
        tally.documents += piece.starts_doc
        tally.text_bytes += len(text.encode("utf-8")) if not text.isascii() else len(text)
        tally.has_text = tally.has_text or (text != "" and not text.isspace())
        return
    if piece.kind == "jsonl":
        records: Iterator[tuple[str, Any]] = _json_records(piece, skip_bad, tally)
    else:
        records = ((f"{piece.path}, row {piece.first + i + 1}", {text_field: doc}) for i, doc in enumerate(piece.data))
    for where, record in records:
        text = _text_of(record, text_field, where, skip_bad, tally)
        if text is None:
            continue
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:  # JSON can spell a lone surrogate ("\ud800"): not text
            _bad(f"{where}: {text_field!r} holds {text[exc.start]!r} at character {exc.start}, a lone surrogate: "
                 "not valid Unicode text", skip_bad, tally)  # fmt: skip
            continue
        tally.documents += 1
        tally.text_bytes += size
        tally.has_text = tally.has_text or (text != "" and not text.isspace())
        yield text, True


def _json_records(piece: Piece, skip_bad: bool, tally: Tally) -> Iterator[tuple[str, Any]]:
    raw = piece.raw()
    if piece.first == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    for i, line in enumerate(raw.split(b"\n")):
        if not line.strip():
            continue
        where = f"{piece.path}, line {piece.first + i}"
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            _bad(f"{where}: not valid JSON ({_reason(exc)})", skip_bad, tally)
            continue
        yield where, record


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)  # a number with too many digits, say


def _text_of(record: Any, text_field: str, where: str, skip_bad: bool, tally: Tally) -> str | None:
    if not isinstance(record, dict):
        return _bad(
            f"{where}: expected a JSON object with a {text_field!r} field, got {_kind(record)}", skip_bad, tally
        )
    if text_field not in record:
        fields = ", ".join(map(str, list(record)[:20])) or "none"
        return _bad(f"{where}: the record has no {text_field!r} field (its fields: {fields}). "
                    "Choose the field with --text-field", skip_bad, tally)  # fmt: skip
    text = record[text_field]
    if not isinstance(text, str):
        return _bad(f"{where}: {text_field!r} is {_kind(text)}, not a string", skip_bad, tally)
    return text


def _bad(message: str, skip_bad: bool, tally: Tally) -> None:
    if not skip_bad:
        raise DataError(message + SKIP_HINT)
    tally.bad_records += 1
    if len(tally.notes) < 3:
        tally.notes.append(message)
    return None


def _kind(value: Any) -> str:
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)
