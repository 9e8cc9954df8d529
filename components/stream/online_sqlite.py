"""The stream consumer's newer-only writer for Feast's SQLite online store, precise to
the microsecond.

Why: Feast's SQLite store keeps event times in whole seconds (it stores
`int(ts.timestamp())` and reads `int(val)`), so comparing its column alone lets an
older event of the same second replace a newer one. Feast's tables stay exactly as
Feast writes them (its readers, serving and the feature server read them unchanged);
beside them, in the same database, the side table `seamless:event_times`
(components/features/sqlite_writer.py) holds per (view table, entity key) the
microsecond event time of the entity's value and a digest of its rows (those of the
view's features: name, value bytes, Feast's second). This writer creates it; Seamless'
materialization writers (the batched writer and the column-wise load) keep it in step
where it exists, in the same transaction as their rows.

A write of a batch, in one `BEGIN IMMEDIATE` transaction (SQLite's write lock from the
first read to the commit, so no other writer, thread or process, runs in between):
read the batch's entities' stored rows and side rows; per entity decide, then upsert
the winners' rows into Feast's table and their side rows. The stored value's time is:

- its side row's microsecond time, when the side row's digest equals the stored rows'
  (nobody but this writer or Seamless' materialization wrote them since);
- otherwise (Feast's own writer, e.g. `feast materialize`, or a load before the side
  table existed, wrote them: its time is known to the second only) the **end of its
  second**, the latest time Feast's column can stand for. A side row older or newer
  than the stored second, or of other values, is stale and not used.

An event is written when its time is at least the stored value's (no stored value: it
is written). So an equal time is written (a batch redone after a crash writes the same
value again), and no value is ever replaced by an older one; the price, after Feast's
own writer only, is that an event within the same second as the value it left is
refused although it may be newer: the consumer counts it `late` (its late rule reads
the same time through `online_read`) and keeps it offline, nothing is lost silently.
What remains: rows Feast's writer rewrote to exactly the bytes and second the side row
describes are taken at the side row's microsecond time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig

from components.features.sqlite_writer import (
    CREATE_SIDE,
    SIDE_TABLE,
    UPSERT_SIDE,
    _epoch,
    _quote,
    entity_rows,
    micros,
    rows_digest,
    side_table_exists,
    upsert_sql,
)

Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 500  # bound parameters per IN (...) list
StoredRows = list[tuple[str, bytes, int | None]]


def end_of_second(seconds: int) -> int:
    """The latest microsecond time Feast's column stores as `seconds` (epoch seconds:
    Feast stores `int(ts.timestamp())`, which truncates toward zero, so before 1970 the
    stored second is the end of an earlier one). Epoch arithmetic, whatever the
    machine's time zone."""
    return seconds * 1_000_000 + (999_999 if seconds >= 0 else 0)


@dataclass
class _Stored:
    """What one entity holds in a view table: its newest whole second, and the
    microsecond time of its side row when that row matches the stored rows."""

    seconds: int | None
    precise: int | None

    @classmethod
    def of(cls, rows: StoredRows, side: tuple[int, bytes] | None) -> _Stored:
        """A side row counts only while it describes the stored rows: the same digest,
        and its time within the stored second (Feast's own writer leaves the side row
        stale: older or newer than the second it wrote, or of other values)."""
        seconds = max((ts for _, _, ts in rows if ts is not None), default=None)
        if side is None or side[1] != rows_digest(rows):
            return cls(seconds, None)
        us = side[0]
        return cls(seconds, us if _epoch(_EPOCH + timedelta(microseconds=us)) == seconds else None)

    @property
    def time(self) -> int | None:
        """The stored value's time in microseconds, as the writer compares it."""
        if self.precise is not None or self.seconds is None:
            return self.precise
        return end_of_second(self.seconds)


def _rows(
    conn: sqlite3.Connection, table: str, keys: list[bytes], features: set[str]
) -> dict[bytes, StoredRows]:
    """The stored rows of `keys` (absent keys: none) of the view's `features`."""
    rows: dict[bytes, StoredRows] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        # CAST: the raw epoch integer, not the datetime Feast's column converter makes.
        for key, name, value, ts in conn.execute(
            f"SELECT entity_key, feature_name, value, CAST(event_ts AS INTEGER) "
            f"FROM {_quote(table)} WHERE entity_key IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            if name in features:
                rows.setdefault(key, []).append((name, value, ts))
    return rows


def _read(
    conn: sqlite3.Connection, table: str, keys: list[bytes], features: set[str]
) -> dict[bytes, _Stored]:
    """Stored rows and side rows of `keys` (absent keys: no rows)."""
    rows = _rows(conn, table, keys, features)
    sides: dict[bytes, tuple[int, bytes]] = {}
    if side_table_exists(conn):
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            for key, us, digest in conn.execute(
                f"SELECT entity_key, event_us, rows_digest FROM {_quote(SIDE_TABLE)} "
                f"WHERE table_name = ? AND entity_key IN ({','.join('?' * len(chunk))})",
                [table, *chunk],
            ):
                sides[key] = (us, digest)
    return {k: _Stored.of(rows[k], sides.get(k)) for k in rows}


def _wins(new_us: int, stored: _Stored | None) -> bool:
    time = None if stored is None else stored.time
    return time is None or new_us >= time


class NewerOnlySqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store whose write never replaces a value with an older
    one, to the microsecond where the side table knows the stored value's time, against
    the end of its second elsewhere (module docstring).
    Stores with vectors or the OpenAI-compatible column are not guarded (guard_writes
    leaves them Feast's writer)."""

    written = 0
    """Entities this store wrote (not refused as older), for tests and logs."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        version = config.entity_key_serialization_version
        name = compute_table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        keys = [serialize_entity_key(k, entity_key_serialization_version=version)
                for k, *_ in data]  # fmt: skip
        features = {f.name for f in table.features}
        conn = self._get_conn(config)
        conn.execute("BEGIN IMMEDIATE")
        try:
            state = _read(conn, name, list(dict.fromkeys(keys)), features)
            winners: dict[bytes, tuple[dict[str, ValueProto], datetime, datetime | None]] = {}
            for key, (_, values, event_ts, created_ts) in zip(keys, data, strict=True):
                new_us = micros(event_ts)
                if _wins(new_us, state.get(key)):
                    winners[key] = (values, event_ts, created_ts)
                    state[key] = _Stored(_epoch(event_ts), new_us)
            self._write(conn, name, winners, features)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        self.written += len(winners)
        if progress:
            progress(len(data))

    @staticmethod
    def _write(
        conn: sqlite3.Connection,
        table: str,
        winners: dict[bytes, tuple[dict[str, ValueProto], datetime, datetime | None]],
        features: set[str],
    ) -> None:
        """Upsert the winners' rows as Feast writes them, then their side rows (the
        digest of each entity's rows as they stand after the upsert)."""
        rows = [
            row
            for key, (values, event_ts, created_ts) in sorted(winners.items())
            for row in entity_rows(key, values, event_ts, created_ts)
        ]
        conn.executemany(upsert_sql(table), rows)
        if not winners:
            return
        conn.execute(CREATE_SIDE)
        after = _rows(conn, table, list(winners), features)
        conn.executemany(
            UPSERT_SIDE,
            [(table, k, micros(w[1]), rows_digest(after.get(k, []))) for k, w in winners.items()],
        )

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        """Feast's read, with each value's time as the writer compares it (module
        docstring): the side row's microsecond time where it matches the stored rows,
        else the end of the stored second (Feast's read gives the second's start)."""
        version = config.entity_key_serialization_version
        name = compute_table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        keys = [serialize_entity_key(k, entity_key_serialization_version=version)
                for k in entity_keys]  # fmt: skip
        features = {f.name for f in table.features}
        conn = self._get_conn(config)
        conn.execute("BEGIN")  # one snapshot for the values and the times
        try:
            result = super().online_read(config, table, entity_keys, requested_features)
            state = _read(conn, name, list(dict.fromkeys(keys)), features)
        finally:
            conn.rollback()
        out = []
        for key, (ts, values) in zip(keys, result, strict=True):
            stored = state.get(key)
            time = None if stored is None else stored.time
            if ts is not None and time is not None:
                ts = _EPOCH + timedelta(microseconds=time)
            out.append((ts, values))
        return out
