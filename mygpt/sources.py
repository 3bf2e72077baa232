"""A corpus's files, read as a stream of batches of raw text that workers turn into documents.

`find_files` expands what `--text` names (files, folders, glob patterns) into a sorted
list of supported files. `read_batches` reads them in order, a block at a time, and
groups the pieces into batches of about BATCH_BYTES: memory stays flat whatever the
size of the corpus, and the batches (so the output) do not depend on how many workers
there are. Parsing (UTF-8, JSON) is left to the workers (mygpt/records.py).

A .txt file is one document. A large one is cut into pieces only where the cut cannot
change the tokens: after a newline that sits between a non-space character and a
letter or digit, or between an ASCII letter or digit and a space. Every pre-split
pattern mygpt uses (its own, gpt2's, cl100k's, o200k's) has a chunk boundary there
whose chunks do not depend on the text on the other side, so the pieces encode to the
same ids as the whole file (a test checks this). Only a text with no such place in
MAX_PIECE_BYTES is cut at a plain character boundary.
"""

from __future__ import annotations

import glob
import hashlib
import io
import stat
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Optional, Union

from mygpt.datasets import sha256_file
from mygpt.errors import DataError
from mygpt.files import describe_os_error, require_regular, stat_mode

KINDS = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".zst")
SUPPORTED = ".txt, .jsonl, .ndjson, .parquet, and .txt/.jsonl/.ndjson compressed as .gz or .zst"
BATCH_BYTES = 4 << 20  # about this much text per batch handed to a worker
READ_BYTES = 1 << 20
MAX_PIECE_BYTES = 64 << 20


@dataclass(frozen=True)
class SourceFile:
    path: Path
    kind: str  # "txt", "jsonl", "parquet" or "hf" (a Hugging Face dataset: mygpt/hf_dataset.py)
    compression: Optional[str]  # "gz", "zst" or None
    size: int  # bytes on disk


@dataclass(frozen=True)
class Piece:
    """Part of one file. txt: raw bytes of one document (all of it, or a piece);
    jsonl: raw bytes of whole lines; rows: the documents themselves (parquet)."""

    path: str
    kind: str  # "txt", "jsonl" or "rows"
    data: Union[bytes, list, None]  # None: the worker reads `span` of the file itself (less to send)
    starts_doc: bool  # txt: the piece begins its document
    first: int  # txt: byte offset in the (decompressed) file; jsonl: first line's number; rows: first row's
    span: tuple[int, int] = (0, 0)  # (offset, length) of the piece's bytes in an uncompressed file

    def raw(self) -> bytes:
        """The piece's bytes (txt, jsonl)."""
        if self.data is not None:
            assert isinstance(self.data, bytes)
            return self.data
        with open(self.path, "rb") as f:
            f.seek(self.span[0])
            return f.read(self.span[1])


@dataclass(frozen=True)
class Batch:
    index: int
    pieces: list[Piece]
    text_bytes: int  # bytes of raw text (or of documents) in the pieces
    disk_bytes: int  # bytes of the files on disk read to make this batch


def kind_of(path: Path) -> tuple[Optional[str], Optional[str]]:
    """(kind, compression) from a file name, or (None, None) for an unsupported one."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1][1:] if suffixes and suffixes[-1] in COMPRESSIONS else None
    inner = (
        suffixes[-2] if compression and len(suffixes) > 1 else (suffixes[-1] if suffixes and not compression else "")
    )
    kind = KINDS.get(inner)
    if kind is None or (compression and kind == "parquet"):
        return None, None
    return kind, compression


def find_files(names: tuple[str, ...] | list[str]) -> list[SourceFile]:
    """The files `--text` names, in order: a folder gives its supported files (not its
    subfolders', nor hidden ones), sorted; a glob pattern its matches, sorted (`**`
    recurses). A file named twice, by any path, is read once."""
    found: list[Path] = []
    for name in names:
        p = Path(name)
        mode = stat_mode(p, "corpus path", DataError)  # stat, not open: a FIFO must not be waited on
        if mode is not None and stat.S_ISDIR(mode):
            files = _folder_files(p)  # only its regular files: a FIFO in it is never opened
            if not files:
                raise DataError(f"folder {p} has no .txt files (nor any other supported file: {SUPPORTED}).")
        elif mode is not None:
            require_regular(p, "corpus file", DataError)
            if not kind_of(p)[0]:
                raise DataError(f"{p}: unsupported file type. Supported: {SUPPORTED}.")
            files = [p]
        elif glob.has_magic(name):
            matches = sorted(Path(m) for m in glob.glob(name, recursive=True) if Path(m).is_file())
            files = [m for m in matches if kind_of(m)[0]]
            if not files:
                others = f" (it matches {len(matches)} files of other types)" if matches else ""
                raise DataError(f"the pattern {name!r} matches no supported files{others}. Supported: {SUPPORTED}.")
        else:
            raise DataError(f"no such file or folder: {p}")
        found += files
    unique = {f.resolve(): f for f in reversed(found)}  # the first name of each file, in order
    ordered = sorted(unique.items(), key=lambda item: found.index(item[1]))
    return [SourceFile(f, *kind_of(f), f.stat().st_size) for _, f in ordered]  # type: ignore[misc]


def _folder_files(folder: Path) -> list[Path]:
    """A folder's supported regular files, not hidden ones, sorted."""
    try:
        return sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".") and kind_of(f)[0])
    except OSError as exc:
        raise DataError(f"cannot read the folder {folder}: {describe_os_error(exc, folder)}.") from None


def read_batches(
    files: list[SourceFile], text_field: str, digests: Optional[dict[Path, str]] = None
) -> Iterator[Batch]:
    """Every file's pieces, grouped in order into batches of about BATCH_BYTES.
    `digests`, when given, receives each file's sha256 (of its bytes on disk)."""
    pieces: list[Piece] = []
    text_bytes = disk_bytes = index = 0
    for f in files:
        for piece, n_text, n_disk in _pieces(f, text_field, digests):
            pieces.append(piece)
            text_bytes += n_text
            disk_bytes += n_disk
            if text_bytes >= BATCH_BYTES:
                yield Batch(index, pieces, text_bytes, disk_bytes)
                pieces, text_bytes, disk_bytes, index = [], 0, 0, index + 1
    if pieces:
        yield Batch(index, pieces, text_bytes, disk_bytes)


def _pieces(f: SourceFile, text_field: str, digests: Optional[dict[Path, str]]) -> Iterator[tuple[Piece, int, int]]:
    """(piece, bytes of text in it, bytes read from disk for it) for one file."""
    if f.kind == "hf":
        from mygpt import hf_dataset

        yield from hf_dataset.pieces(f, text_field, digests)
        return
    if f.kind == "parquet":
        from mygpt.parquet_file import pieces  # pyarrow is imported only for parquet corpora

        yield from pieces(f, text_field)
        if digests is not None:
            digests[f.path] = sha256_file(f.path)
        return
    try:
        with open(f.path, "rb") as raw:
            tracked = _Tracked(raw)
            stream = _decompressed(tracked, f.compression)
            split = _text_pieces if f.kind == "txt" else _line_pieces
            offset = 0
            for piece in split(stream, str(f.path)):
                size = len(piece.raw())
                if f.compression is None:  # the worker reads it from the file: cheaper than sending it
                    piece = replace(piece, data=None, span=(offset, size))
                offset += size
                before, tracked.counted = tracked.counted, tracked.pos
                yield piece, size, tracked.pos - before
            if digests is not None:
                digests[f.path] = tracked.sha.hexdigest()
    except Exception as exc:
        if not isinstance(exc, _read_errors(f.compression)):
            raise
        raise DataError(_read_error(f, exc)) from None


def _read_errors(compression: Optional[str]) -> tuple[type[BaseException], ...]:
    """What reading a file raises when the file (not the program) is at fault."""
    if compression == "zst":
        import zstandard

        return OSError, zstandard.ZstdError
    return OSError, EOFError, zlib.error  # gzip: BadGzipFile is an OSError; a truncated file, EOFError


def _read_error(f: SourceFile, exc: BaseException) -> str:
    if f.compression:
        return f"{f.path} is not a readable .{f.compression} file: it is damaged or truncated ({exc or type(exc).__name__})."
    return f"could not read {f.path}: {exc}"


class _Tracked(io.RawIOBase):
    """A file read through: counts and hashes the bytes as they go by."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.pos, self.counted, self.sha = raw, 0, 0, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.pos += len(data)
        self.sha.update(data)
        return len(data)


def _decompressed(raw: _Tracked, compression: Optional[str]) -> Any:
    if compression == "gz":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zst":
        return io.BufferedReader(_Zstd(raw), READ_BYTES)
    return io.BufferedReader(raw, READ_BYTES)


class _Zstd(io.RawIOBase):
    """Decompresses .zst frames one after another, and raises on a file that ends inside a
    frame (zstandard's stream reader takes a truncated file for a short one)."""

    def __init__(self, raw: _Tracked):
        import zstandard  # imported here: only .zst corpora need it

        self.raw, self.zstd, self.out = raw, zstandard, b""
        self.frame = zstandard.ZstdDecompressor().decompressobj()
        self.started = False  # the current frame has had input

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.out:
            data = self.raw.read(READ_BYTES)
            if not data:
                if self.started:
                    raise self.zstd.ZstdError("the file ends inside a frame")
                return 0
            while data:
                self.out += self.frame.decompress(data)
                self.started = not self.frame.eof
                data = self.frame.unused_data if self.frame.eof else b""
                if self.frame.eof:  # the next frame starts with what this one left over
                    self.frame = self.zstd.ZstdDecompressor().decompressobj()
        n = min(len(buffer), len(self.out))
        buffer[:n], self.out = self.out[:n], self.out[n:]
        return n


def _text_pieces(stream: Any, path: str) -> Iterator[Piece]:
    """One document in pieces of about READ_BYTES, cut only where tokens cannot change."""
    buf, offset, done = b"", 0, False
    while not done:
        block = _read_exactly(stream, READ_BYTES)  # exactly: the cuts depend only on the text
        done = not block
        buf += block
        while buf and (done or len(buf) >= READ_BYTES):
            cut = len(buf) if done else safe_cut(buf)
            if not cut and len(buf) < MAX_PIECE_BYTES:
                break  # no safe place yet: read on
            cut = cut or _char_boundary(buf, len(buf) - 4)
            yield Piece(path, "txt", buf[:cut], offset == 0, offset)
            offset, buf = offset + cut, buf[cut:]
    if offset == 0:
        yield Piece(path, "txt", b"", True, 0)  # an empty file is still a document


def split_text(raw: bytes) -> list[bytes]:
    """A document's bytes in the pieces a .txt file of them is read in."""
    return [piece.data for piece in _text_pieces(io.BytesIO(raw), "")]  # type: ignore[misc]


def _read_exactly(stream: Any, size: int) -> bytes:
    """`size` bytes, fewer only at the end (a decompressor may return less per read)."""
    block = stream.read(size)
    while 0 < len(block) < size:
        more = stream.read(size - len(block))
        if not more:
            break
        block += more
    return block


def _line_pieces(stream: Any, path: str) -> Iterator[Piece]:
    """Whole lines, about READ_BYTES at a time; `first` is the number of the first line."""
    buf, line = b"", 1
    while True:
        block = stream.read(READ_BYTES)
        buf += block
        cut = len(buf) if not block else buf.rfind(b"\n") + 1
        if cut and (not block or len(buf) >= READ_BYTES):
            yield Piece(path, "jsonl", buf[:cut], True, line)
            line += buf.count(b"\n", 0, cut)
            buf = buf[cut:]
        if not block:
            return


def safe_cut(buf: bytes) -> int:
    """The last place (searched in the final 64 KiB) where `buf` can be cut without
    changing its tokens; 0 if there is none."""
    low = max(1, len(buf) - (64 << 10))
    space, newline = buf.rfind(b" ", low, len(buf) - 1), buf.rfind(b"\n", low, len(buf) - 1)
    while space > 0 or newline > 0:
        if space > newline:  # an ASCII letter or digit, then a space: cut before the space
            if buf[space - 1 : space].isalnum():
                return space
            space = buf.rfind(b" ", low, space)
        else:  # a newline after a non-space and before a letter or digit: cut after it
            before, after = _char_before(buf, newline), _char_at(buf, newline + 1)
            if before and not before.isspace() and after.isalnum():
                return newline + 1
            newline = buf.rfind(b"\n", low, newline)
    return 0


def _char_before(buf: bytes, i: int) -> str:
    start = i - 1
    while start > max(0, i - 4) and 0x80 <= buf[start] < 0xC0:
        start -= 1
    return buf[start:i].decode("utf-8", errors="ignore")


def _char_at(buf: bytes, i: int) -> str:
    return buf[i : i + 4].decode("utf-8", errors="ignore")[:1]


def _char_boundary(buf: bytes, i: int) -> int:
    """The start of the UTF-8 character at or before i (>0)."""
    while i > 1 and 0x80 <= buf[i] < 0xC0:
        i -= 1
    return max(i, 1)
