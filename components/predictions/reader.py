"""Reading and writing the prediction log wherever it is: a folder of segment files or a
PostgreSQL table, chosen by the source (a path or a `postgresql://` URL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from components.predictions.batch_segment import SegmentWriter
from components.predictions.files import AppendLog, read_records
from components.predictions.postgres import PgLog, is_pg_url, read_pg_records
from components.predictions.records import BatchLog, LogQuery, ReadStats, RecordLog


def read_log(
    source: Path | str,
    prefix: str,
    stats: ReadStats | None = None,
    request_id: str | None = None,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    since: datetime | None = None,
    first: int | None = None,
    omit: frozenset[str] = frozenset(),
) -> Iterator[dict[str, Any]]:
    """`read_records` over a folder, or the PostgreSQL table when `source` is a URL:
    the records that match every filter given, without the fields in `omit` (a
    `LogQuery`; PostgreSQL selects them itself, a request id and a time through their
    indexes)."""
    query = LogQuery(
        request_id=request_id,
        model_name=model_name,
        model_version=model_version,
        since=since,
        first=first,
        omit=omit,
    )
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
