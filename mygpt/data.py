"""Corpus -> token files, and batches of training windows from them.

`prepare` reads text (a built-in corpus, files, or folders of .txt files), trains a
tokenizer on it, splits the ids into train and validation, and writes a folder:

    train.bin, val.bin   flat little-endian uint16 ids (uint32 when the vocabulary needs it)
    tokenizer.json       the tokenizer's JSON description
    meta.json            sources and their sha256, token counts, vocab size, dtype, split

The folder is written under a temporary name and renamed when complete, so an error
or a crash never leaves a half-prepared folder behind. Token files are read back with
`np.memmap`, so a corpus larger than memory still trains.

This module does not import torch: batches are numpy arrays that the trainer moves
to its device.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mygpt import bpe, datasets
from mygpt.config import DEFAULT_DATA_DIR, PrepareConfig
from mygpt.errors import DataError, TokenizerError
from mygpt.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, from_dict, pretrained

DATA_FORMAT = "mygpt-data"  # meta.json's "format": what marks a folder as ours
DATA_VERSION = 1  # meta.json's "version": the layout `prepare` writes and `load` reads
# Chunks for --split random: at most this many tokens each, and at least ~20 chunks.
RANDOM_CHUNK_TOKENS = 1024


@dataclass(frozen=True)
class Source:
    path: Path
    text: str


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


def read_sources(paths: tuple[str, ...] | list[str]) -> list[Source]:
    """Read text files, expanding each folder into its .txt files in sorted order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob("*.txt") if f.is_file())
            if not found:
                raise DataError(f"folder {p} has no .txt files.")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"no such file or folder: {p}")
    return [Source(f, read_text(f)) for f in files]


def read_text(path: Path) -> str:
    """Read a file as UTF-8 text, with an error that says what is wrong and where."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start} is invalid). "
            f"If it is text in another encoding, convert it first, e.g. `iconv -f latin1 -t utf-8 {path}`."
        ) from None
    if "\x00" in text:
        raise DataError(f"{path} contains NUL bytes: it looks like a binary file, not text.")
    return text.removeprefix("\ufeff")  # a byte-order mark is not part of the text


def prepare(cfg: PrepareConfig, on_progress: datasets.Progress | None = None) -> Path:
    """Tokenize a corpus and write a prepared data folder; return its path."""
    if cfg.text:
        sources = read_sources(cfg.text)
        first = Path(cfg.text[0])
        name = first.name if first.is_dir() else first.stem
    else:
        name = cfg.corpus or datasets.DEFAULT_CORPUS
        path = datasets.ensure(name, cfg.data_dir, on_progress)
        sources = [Source(path, read_text(path))]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "corpus"
    docs = [s.text for s in sources]
    if not any(doc.strip() for doc in docs):
        shown = ", ".join(str(s.path) for s in sources)
        raise DataError(f"the corpus is empty or only whitespace ({shown}): there is nothing to learn from.")

    tokenizer, ids, notes = tokenize(docs, cfg)
    train_ids, val_ids = split(ids, cfg.val_fraction, cfg.split, cfg.seed)
    label = f"bpe{cfg.bpe_vocab_size}" if cfg.tokenizer == "bpe" else tokenizer.name
    out = Path(cfg.out) if cfg.out else Path(cfg.data_dir) / f"{name}-{label}"
    n_bytes = sum(len(doc.encode("utf-8")) for doc in docs)
    meta = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "corpus": name,
        "sources": [
            {"path": str(s.path), "bytes": len(s.text.encode("utf-8")), "sha256": _sha256(s.text)} for s in sources
        ],
        "checksum": _sha256("".join(docs)),  # for a single file: that file's sha256
        "tokenizer": {k: v for k, v in tokenizer.to_dict().items() if k in ("type", "encoding", "vocab_size")},
        "dtype": ids.dtype.name,
        "tokens": {"train": int(train_ids.size), "val": int(val_ids.size)},
        "bytes_per_token": n_bytes / ids.size,
        "split": cfg.split,
        "val_fraction": cfg.val_fraction,
        "seed": cfg.seed,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **notes,
    }
    _write_folder(out, train_ids, val_ids, tokenizer, meta)
    return out


def tokenize(docs: list[str], cfg: PrepareConfig) -> tuple[Tokenizer, np.ndarray, dict[str, Any]]:
    """Build the tokenizer `cfg` asks for and encode the documents into one id array.

    Returns extra facts for meta.json: the tokenizer's training time, and a note when
    BPE ran out of pairs before the requested vocabulary size.
    """
    notes: dict[str, Any] = {}
    if cfg.tokenizer == "char":
        # Documents are joined with a newline where one does not already end with one, so
        # the last line of one file and the first line of the next stay separate lines.
        text = "".join(d if d.endswith("\n") else d + "\n" for d in docs[:-1]) + docs[-1]
        tokenizer = CharTokenizer.train(text)
        return tokenizer, np.array(tokenizer.encode(text), dtype=token_dtype(tokenizer.vocab_size)), notes
    if cfg.tokenizer == "bpe":
        start = time.perf_counter()
        tokenizer = BPETokenizer.from_merges(bpe.train(docs, cfg.bpe_vocab_size - 257))
        notes["tokenizer_seconds"] = round(time.perf_counter() - start, 3)
        if tokenizer.vocab_size < cfg.bpe_vocab_size:
            notes["note"] = (
                f"the corpus ran out of pairs to merge: the vocabulary has {tokenizer.vocab_size} tokens, "
                f"not the {cfg.bpe_vocab_size} asked for"
            )
    else:
        tokenizer = pretrained(cfg.tokenizer, cfg.tokenizer_file)
    ids: list[int] = []
    for i, doc_ids in enumerate(tokenizer.encode_documents(docs)):
        if i:
            ids.append(tokenizer.eot_id)  # <|endoftext|> between documents
        ids.extend(doc_ids)
    return tokenizer, np.array(ids, dtype=token_dtype(tokenizer.vocab_size)), notes


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest little-endian unsigned dtype that holds every id."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def split(ids: np.ndarray, val_fraction: float, how: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ids into (train, val).

    contiguous: the last `val_fraction` of the tokens are validation (no overlap of
    text between the splits). random: the ids are cut into chunks of at most
    RANDOM_CHUNK_TOKENS and a seeded random `val_fraction` of the chunks are validation;
    each split keeps its chunks in their original order.
    """
    n = ids.size
    if n < 4:
        raise DataError(f"the corpus has only {n} tokens: too few to split into training and validation text.")
    if how == "contiguous":
        n_val = min(max(1, round(n * val_fraction)), n - 1)
        return ids[: n - n_val], ids[n - n_val :]
    chunk = max(1, min(RANDOM_CHUNK_TOKENS, n // 20))
    n_chunks = -(-n // chunk)
    n_val = min(max(1, round(n_chunks * val_fraction)), n_chunks - 1)
    val_chunks = np.random.default_rng(seed).choice(n_chunks, size=n_val, replace=False)
    is_val = np.isin(np.arange(n) // chunk, val_chunks)  # (N,) bool
    return ids[~is_val], ids[is_val]


def load(path: str | Path) -> PreparedData:
    """Open a prepared data folder, checking that it is complete."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"no prepared data at {path}. Create it with `mygpt prepare` (see `mygpt prepare --help`).")
    meta_path = path / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        _check_format(path, meta)
        tokenizer = from_dict(json.loads((path / "tokenizer.json").read_text(encoding="utf-8")))
        dtype = np.dtype(meta["dtype"]).newbyteorder("<")
        counts = meta["tokens"]
    except FileNotFoundError as exc:
        raise DataError(f"{path} is not a prepared data folder ({Path(exc.filename).name} is missing); "
                        "run `mygpt prepare` to create one.") from None
    except (ValueError, KeyError, TypeError, TokenizerError) as exc:
        raise DataError(f"{path} has a damaged meta.json or tokenizer.json ({exc}); run `mygpt prepare` again.") from None
    arrays = []
    for split_name in ("train", "val"):
        f = path / f"{split_name}.bin"
        expected = int(counts[split_name]) * dtype.itemsize
        if not f.is_file() or f.stat().st_size != expected:
            raise DataError(f"{f} is missing or has the wrong size; run `mygpt prepare` again.")
        arrays.append(np.memmap(f, dtype=dtype, mode="r"))
    return PreparedData(path, meta, tokenizer, arrays[0], arrays[1])


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


def ensure_default(data_dir: str | Path = DEFAULT_DATA_DIR, on_progress: datasets.Progress | None = None) -> Path:
    """The default corpus's prepared folder, downloading and preparing it if needed."""
    out = default_dir(data_dir)
    if not (out / "meta.json").is_file():
        prepare(PrepareConfig(data_dir=str(data_dir), out=str(out)), on_progress)
    return out


class BatchSampler:
    """Seeded random training windows: x is block_size ids, y the same window shifted by one.

    Rows are gathered with one fancy-indexing call (no Python loop per row), straight
    from the memory map.
    """

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int | list[int]):
        self.tokens = tokens
        self.batch_size = batch_size
        require_windows(tokens, block_size, "the token array")
        self.n_starts = tokens.size - block_size  # windows of block_size + 1 tokens fit at starts [0, n_starts)
        self.offsets = np.arange(block_size + 1)  # (T+1,)
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        starts = self.rng.integers(0, self.n_starts, size=self.batch_size)  # (B,)
        windows = self.tokens[starts[:, None] + self.offsets].astype(np.int64)  # (B, T+1)
        return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_folder(out: Path, train: np.ndarray, val: np.ndarray, tokenizer: Tokenizer, meta: dict[str, Any]) -> None:
    if out.exists() and not (out.is_dir() and ((out / "meta.json").is_file() or not any(out.iterdir()))):
        raise DataError(f"{out} exists and is not a prepared data folder; choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        train.tofile(tmp / "train.bin")
        val.tofile(tmp / "val.bin")
        (tmp / "tokenizer.json").write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
        if out.exists():  # replace an earlier preparation: move it aside, then swap in the new one
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        raise DataError(f"could not write {out}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
