"""A faster writer for Feast's embedded SQLite online store, same rows on disk.

Feast's `SqliteOnlineStore.online_write_batch` runs one upsert statement per feature
value, in the order the values come. At 1M label rows that is 3.25M Python-to-SQLite
calls with random keys into two B-tree indexes: most of the `materialize` step
(docs/benchmarks.md). This subclass builds the same rows (the same entity key bytes,
value protos, `value_text` and epoch timestamps, through Feast's own helpers), sorts them
by primary key (stable, so of two writes to one key the later still wins) and hands
them to SQLite in one `executemany` per batch.

Only the bulk load uses it (`use_batched_writer`, called by materialization): the
repo's `feature_store.yaml` keeps `type: sqlite`, so Feast's CLI, its UI and serving read
a standard store. Stores with vectors or the OpenAI-compatible `value_num` column, and
every other store type, keep Feast's own writer.

Precise event times: where the stream consumer has written
(components/stream/online_sqlite.py), the database also holds its side table
`seamless:event_times`, per (view table, entity key) the microsecond event time of the
entity's value and a digest of its rows (Feast's table keeps whole seconds). This
writer keeps that table in step, in the same transaction as the rows: each entity it
writes gets the side row of the value it wrote, so the consumer compares against the
materialized time to the microsecond. Without the side table (no consumer wrote there)
it costs one look-up per batch; with it, one digest per entity (built column by column
in the column-wise load).
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

from feast import FeatureStore
from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id, extract_text_and_num
from feast.infra.online_stores.sqlite import SqliteOnlineStore, adapt_datetime_epoch
from feast.infra.passthrough_provider import PassthroughProvider
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.utils import make_tzaware, to_naive_utc

Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]
StoreRow = tuple[bytes, str, bytes, str | None, int | None, int | None]
"""One row of a view's table: entity key, feature name, value, value_text, event and
created epoch seconds."""
SideRow = tuple[str, bytes, int, bytes]
"""One row of the side table: view table, entity key, event microseconds, rows digest."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


SIDE_TABLE = "seamless:event_times"
"""The side table of precise event times (a name no Feast table can have: Feast's are
`<project>_<view>`, letters, digits and underscores)."""
CREATE_SIDE = (
    f"CREATE TABLE IF NOT EXISTS {_quote(SIDE_TABLE)} (table_name TEXT NOT NULL, "
    "entity_key BLOB NOT NULL, event_us INTEGER NOT NULL, rows_digest BLOB NOT NULL, "
    "PRIMARY KEY (table_name, entity_key)) WITHOUT ROWID"
)
UPSERT_SIDE = (
    f"INSERT INTO {_quote(SIDE_TABLE)} (table_name, entity_key, event_us, rows_digest) "
    "VALUES (?, ?, ?, ?) ON CONFLICT(table_name, entity_key) DO UPDATE SET "
    "event_us = excluded.event_us, rows_digest = excluded.rows_digest"
)


def _epoch(ts: datetime | None) -> int | None:
    # What Feast's registered sqlite3 adapter stores for a datetime parameter.
    return None if ts is None else adapt_datetime_epoch(to_naive_utc(ts))


def micros(ts: datetime) -> int:
    """Microseconds since the epoch (a naive time is UTC, as Feast takes it)."""
    return (make_tzaware(ts) - _EPOCH) // timedelta(microseconds=1)


DIGEST_HEAD = struct.Struct("<qq")
"""Per row in a digest: its value's length and its whole-second event time."""
NO_TIME = -(2**63)
"""A row without an event time, in a digest."""


def digest(names: bytes, heads: bytes, values: Iterable[bytes]) -> bytes:
    """The digest of one entity's rows from its parts (`rows_digest`); the column-wise
    load builds the parts column by column (arrow_rows.py)."""
    h = hashlib.blake2b(names, digest_size=16)
    h.update(heads)
    for value in values:
        h.update(value)
    return h.digest()


def name_part(names: Iterable[str]) -> bytes:
    return b"".join(name.encode() + b"\0" for name in names)


def rows_digest(rows: Iterable[tuple[str, bytes, int | None]]) -> bytes:
    """A digest of one entity's rows (feature name, value, Feast's whole-second event
    time), what the side row says the entity's rows are: in name order, the names (each
    ended by NUL), then per row `DIGEST_HEAD`, then the values."""
    ordered = sorted(rows, key=itemgetter(0))
    heads = b"".join(
        DIGEST_HEAD.pack(len(value), NO_TIME if ts is None else ts) for _, value, ts in ordered
    )
    return digest(name_part(n for n, _, _ in ordered), heads, (v for _, v, _ in ordered))


def side_table_exists(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SIDE_TABLE,)
    ).fetchone()
    return found is not None


def side_rows(table: str, rows: list[StoreRow], times: Mapping[bytes, int]) -> list[SideRow]:
    """The side rows of the entities in `rows` (sorted by primary key, as written; of two
    rows for one key the later is the one stored), at their event times `times`."""
    out: list[SideRow] = []
    for key, group in groupby(rows, key=itemgetter(0)):
        stored = {name: (value, ts) for _, name, value, _, ts, _ in group}
        rows_of_key = [(name, value, ts) for name, (value, ts) in stored.items()]
        out.append((table, key, times[key], rows_digest(rows_of_key)))
    return out


def entity_rows(
    key: bytes, values: dict[str, ValueProto], event_ts: datetime, created_ts: datetime | None
) -> list[StoreRow]:
    """One entity's rows (its serialized key given) as Feast's SQLite store writes them."""
    event, created = _epoch(event_ts), _epoch(created_ts)
    rows: list[StoreRow] = []
    for name, value in values.items():
        text, _ = extract_text_and_num(value, False)
        rows.append((key, name, value.SerializeToString(), text, event, created))
    return rows


def rows_from_protos(data: list[Row], version: int) -> list[StoreRow]:
    """Feast's converted rows as its SQLite store writes them, through Feast's helpers."""
    rows: list[StoreRow] = []
    for entity_key, values, event_ts, created_ts in data:
        key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
        rows.extend(entity_rows(key, values, event_ts, created_ts))
    return rows


def upsert_sql(table: str) -> str:
    """The upsert of one row of a view table, Feast's columns in Feast's order."""
    return (
        f"INSERT INTO {_quote(table)} "
        "(entity_key, feature_name, value, value_text, event_ts, created_ts) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
        "value = excluded.value, value_text = excluded.value_text, "
        "event_ts = excluded.event_ts, created_ts = excluded.created_ts"
    )


def feast_only_columns(config: RepoConfig) -> bool:
    """The online store fills vector or OpenAI-compatible columns, which only Feast's
    own SQLite writer knows how to write."""
    store = config.online_store
    return bool(store.vector_enabled or getattr(store, "enable_openai_compatible_store", False))


def unbuilt_plain_sqlite(store: FeatureStore) -> PassthroughProvider | None:
    """`store`'s provider when its online store is Feast's plain SQLite store and Feast
    has not built its compute engine yet (it builds it once, with the online store it has
    then): the moment a materialization writer can still be swapped in."""
    provider = store._get_provider()
    if not isinstance(provider, PassthroughProvider) or provider._batch_engine is not None:
        return None
    return provider if type(provider.online_store) is SqliteOnlineStore else None


class BatchedSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store with a sorted, batched `online_write_batch`, which
    keeps the stream consumer's side table in step where it exists."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        if feast_only_columns(config):
            super().online_write_batch(config, table, data, progress)
            return
        version = config.entity_key_serialization_version
        rows = rows_from_protos(data, version)

        def side(name: str) -> list[SideRow]:
            times = {
                serialize_entity_key(k, entity_key_serialization_version=version): micros(ts)
                for k, _, ts, _ in data
            }
            return side_rows(name, rows, times)

        self.write_rows(config, table, rows, side)
        if progress:
            progress(len(data))

    def write_rows(
        self,
        config: RepoConfig,
        table: FeatureView,
        rows: list[StoreRow],
        side: Callable[[str], list[SideRow]],
        in_key_order: bool = False,
    ) -> None:
        """Upsert rows in the table's own column order, sorted by primary key first
        (stable: of two rows for one key the later still wins); `in_key_order` says the
        caller sorted them already. `side(table name)` gives the written entities' side
        rows (once each: the later write's): asked for only where the side table exists,
        and upserted in the same transaction."""
        if not in_key_order:
            rows.sort(key=lambda r: (r[0], r[1]))
        name = compute_table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        conn = self._get_conn(config)
        conn.execute("BEGIN IMMEDIATE")  # the side table cannot appear before the commit
        try:
            conn.executemany(upsert_sql(name), rows)
            if side_table_exists(conn):
                conn.executemany(UPSERT_SIDE, side(name))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def use_batched_writer(store: FeatureStore) -> bool:
    """Make `store`'s materialization write through `BatchedSqliteOnlineStore` when its
    online store is Feast's plain SQLite store; True when it does. Must run before the
    store's first materialization (`unbuilt_plain_sqlite`)."""
    provider = unbuilt_plain_sqlite(store)
    if provider is None:
        return False
    provider._online_store = BatchedSqliteOnlineStore()  # type: ignore[assignment]
    return True
