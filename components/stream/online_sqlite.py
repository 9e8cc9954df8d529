"""The stream consumer's newer-only writer for Feast's SQLite online store, precise to
the microsecond.

Why: Feast's SQLite store keeps event times in whole seconds (it stores
`int(ts.timestamp())` and reads `int(val)`), so comparing its column alone lets an
older event of the same second replace a newer one. Feast's tables stay exactly as
Feast writes them (its readers, serving and the feature server read them unchanged);
beside them, in the same database, the table `seamless:event_times` (a name no Feast
table can have: Feast's are `<project>_<view>`, letters, digits and underscores) holds
per (view table, entity key) the microsecond event time of the value this writer wrote
and a digest of that entity's rows as they stood after the write.

A write of a batch, in one `BEGIN IMMEDIATE` transaction (SQLite's write lock from the
first read to the commit, so no other writer, thread or process, runs in between):
read the batch's entities' stored rows and side rows; per entity decide, then upsert
the winners' rows into Feast's table and their side rows. The decision:

- no stored row: write;
- a side row whose digest equals the stored rows' (nobody else wrote them since):
  write if the new time is at least the side row's, to the microsecond;
- otherwise (another writer, e.g. materialization through Feast's or the batched
  writer, replaced the rows after this one, or never this one): compare whole seconds
  as before, `new >= stored`, so a value written elsewhere never makes this writer
  refuse an event that is newer than it.

An equal time is written (a batch redone after a crash writes the same value again).
What remains: after another writer, an older event within the same second as the row
it left still replaces that row; and rows another writer rewrote to exactly the bytes
and second the side row describes are taken as this writer's, at its microsecond time.

`online_read` gives the same precise time back where the side row matches (the
consumer's late rule reads it), the whole second elsewhere.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable
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
from feast.utils import make_tzaware

from components.features.sqlite_writer import _epoch, _quote, entity_rows, upsert_sql

Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

SIDE_TABLE = "seamless:event_times"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 500  # bound parameters per IN (...) list
_CREATE_SIDE = (
    f"CREATE TABLE IF NOT EXISTS {_quote(SIDE_TABLE)} (table_name TEXT NOT NULL, "
    "entity_key BLOB NOT NULL, event_us INTEGER NOT NULL, rows_digest BLOB NOT NULL, "
    "PRIMARY KEY (table_name, entity_key)) WITHOUT ROWID"
)


def micros(ts: datetime) -> int:
    """Microseconds since the epoch (a naive time is UTC, as Feast takes it)."""
    return (make_tzaware(ts) - _EPOCH) // timedelta(microseconds=1)


def _digest(rows: Iterable[tuple[str, bytes, int | None]]) -> bytes:
    """The entity's rows (feature name, value, whole-second event time), in name order."""
    h = hashlib.blake2b(digest_size=16)
    for name, value, ts in sorted(rows, key=lambda r: r[0]):
        h.update(f"{name}\0{len(value)}\0{ts}\0".encode())
        h.update(value)
    return h.digest()


@dataclass
class _Stored:
    """What one entity holds in a view table: its newest whole second, and the
    microsecond time of this writer's side row when that row matches the stored rows."""

    seconds: int | None
    precise: int | None

    @classmethod
    def of(
        cls, rows: list[tuple[str, bytes, int | None]], side: tuple[int, bytes] | None
    ) -> _Stored:
        seconds = max((ts for _, _, ts in rows if ts is not None), default=None)
        return cls(seconds, side[0] if side and side[1] == _digest(rows) else None)


def _read(conn: sqlite3.Connection, table: str, keys: list[bytes]) -> dict[bytes, _Stored]:
    """Stored rows and side rows of `keys` (absent keys: no rows)."""
    rows: dict[bytes, list[tuple[str, bytes, int | None]]] = {}
    sides: dict[bytes, tuple[int, bytes]] = {}
    side_exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SIDE_TABLE,)
    ).fetchone()
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        # CAST: the raw epoch integer, not the datetime Feast's column converter makes.
        for key, name, value, ts in conn.execute(
            f"SELECT entity_key, feature_name, value, CAST(event_ts AS INTEGER) "
            f"FROM {_quote(table)} WHERE entity_key IN ({marks})",
            chunk,
        ):
            rows.setdefault(key, []).append((name, value, ts))
        if side_exists:
            for key, us, digest in conn.execute(
                f"SELECT entity_key, event_us, rows_digest FROM {_quote(SIDE_TABLE)} "
                f"WHERE table_name = ? AND entity_key IN ({marks})",
                [table, *chunk],
            ):
                sides[key] = (us, digest)
    return {k: _Stored.of(rows[k], sides.get(k)) for k in rows}


def _wins(new_us: int, new_s: int | None, stored: _Stored | None) -> bool:
    if stored is None or stored.seconds is None:
        return True
    if stored.precise is not None:
        return new_us >= stored.precise
    return new_s is not None and new_s >= stored.seconds


class NewerOnlySqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store whose write never replaces a value with an older
    one, to the microsecond where it wrote the stored value itself (module docstring).
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
        conn = self._get_conn(config)
        conn.execute("BEGIN IMMEDIATE")
        try:
            state = _read(conn, name, list(dict.fromkeys(keys)))
            winners: dict[bytes, tuple[dict[str, ValueProto], datetime, datetime | None]] = {}
            for key, (_, values, event_ts, created_ts) in zip(keys, data, strict=True):
                new_us = micros(event_ts)
                if _wins(new_us, _epoch(event_ts), state.get(key)):
                    winners[key] = (values, event_ts, created_ts)
                    state[key] = _Stored(_epoch(event_ts), new_us)
            self._write(conn, name, winners)
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
    ) -> None:
        """Upsert the winners' rows as Feast writes them, then their side rows."""
        rows = [
            row
            for key, (values, event_ts, created_ts) in sorted(winners.items())
            for row in entity_rows(key, values, event_ts, created_ts)
        ]
        conn.executemany(upsert_sql(table), rows)
        if not winners:
            return
        conn.execute(_CREATE_SIDE)
        after: dict[bytes, list[tuple[str, bytes, int | None]]] = {}
        keys = list(winners)
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            for key, name, value, ts in conn.execute(
                f"SELECT entity_key, feature_name, value, CAST(event_ts AS INTEGER) "
                f"FROM {_quote(table)} WHERE entity_key IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                after.setdefault(key, []).append((name, value, ts))
        conn.executemany(
            f"INSERT INTO {_quote(SIDE_TABLE)} (table_name, entity_key, event_us, rows_digest) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(table_name, entity_key) DO UPDATE SET "
            "event_us = excluded.event_us, rows_digest = excluded.rows_digest",
            [(table, k, micros(winners[k][1]), _digest(after[k])) for k in keys],
        )

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        """Feast's read, with the microsecond time where this writer's side row matches
        the stored rows (Feast's read gives whole seconds)."""
        version = config.entity_key_serialization_version
        name = compute_table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        keys = [serialize_entity_key(k, entity_key_serialization_version=version)
                for k in entity_keys]  # fmt: skip
        conn = self._get_conn(config)
        conn.execute("BEGIN")  # one snapshot for the values and the times
        try:
            result = super().online_read(config, table, entity_keys, requested_features)
            state = _read(conn, name, list(dict.fromkeys(keys)))
        finally:
            conn.rollback()
        out = []
        for key, (ts, values) in zip(keys, result, strict=True):
            stored = state.get(key)
            if ts is not None and stored is not None and stored.precise is not None:
                ts = _EPOCH + timedelta(microseconds=stored.precise)
            out.append((ts, values))
        return out
