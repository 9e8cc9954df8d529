"""Batch segments: one batch run's prediction-log records as one Parquet file.

Serving appends JSON lines (`files.py`), a few records per request. A batch run logs up
to millions of records at once, and encoding each with Python's `json` (about 450
bytes a record) took most of the batch step (docs/batch-scoring.md, Performance). A
batch segment holds the same records column by column: the fields equal in every
record (time, request id, route, model and version) once, in the file's metadata; the
others as Arrow columns (`features` as a struct column), encoded by pyarrow. Readers
get back the dicts the JSON lines would have given (`read_segment`), so monitoring,
lineage and the dashboard see batch rows like any others.

Durable and atomic: written to a hidden temporary name in the log folder, fsynced,
renamed to `<prefix>-<time ns>-<pid>.parquet` (the JSON-lines segments' name scheme, so
both kinds sort together in write order), the folder fsynced. A reader sees the whole
segment or none; a crash leaves at most a hidden `.tmp` file, which no reader lists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.common.durable import PRIVATE_FILE, fsync_dir, private_dir
from components.predictions.records import (
    READ_BATCH_ROWS,
    BatchRecords,
    LogQuery,
    ReadStats,
    batch_records,
)

SUFFIX = ".parquet"
METADATA_KEY = b"seamless.log"


def write_segment(directory: Path, prefix: str, batch: BatchRecords) -> Path:
    """Write `batch` as one segment of the `prefix` log in `directory`; returns its path
    once it is durable and visible whole."""
    import pyarrow.parquet as pq

    private_dir(directory)
    name = f"{prefix}-{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
    final = directory / name
    temporary = directory / f".{name}.tmp"
    meta = {"constants": batch.constants, "order": batch.order}
    table = batch.columns.replace_schema_metadata(
        {METADATA_KEY: json.dumps(meta, separators=(",", ":"), allow_nan=False)}
    )
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as fh:
            # Snappy: the repeated ids and instants compress well at almost no CPU.
            pq.write_table(table, fh, compression="snappy", row_group_size=READ_BATCH_ROWS * 4)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


class SegmentWriter:
    """The files backend of a batch's log: each `append_batch` is one batch segment."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix

    def open(self) -> None:
        private_dir(self.directory)

    def append_batch(self, batch: BatchRecords) -> None:
        if len(batch):
            write_segment(self.directory, self.prefix, batch)

    def close(self) -> None:
        pass  # each segment is durable when `append_batch` returns


def segment_header(path: Path) -> tuple[dict[str, Any], list[str], int]:
    """(constants, field order, rows) of a segment, from its footer only."""
    import pyarrow.parquet as pq

    info = pq.ParquetFile(path)
    raw = (info.schema_arrow.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path.name} is not a prediction-log segment")
    meta = json.loads(raw)
    return meta["constants"], meta["order"], info.metadata.num_rows


def read_segment(
    path: Path, stats: ReadStats, query: LogQuery | None = None
) -> Iterator[dict[str, Any]]:
    """The segment's records in order: all, or those `query.keeps` passes (a batch's
    records share their request id, model and time, so a segment none of whose records
    can be kept is skipped from its footer); `query.finish` is the caller's. A segment
    that cannot be read is counted in `stats.corrupt_lines` and skipped."""
    import pyarrow.parquet as pq

    try:
        constants, order, _ = segment_header(path)
        if query is not None and not query.may_keep_any(constants):
            return
        batches = pq.ParquetFile(path).iter_batches(READ_BATCH_ROWS)
        for batch in batches:
            for record in batch_records(batch, constants, order):
                if query is None or query.keeps(record):
                    stats.records += 1
                    yield record
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's errors are these kinds
        if isinstance(exc, FileNotFoundError):
            return  # removed while we listed (retention)
        stats.corrupt_lines.append(f"{path.name}: unreadable ({str(exc)[:200]})")
