"""A parquet file as a corpus: one string column (`--text-field`), read in record batches.

Imported only when a corpus has a .parquet file, so that pyarrow is loaded only then.
A dictionary-encoded (categorical) column of strings is text too.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mygpt import sources
from mygpt.errors import DataError
from mygpt.sources import READ_BYTES, Piece, SourceFile


def pieces(f: SourceFile, text_field: str) -> Iterator[tuple[Piece, int, int]]:
    """(rows piece, bytes of text, share of the file's bytes) for record batches of
    about sources.BATCH_BYTES of text: the column is read a column chunk at a time."""
    try:
        pf = pq.ParquetFile(f.path, pre_buffer=False, buffer_size=READ_BYTES)  # read a column chunk at a time
        schema = pf.schema_arrow
        if text_field not in schema.names:
            raise DataError(f"{f.path} has no column {text_field!r} (its columns: {', '.join(schema.names)}). "
                            "Choose the column with --text-field.")  # fmt: skip
        kind = schema.field(text_field).type
        value = kind.value_type if pa.types.is_dictionary(kind) else kind  # a categorical column of strings
        if not (pa.types.is_string(value) or pa.types.is_large_string(value) or str(value) == "string_view"):
            raise DataError(
                f"{f.path}: column {text_field!r} holds {kind}, not text. Choose a text column with --text-field."
            )
        rows, column = max(pf.metadata.num_rows, 1), schema.names.index(text_field)
        column_bytes = sum(pf.metadata.row_group(i).column(column).total_uncompressed_size
                           for i in range(pf.metadata.num_row_groups))  # fmt: skip
        per_batch = max(1, min(65536, sources.BATCH_BYTES * rows // max(column_bytes, 1)))
        first, read = 0, 0
        for record_batch in pf.iter_batches(batch_size=per_batch, columns=[text_field]):
            docs = record_batch.column(0).to_pylist()
            n_text = sum(len(d) for d in docs if isinstance(d, str))
            disk = f.size * (first + len(docs)) // rows - read
            read += disk
            yield Piece(str(f.path), "rows", docs, first == 0, first), n_text, disk
            first += len(docs)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{f.path} is not a readable parquet file ({exc}).") from None
