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
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
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
from feast.utils import to_naive_utc

Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]
StoreRow = tuple[bytes, str, bytes, str | None, int | None, int | None]
"""One row of a view's table: entity key, feature name, value, value_text, event and
created epoch seconds."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _epoch(ts: datetime | None) -> int | None:
    # What Feast's registered sqlite3 adapter stores for a datetime parameter.
    return None if ts is None else adapt_datetime_epoch(to_naive_utc(ts))


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
    """Feast's SQLite online store with a sorted, batched `online_write_batch`."""

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
        self.write_rows(
            config, table, rows_from_protos(data, config.entity_key_serialization_version)
        )
        if progress:
            progress(len(data))

    def write_rows(
        self,
        config: RepoConfig,
        table: FeatureView,
        rows: list[StoreRow],
        in_key_order: bool = False,
    ) -> None:
        """Upsert rows in the table's own column order, sorted by primary key first
        (stable: of two rows for one key the later still wins); `in_key_order` says the
        caller sorted them already."""
        if not in_key_order:
            rows.sort(key=lambda r: (r[0], r[1]))
        name = compute_table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        conn = self._get_conn(config)
        with conn:
            conn.executemany(upsert_sql(name), rows)


def use_batched_writer(store: FeatureStore) -> bool:
    """Make `store`'s materialization write through `BatchedSqliteOnlineStore` when its
    online store is Feast's plain SQLite store; True when it does. Must run before the
    store's first materialization (`unbuilt_plain_sqlite`)."""
    provider = unbuilt_plain_sqlite(store)
    if provider is None:
        return False
    provider._online_store = BatchedSqliteOnlineStore()  # type: ignore[assignment]
    return True
