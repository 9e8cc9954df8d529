"""The prediction log's contract: its two logs, what a record's values may be, what a
writer offers and what a read reports.

Serving writes the records (`components/serve/logs.py` picks the writer); monitoring and
lineage read them (`reader.read_log`). Backends: JSON-lines segment files (`files.py`,
local) and PostgreSQL tables (`postgres.py`, the cluster, behind `spool.py`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
READ_BATCH_ROWS = 65_536
"""Rows a batch of records is read (and a batch segment's row group written) in."""


def jsonable(value: Any) -> Any:
    """Plain JSON value: numpy scalars unwrapped, NaN/NaT -> null."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # the common cases first: this runs for every logged value
    if kind is float:
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value.__class__.__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass
class ReadStats:
    """What a read found besides the records: torn tails and unparseable lines."""

    segments: int = 0
    records: int = 0
    torn_tails: list[str] = field(default_factory=list)
    corrupt_lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogQuery:
    """Which records a read keeps (None: any). Monitoring reads only its windows, so a
    long-lived log costs it what the windows hold, not the whole history."""

    request_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    """Compared as text (a file record may hold the version as a number)."""
    since: datetime | None = None
    """Records with `ts` after this aware time; one without a readable `ts` is not kept."""
    first: int | None = None
    """Only the first N kept records by `ts` (ties in write order), in that order; a
    record without a readable `ts` is not kept."""
    omit: frozenset[str] = frozenset()
    """Fields the records are read without (a prediction's `features` are most of its
    bytes, and a check of scores and labels does not need them)."""

    def __post_init__(self) -> None:
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("A read's `since` must be an aware time (with its zone).")
        if self.omit & {key for _, key in _FILTERED}:
            raise ValueError(f"A read cannot omit a field it filters on: {sorted(self.omit)}")

    def keeps(self, record: dict[str, Any]) -> bool:
        """The record passes every filter (`first` is the reader's to apply)."""
        if self.request_id is not None and record.get("request_id") != self.request_id:
            return False
        if self.model_name is not None and record.get("model_name") != self.model_name:
            return False
        if self.model_version is not None:
            version = record.get("model_version")
            if version is None or str(version) != self.model_version:
                return False
        if self.since is not None or self.first is not None:
            ts = record_time(record.get("ts"))
            return ts is not None and (self.since is None or ts > self.since)
        return True

    def finish(self, kept: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """What a backend's read gives for the records it kept (`keeps`), in write
        order: the `first` N by time, then without the `omit` fields. One place for
        both backends, so they cannot differ."""
        records = first_by_time(kept, self.first) if self.first is not None else kept
        for record in records:
            for name in self.omit:
                record.pop(name, None)  # in PostgreSQL, also from `extra`
            yield record

    def may_keep_any(self, shared: dict[str, Any]) -> bool:
        """False when values every record shares (a batch segment's footer) already
        fail a filter; the filters on fields `shared` lacks are left to `keeps`."""
        absent: dict[str, Any] = {attr: None for attr, key in _FILTERED if key not in shared}
        return replace(self, **absent).keeps(shared)


_FILTERED = (
    ("request_id", "request_id"),
    ("model_name", "model_name"),
    ("model_version", "model_version"),
    ("since", "ts"),
    ("first", "ts"),
)
"""LogQuery's filters and the record field each reads."""


def first_by_time(records: Iterator[dict[str, Any]], n: int) -> Iterator[dict[str, Any]]:
    """The first `n` of `records` (each with a readable `ts`, as `LogQuery.keeps` lets
    through) by `ts`, ties in their order; memory holds `n` records."""
    timed = ((record_time(r.get("ts")), i, r) for i, r in enumerate(records))
    first = heapq.nsmallest(n, timed, key=lambda t: (t[0], t[1]))
    return (r for _, _, r in first)


def record_time(value: Any) -> datetime | None:
    """A record's `ts` as an aware datetime (naive text read as UTC, as monitoring's
    frames read it); None when it is missing or unreadable."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


class RecordLog(Protocol):
    """What serving needs from a log: `AppendLog` (files) and `PgLog` (PostgreSQL)."""

    def open(self) -> None: ...

    def append(self, records: list[dict[str, Any]]) -> None:
        """Return only once `records` are durable; raise OSError when they are not."""

    # AppendLog also has `async append_async(records)` (the event loop's path).

    def probe(self) -> str | None:
        """None when lines can be appended now, else why not (for /readyz)."""

    def close(self) -> None: ...


class BatchLog(Protocol):
    """What batch scoring needs from a log: one run's records in one durable, atomic
    write (`batch_segment.SegmentWriter` for files, `PgLog` for PostgreSQL)."""

    def open(self) -> None: ...

    def append_batch(self, batch: BatchRecords) -> None:
        """Return only once all of `batch` is durable, else raise OSError with none of
        it visible to readers."""

    def close(self) -> None: ...


@dataclass
class BatchRecords:
    """Records of one batch run (batch scoring): `constants` are the fields equal in
    every record, `columns` the others (one row per record), `order` the fields of a
    record in writing order. Backends store it whole (`batch_segment.py`, `pg_copy.py`)."""

    constants: dict[str, Any]
    columns: pa.Table
    order: list[str]

    def __len__(self) -> int:
        return int(self.columns.num_rows)

    def records(self) -> Iterator[dict[str, Any]]:
        """The records as dicts, in order (what a reader gets back)."""
        for batch in self.columns.to_batches(READ_BATCH_ROWS):
            yield from batch_records(batch, self.constants, self.order)


def batch_records(
    batch: pa.RecordBatch, constants: dict[str, Any], order: list[str]
) -> Iterator[dict[str, Any]]:
    """A batch's rows as record dicts: each field from its column, or its constant."""
    values = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    getters = [(f, values.get(f), constants.get(f)) for f in order]
    for i in range(batch.num_rows):
        yield {f: (const if column is None else column[i]) for f, column, const in getters}
