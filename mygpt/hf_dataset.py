"""A Hugging Face dataset as a corpus (`prepare --hf-dataset NAME[:SPLIT]`), read in batches of rows.

NAME is a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`, or a
dataset name that `datasets.load_dataset` finds in its local cache: mygpt never
downloads one (HF_HUB_OFFLINE and HF_DATASETS_OFFLINE default to 1). SPLIT defaults to train. The
`datasets` library is an extra (`uv sync --extra hf`); it is imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from mygpt import sources
from mygpt.errors import DataError
from mygpt.sources import Piece, SourceFile

INSTALL_HINT = "install the hf extra: `uv sync --extra hf` (or `pip install 'mygpt[hf]'`)"


def open_dataset(spec: str, text_field: str) -> tuple[Any, str]:
    """The dataset (one split) and its fingerprint, checked to have rows and a text column."""
    # Never download: a dataset comes from the local cache or a folder (set these to 0 to allow it).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise DataError(f"--hf-dataset needs the `datasets` library: {INSTALL_HINT}.") from None
    name, _, split = spec.rpartition(":") if ":" in spec and not Path(spec).exists() else (spec, "", "")
    try:
        loaded = (
            datasets.load_from_disk(name)
            if Path(name).is_dir()
            else datasets.load_dataset(name, split=split or "train")
        )
    except Exception as exc:  # the library raises many kinds: not found, not cached, not a dataset folder
        raise DataError(
            f"could not load the Hugging Face dataset {name!r} ({type(exc).__name__}: {exc}). mygpt reads a "
            "save_to_disk folder, or a dataset already in the local cache (download it first with the datasets library)."
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if (split or "train") not in loaded:
            raise DataError(
                f"the Hugging Face dataset {name} has no split {split or 'train'!r} (it has: {', '.join(loaded)})."
            )
        loaded = loaded[split or "train"]
    elif split and Path(name).is_dir():
        raise DataError(f"the Hugging Face dataset {name} has no splits: it is one dataset. Drop ':{split}'.")
    dataset = loaded
    if text_field not in dataset.column_names:
        raise DataError(f"the Hugging Face dataset {name} has no column {text_field!r} "
                        f"(its columns: {', '.join(dataset.column_names)}). Choose the column with --text-field.")  # fmt: skip
    feature = dataset.features[text_field]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise DataError(f"the Hugging Face dataset {name}: column {text_field!r} holds {feature}, not text.")
    if len(dataset) == 0:
        raise DataError(f"the Hugging Face dataset {name} has no rows: there is nothing to learn from.")
    return dataset, dataset._fingerprint


def source(spec: str, text_field: str) -> SourceFile:
    dataset, _ = open_dataset(spec, text_field)
    return SourceFile(Path(spec), "hf", None, int(dataset.data.nbytes))


def pieces(f: SourceFile, text_field: str, digests: dict[Path, str] | None) -> Iterator[tuple[Piece, int, int]]:
    """(rows piece, bytes of text, share of the dataset's bytes) for batches of rows."""
    dataset, fingerprint = open_dataset(str(f.path), text_field)
    rows = max(len(dataset), 1)
    per_batch = max(1, min(65536, sources.BATCH_BYTES * rows // max(f.size, 1)))
    first = read = 0
    for batch in dataset.select_columns([text_field]).iter(batch_size=per_batch):
        docs = batch[text_field]
        disk = f.size * (first + len(docs)) // rows - read
        read += disk
        yield Piece(str(f.path), "rows", docs, first == 0, first), sum(len(d) for d in docs if isinstance(d, str)), disk
        first += len(docs)
    if digests is not None:
        digests[f.path] = fingerprint
