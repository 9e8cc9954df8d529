"""The prediction log's contract: its two logs, what a record's values may be, what a
writer offers and what a read reports.

Serving writes the records (`components/serve/logs.py` picks the writer); monitoring and
lineage read them (`reader.read_log`). Backends: JSON-lines segment files (`files.py`,
local) and PostgreSQL tables (`postgres.py`, the cluster, behind `spool.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
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
