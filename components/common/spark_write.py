"""Spark output as a Seamless table file: one Parquet file with pandas dtypes and its hash.

Spark writes a table's rows in partition order into one part file (`write_parts`); the
driver then streams that part batch by batch into `<table>.parquet` with the pandas
dtypes the local engine would give, hashing each batch as it goes (`stream_writer`), so
the file and its `tables.content_hash` equal what the local engine writes for the same
rows. Memory on the driver: one batch plus 8 bytes per row for the sorted row hashes
(16 when it also looks for repeated keys, for ingest).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from components.common.errors import SeamlessError
from components.common.tables import TableWriter, hash_of_rows, row_hashes

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def write_parts(frame: DataFrame, folder: Path) -> None:
    """Write the rows, in order, as one Parquet part under `folder` (a scratch folder).

    One task writes: call it on a frame whose rows are computed (cached) already.
    """
    frame.coalesce(1).write.parquet(folder.as_uri())


def with_dtypes(df: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Give a batch read back from Spark's Parquet the pandas dtypes in `dtypes`."""
    for col, dtype in dtypes.items():
        if col not in df.columns:
            continue
        if dtype.startswith("datetime64") and getattr(df[col].dt, "tz", None) is None:
            df[col] = df[col].dt.tz_localize("UTC")
        df[col] = df[col].astype(dtype)
    return df


def batch_frame(batch: pa.RecordBatch, dtypes: dict[str, str]) -> pd.DataFrame:
    """A batch of Spark's Parquet as pandas with the dtypes in `dtypes`. An `Int64` column
    is built from its Arrow values and validity directly: Arrow's own conversion goes
    through float64 when there are nulls, which changes integers past 2**53 (large ids,
    pseudonyms)."""
    df = batch.to_pandas()
    names = set(batch.schema.names)
    for col, dtype in dtypes.items():
        if dtype != "Int64" or col not in names:
            continue
        arr = batch.column(col)
        if not pa.types.is_integer(arr.type) or not arr.null_count:
            continue
        values = arr.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        mask = arr.is_null().to_numpy(zero_copy_only=False)
        df[col] = pd.arrays.IntegerArray(values.astype("int64"), mask)
    return with_dtypes(df, dtypes)


def stream_writer(
    folder: Path,
    target: dict[str, str],
    generated: tuple[str, ...] | list[str] = (),
    keys: tuple[str, ...] | list[str] = (),
    on_repeated_keys: Callable[[], None] | None = None,
) -> tuple[TableWriter, dict[str, Any]]:
    """A writer that streams Spark's part files into one pandas-typed Parquet file,
    hashing as it goes; the hash without the `generated` columns (ingest's source hash)
    lands in `extra["source_sha256"]` once it has run.

    With `keys`, it also hashes each row's key columns (8 bytes a row more) and calls
    `on_repeated_keys` if two rows share a key hash: equal keys always do, so a table
    without the call has no repeated key; the call finds out whether the keys really
    repeat (a hash collision is not a repeat) and raises if they do.
    """
    import pyarrow.parquet as pq

    extra: dict[str, Any] = {}

    def write(path: Path) -> dict[str, Any]:
        parts = sorted(p for p in folder.glob("part-*.parquet"))
        total = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        # One preallocated array per hash, filled in place and sorted in place: 8 bytes a
        # row each, no copies. Without generated columns both hashes are the same one.
        hashes = np.empty(total, dtype="uint64")
        source_hashes = np.empty(total, dtype="uint64") if generated else hashes
        key_hashes = np.empty(total, dtype="uint64") if keys else None
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        dtypes: dict[str, str] = {}
        columns: list[str] = []
        rows = 0
        try:
            for part in parts:
                for batch in pq.ParquetFile(part).iter_batches(batch_size=1 << 17):
                    df = batch_frame(batch, target)
                    if writer is None:
                        schema = pa.Schema.from_pandas(df, preserve_index=False)
                        writer = pq.ParquetWriter(path, schema)
                        columns = [str(c) for c in df.columns]
                        dtypes = {c: str(df[c].dtype) for c in columns}
                    writer.write_table(
                        pa.Table.from_pandas(df, schema=schema, preserve_index=False)
                    )
                    end = rows + len(df)
                    hashes[rows:end] = row_hashes(df)
                    if generated:
                        source_hashes[rows:end] = row_hashes(df.drop(columns=list(generated)))
                    if key_hashes is not None:
                        key_hashes[rows:end] = _key_hashes(df, keys)
                    rows = end
            if key_hashes is not None and on_repeated_keys and _repeats(key_hashes[:rows]):
                on_repeated_keys()
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # no part file holds a row (checked before; kept for safety)
            raise SeamlessError(f"Spark wrote no rows to {folder}.")
        source_dtypes = {c: t for c, t in dtypes.items() if c not in generated}
        extra["source_sha256"] = hash_of_rows(source_dtypes, source_hashes[:rows], in_place=True)
        sha = (
            extra["source_sha256"]
            if not generated
            else hash_of_rows(dtypes, hashes[:rows], in_place=True)
        )
        return {"rows": rows, "columns": columns, "sha256": sha}

    return write, extra


def _key_hashes(df: pd.DataFrame, keys: tuple[str, ...] | list[str]) -> np.ndarray:
    """`row_hashes` of the key columns, equal for keys that compare equal: -0.0 is 0.0."""
    frame = df[list(keys)].copy()
    for col in frame.columns:
        if pd.api.types.is_float_dtype(frame[col].dtype):
            frame[col] = frame[col] + 0.0
    return row_hashes(frame)


def _repeats(hashes: np.ndarray) -> bool:
    """Whether any value occurs twice (sorts `hashes` in place)."""
    hashes.sort()
    return bool(np.any(hashes[1:] == hashes[:-1]))
