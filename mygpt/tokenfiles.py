"""A prepared data folder as it is written: ids appended as they come, split at the end.

The folder is built under a temporary name beside its final place and renamed only
when complete, so an error, a crash or Ctrl-C never leaves a half-prepared folder.
The split needs the total number of tokens, which is known only at the end; it is
done on disk, a block at a time, never holding the tokens in memory.
"""

from __future__ import annotations

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


class TokenFolder:
    """`write_tokenizer`, `append` ids, `split`, then `commit` meta.json. Leaving the
    `with` block without `commit` removes everything written."""

    def __init__(self, out: Path, dtype: np.dtype):
        check_out(out)
        self.out, self.dtype, self.tokens = out, dtype, 0
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
            self._all = open(self.tmp / "all.bin", "wb")
        except OSError as exc:
            raise DataError(f"could not write {out}: {exc}") from None

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
            raise DataError(f"could not write {self.out}: {exc}") from None
        return path

    def commit(self, meta: dict[str, Any]) -> None:
        """Write meta.json, then put the folder in place (replacing an earlier preparation
        of the same folder)."""
        try:
            (self.tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            self.tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
            if self.out.exists():  # move the earlier one aside, then swap in the new one
                old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
                os.replace(self.out, old)
                os.replace(self.tmp, self.out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.out)
        except OSError as exc:
            raise DataError(f"could not write {self.out}: {exc}") from None

    def _blocks(self, source: Any) -> Iterator[np.ndarray]:
        while (block := np.fromfile(source, dtype=self.dtype, count=BLOCK_TOKENS)).size:
            yield block

    def _write(self, f: Any, ids: np.ndarray) -> None:
        try:
            ids.astype(self.dtype, copy=False).tofile(f)
        except OSError as exc:
            raise DataError(f"could not write {self.out}: {exc}") from None
