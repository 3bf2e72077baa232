"""Prepared data folders: their format, opening one, and batches of training windows.

`prepare` (mygpt/corpus.py) streams a corpus into a folder:

    train.bin, val.bin   flat little-endian uint16 ids (uint32 when the vocabulary needs it)
    tokenizer.json       the tokenizer's JSON description
    meta.json            sources and their sha256, token counts, vocab size, dtype, split

Token files are memory-mapped when read back and training windows are read from them
one by one, so a corpus larger than memory trains with flat memory, and opening one
costs the same whatever its size.

This module does not import torch: batches are numpy arrays that the trainer moves
to its device.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mygpt import datasets
from mygpt.config import DEFAULT_DATA_DIR
from mygpt.errors import DataError, TokenizerError
from mygpt.files import describe_os_error, require_regular, stat_mode
from mygpt.prepare_config import PrepareConfig
from mygpt.tokenizer import Tokenizer, from_dict

DATA_FORMAT = "mygpt-data"  # meta.json's "format": what marks a folder as ours
DATA_VERSION = 1  # meta.json's "version": the layout `prepare` writes and `load` reads


@dataclass(frozen=True)
class PreparedData:
    """A prepared data folder, opened: token arrays are memory-mapped, not loaded."""

    path: Path
    meta: dict[str, Any]
    tokenizer: Tokenizer
    train: np.ndarray
    val: np.ndarray

    def check_windows(self, block_size: int) -> None:
        """Raise unless each split holds at least one window of block_size + 1 tokens."""
        for name, tokens in (("train", self.train), ("val", self.val)):
            require_windows(tokens, block_size, f"the {name} split of {self.path}")


def require_windows(tokens: np.ndarray, block_size: int, where: str) -> None:
    """Raise unless `tokens` hold one training window: block_size inputs and the next token."""
    if tokens.size < block_size + 1:
        raise DataError(
            f"{where} has {tokens.size} tokens, fewer than block_size + 1 = {block_size + 1}. "
            "Use a smaller --block-size, more text, or a different --val-fraction."
        )


def read_text(path: Path) -> str:
    """Read a file as UTF-8 text, with an error that says what is wrong and where."""
    require_regular(path, "text file", DataError)  # a FIFO would block, /dev/zero never end
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {describe_os_error(exc, path)}.") from None
    return decode_text(raw, str(path))


def decode_text(raw: bytes, path: str, offset: int = 0) -> str:
    """Bytes at `offset` of the file `path` as text: UTF-8 without NUL bytes; a byte-order
    mark at the start of the file is not part of the text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {offset + exc.start} is invalid). "
            f"If it is text in another encoding, convert it first, e.g. `iconv -f latin1 -t utf-8 {path}`."
        ) from None
    if "\x00" in text:
        raise DataError(f"{path} contains NUL bytes: it looks like a binary file, not text.")
    return text.removeprefix("\ufeff") if offset == 0 else text


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest little-endian unsigned dtype that holds every id."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def load(path: str | Path) -> PreparedData:
    """Open a prepared data folder, checking that it is complete."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"no prepared data at {path}. Create it with `mygpt prepare` (see `mygpt prepare --help`).")
    meta_path = path / "meta.json"
    for name in ("meta.json", "tokenizer.json", "train.bin", "val.bin"):  # a FIFO among them would block
        if stat_mode(path / name, name, DataError) is not None:
            require_regular(path / name, "data file", DataError)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        _check_format(path, meta)
        tokenizer = from_dict(json.loads((path / "tokenizer.json").read_text(encoding="utf-8")))
        dtype = np.dtype(meta["dtype"]).newbyteorder("<")
        counts = meta["tokens"]
    except FileNotFoundError as exc:
        raise DataError(
            f"{path} is not a prepared data folder ({Path(exc.filename).name} is missing); "
            "run `mygpt prepare` to create one."
        ) from None
    except (ValueError, KeyError, TypeError, TokenizerError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise DataError(
            f"{path} has a damaged meta.json or tokenizer.json ({reason}); run `mygpt prepare` again."
        ) from None
    arrays = [_split(path, name, counts, dtype, tokenizer.vocab_size) for name in ("train", "val")]
    return PreparedData(path, meta, tokenizer, arrays[0], arrays[1])


def _split(path: Path, name: str, counts: Any, dtype: np.dtype, vocab_size: int) -> np.ndarray:
    """One split's token file, mapped, after checking what meta.json says of it and that
    every id is one the tokenizer has (an id beyond it would index past the embedding)."""
    f = path / f"{name}.bin"
    try:
        expected = int(counts[name]) * dtype.itemsize
    except (KeyError, TypeError, ValueError):
        raise DataError(
            f"{path} has a damaged meta.json (its {name} token count); run `mygpt prepare` again."
        ) from None
    if not f.is_file() or f.stat().st_size != expected:
        raise DataError(f"{f} is missing or has the wrong size; run `mygpt prepare` again.")
    if expected == 0:
        raise DataError(f"the {name} split of {path} is empty: prepare more text, or a larger --val-fraction.")
    tokens = np.memmap(f, dtype=dtype, mode="r")
    top = max(int(chunk.max()) for chunk in np.array_split(tokens, max(1, tokens.size // 2**24)))  # bounded reads
    if top >= vocab_size:
        raise DataError(f"{f} holds token id {top}, beyond the tokenizer's {vocab_size} ids: it is damaged; "
                        "run `mygpt prepare` again.")  # fmt: skip
    return tokens


def _check_format(path: Path, meta: Any) -> None:
    """Raise unless meta.json says this is a prepared data folder this version of mygpt reads."""
    if not isinstance(meta, dict) or meta.get("format") != DATA_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        says = "has no format" if found is None else f"says format {found!r}"
        raise DataError(
            f"{path} is not a prepared data folder of mygpt: its meta.json {says}, where mygpt writes "
            f"{DATA_FORMAT!r}. Create one with `mygpt prepare` (see `mygpt prepare --help`)."
        )
    version = meta.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > DATA_VERSION:
        raise DataError(
            f"{path} was prepared by a newer mygpt (data format version {version}; this one reads "
            f"version {DATA_VERSION}). Upgrade mygpt, or run this version's `mygpt prepare` again."
        )
    if version != DATA_VERSION:
        raise DataError(
            f"{path} has a damaged meta.json (data format version {version!r}, expected {DATA_VERSION}); "
            "run `mygpt prepare` again."
        )


def default_dir(data_dir: str | Path = DEFAULT_DATA_DIR) -> Path:
    """Where the default corpus is prepared."""
    return Path(data_dir) / f"{datasets.DEFAULT_CORPUS}-char"


def ensure_default(
    data_dir: str | Path = DEFAULT_DATA_DIR, on_progress: Optional[Callable[[Any], None]] = None
) -> Path:
    """The default corpus's prepared folder, downloading and preparing it if needed."""
    from mygpt.corpus import prepare  # it imports this module

    out = default_dir(data_dir)
    if not (out / "meta.json").is_file():
        prepare(PrepareConfig(data_dir=str(data_dir), out=str(out)), on_progress)
    return out


def ensure_text(
    name: str, data_dir: str | Path = DEFAULT_DATA_DIR, on_progress: Optional[Callable[[Any], None]] = None
) -> Path:
    """A text file's prepared folder (char-level, `data_dir/<stem>-char`), prepared unless it
    already holds this very file: My Toy GPT's `--dataset FILE`. `name` is a path, or a file
    in data_dir."""
    from mygpt.corpus import prepare  # it imports this module

    named = stat_mode(name, "dataset", DataError) is not None  # whatever is there: a folder or FIFO is refused below
    text = Path(name) if named else Path(data_dir) / name
    if stat_mode(text, "dataset", DataError) is None:
        raise DataError(f"no such dataset: {name} (looked for {name} and {text}). Put a text file in {data_dir}/.")
    require_regular(text, "dataset", DataError)
    out = Path(data_dir) / f"{text.stem}-char"
    try:
        sources = json.loads((out / "meta.json").read_text(encoding="utf-8"))["sources"]
        fresh = len(sources) == 1 and sources[0]["sha256"] == datasets.sha256_file(text)
    except (OSError, ValueError, KeyError, TypeError, IndexError):  # not prepared, or not like this
        fresh = False
    if not fresh:
        prepare(PrepareConfig(text=(str(text),), out=str(out)), on_progress)
    return out


class BatchSampler:
    """Seeded random training windows: x is block_size ids, y the same window shifted by one.

    From a memory-mapped token file (what `load` gives), each window is read with one
    pread: touching the map would page in its neighbourhood too, and over a run most of
    a large file would count as this process's memory. Otherwise rows are gathered with
    one fancy-indexing call.
    """

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int | list[int]):
        self.tokens = tokens
        self.batch_size = batch_size
        require_windows(tokens, block_size, "the token array")
        self.n_starts = tokens.size - block_size  # windows of block_size + 1 tokens fit at starts [0, n_starts)
        self.offsets = np.arange(block_size + 1)  # (T+1,)
        self.rng = np.random.default_rng(seed)
        self._file = _whole_file(tokens)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        starts = self.rng.integers(0, self.n_starts, size=self.batch_size)  # (B,)
        if self._file is None:
            windows = self.tokens[starts[:, None] + self.offsets]  # (B, T+1)
        else:
            size, width = self.tokens.itemsize, self.offsets.size * self.tokens.itemsize
            raw = b"".join(os.pread(self._file.fileno(), width, int(start) * size) for start in starts)
            windows = np.frombuffer(raw, dtype=self.tokens.dtype).reshape(starts.size, -1)  # (B, T+1)
        windows = windows.astype(np.int64)  # (B, T+1)
        return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)


def _whole_file(tokens: np.ndarray) -> Optional[Any]:
    """An open file for a memory map of a whole token file, else None."""
    name = getattr(tokens, "filename", None)
    if not isinstance(tokens, np.memmap) or name is None or tokens.offset != 0:
        return None
    if not hasattr(os, "pread") or os.path.getsize(name) != tokens.size * tokens.itemsize:
        return None
    return open(name, "rb")
