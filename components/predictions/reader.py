"""Reading and writing the prediction log wherever it is: a folder of segment files or a
PostgreSQL table, chosen by the source (a path or a `postgresql://` URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.predictions.batch_segment import SegmentWriter
from components.predictions.files import AppendLog, read_records
from components.predictions.postgres import PgLog, is_pg_url, read_pg_records
from components.predictions.records import BatchLog, LogQuery, ReadStats, RecordLog


def read_log(
    source: Path | str, prefix: str, stats: ReadStats | None = None, query: LogQuery | None = None
) -> Iterator[dict[str, Any]]:
    """`read_records` over a folder, or the PostgreSQL table when `source` is a URL: the
    records `query` keeps, when given (PostgreSQL selects them itself, a request id and a
    time through their indexes)."""
    if is_pg_url(source):
        return read_pg_records(str(source), prefix, stats, query)
    return read_records(Path(source), prefix, stats, query)


def writer_for(
    url: str | None,
    folder: Path,
    prefix: str,
    segment_bytes: int = 64 << 20,
    sync_every_s: float | None = None,
    synchronous_commit: bool = True,
) -> RecordLog:
    """The log a writer appends to (not opened yet): the PostgreSQL table when `url` is
    set, else segment files in `folder` (the same choice `read_log` makes for readers)."""
    if url:
        return PgLog(url, prefix, synchronous_commit=synchronous_commit)
    return AppendLog(folder, prefix, segment_bytes, sync_every_s)


def batch_writer_for(url: str | None, folder: Path, prefix: str) -> BatchLog:
    """Where a batch run's records go: the PostgreSQL table when `url` is set (one COPY),
    else a batch segment file in `folder`."""
    if url:
        return PgLog(url, prefix)
    return SegmentWriter(folder, prefix)
