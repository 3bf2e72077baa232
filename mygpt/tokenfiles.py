"""A prepared data folder as it is written: ids appended as they come, split at the end.

The folder is built under a temporary name beside its final place and renamed only
when complete, so an error, a crash or Ctrl-C never leaves a half-prepared folder.
The split needs the total number of tokens, which is known only at the end; it is
done on disk, a block at a time, never holding the tokens in memory.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator, Optional

import numpy as np

from mygpt.data import DATA_FORMAT
from mygpt.errors import DataError
from mygpt.filemode import make_ordinary
from mygpt.files import describe_os_error

# Chunks for --split random: at most this many tokens each, and at least ~20 chunks.
RANDOM_CHUNK_TOKENS = 1024
BLOCK_TOKENS = 1 << 24  # tokens copied at a time while splitting


def check_out(out: Path) -> None:
    """Raise unless `out` may be written: a new path, an empty folder, or a folder an earlier
    `prepare` wrote (which is replaced, only once the new one is complete)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    try:
        ours = json.loads((out / "meta.json").read_text(encoding="utf-8")).get("format") == DATA_FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise DataError(f"{out} exists and is not a prepared data folder; choose another --out.")


def clean_leftovers(out: Path) -> None:
    """Remove what a killed `prepare` (or `export gguf`) of `out` left beside it (its
    temporary folders or files, named with its pid), and put back an earlier folder it had
    moved aside; only for processes that are gone, so that one still running is left alone."""
    for leftover in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, rest = leftover.name[len(out.name) + 2 :].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            os.replace(leftover, out)  # killed between moving the old folder aside and the new one in
        elif leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:  # a file written whole and then renamed (export gguf)
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders in one step where the OS can (Linux's renameat2 RENAME_EXCHANGE):
    at every moment each path holds one of them. Elsewhere: b aside, a in, b back to a."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, rename_exchange = -100, 2
        if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
    except (AttributeError, OSError):  # no renameat2 in this C library
        pass
    aside = b.with_name(f".{b.name}.old-{os.getpid()}")
    os.replace(b, aside)
    os.replace(a, b)
    os.replace(aside, a)


class TokenFolder:
    """`write_tokenizer`, `append` ids, `split`, then `commit` meta.json. Leaving the
    `with` block without `commit` removes everything written."""

    def __init__(self, out: Path, dtype: np.dtype):
        check_out(out)
        self.out, self.dtype, self.tokens = out, dtype, 0
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            clean_leftovers(out)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
            self._all = open(self.tmp / "all.bin", "wb")
        except OSError as exc:
            raise DataError(f"could not write {out}: {describe_os_error(exc, out.parent)}.") from None

    def __enter__(self) -> TokenFolder:
        return self

    def __exit__(self, kind: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self._all.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def append(self, ids: np.ndarray) -> None:
        self._write(self._all, ids)
        self.tokens += ids.size

    def split(self, val_fraction: float, how: str, seed: int) -> tuple[int, int]:
        """Split the ids into train.bin and val.bin; return their sizes.

        contiguous: the last `val_fraction` of the tokens are validation (no text is in
        both splits). random: the ids are cut into chunks of at most RANDOM_CHUNK_TOKENS
        and a seeded random `val_fraction` of the chunks are validation; each split keeps
        its chunks in their original order.
        """
        self._all.close()
        n, every = self.tokens, self.tmp / "all.bin"
        if n < 4:
            raise DataError(f"the corpus has only {n} tokens: too few to split into training and validation text.")
        # Read with plain reads, a block at a time: a memory map's pages would count in
        # this process's memory, which must not grow with the corpus.
        if how == "contiguous":  # the tail is copied out, and the rest is the train file as it is
            n_val = min(max(1, round(n * val_fraction)), n - 1)
            with open(every, "rb") as source, open(self.tmp / "val.bin", "wb") as val:
                source.seek((n - n_val) * self.dtype.itemsize)
                for block in self._blocks(source):
                    self._write(val, block)
            os.truncate(every, (n - n_val) * self.dtype.itemsize)
            os.replace(every, self.tmp / "train.bin")
            return n - n_val, n_val
        chunk = max(1, min(RANDOM_CHUNK_TOKENS, n // 20))
        n_chunks = -(-n // chunk)
        n_val_chunks = min(max(1, round(n_chunks * val_fraction)), n_chunks - 1)
        is_val = np.zeros(n_chunks, dtype=bool)  # (n_chunks,)
        is_val[np.random.default_rng(seed).choice(n_chunks, size=n_val_chunks, replace=False)] = True
        n_val = start = 0
        with (
            open(every, "rb") as source,
            open(self.tmp / "train.bin", "wb") as train,
            open(self.tmp / "val.bin", "wb") as val,
        ):
            for block in self._blocks(source):
                mask = is_val[np.arange(start, start + block.size) // chunk]  # (block,) bool
                self._write(train, block[~mask])
                self._write(val, block[mask])
                n_val, start = n_val + int(mask.sum()), start + block.size
        os.unlink(every)
        return n - n_val, n_val

    def write_tokenizer(self, tokenizer: dict[str, Any]) -> Path:
        """Write tokenizer.json (where the workers read it from); return its path."""
        path = self.tmp / "tokenizer.json"
        try:
            path.write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            raise DataError(f"could not write {self.out}: {describe_os_error(exc, self.out.parent)}.") from None
        return path

    def commit(self, meta: dict[str, Any]) -> None:
        """Write meta.json, then put the folder in place (replacing an earlier preparation
        of the same folder)."""
        try:
            (self.tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            make_ordinary(self.tmp)  # mkdtemp makes it private; the result is an ordinary folder
            if self.out.exists():  # swap in the new one: the old stays at its path until then
                _exchange(self.tmp, self.out)
                shutil.rmtree(self.tmp, ignore_errors=True)  # now the earlier preparation
            else:
                os.replace(self.tmp, self.out)
        except OSError as exc:
            raise DataError(f"could not write {self.out}: {describe_os_error(exc, self.out.parent)}.") from None

    def _blocks(self, source: Any) -> Iterator[np.ndarray]:
        while (block := np.fromfile(source, dtype=self.dtype, count=BLOCK_TOKENS)).size:
            yield block

    def _write(self, f: Any, ids: np.ndarray) -> None:
        # os.write, not ndarray.tofile: tofile reports a full disk as "N requested and M
        # written", without the errno that says why; nothing is left in `f`'s buffer either.
        data = memoryview(np.ascontiguousarray(ids, dtype=self.dtype)).cast("B")
        try:
            while data:
                data = data[os.write(f.fileno(), data) :]
        except OSError as exc:
            raise DataError(f"could not write {self.out}: {describe_os_error(exc, self.out.parent)}.") from None
