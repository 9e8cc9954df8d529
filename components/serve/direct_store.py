"""Direct reads of Feast's online store (SQLite, Redis), keyed exactly as Feast writes.

`FeatureStore.get_online_features` costs about a millisecond of Python per call (request
context, protobuf response, Arrow/pandas frame) for what is one indexed read. These
readers do the read alone, with Feast's own key functions (`serialize_entity_key`,
`compute_table_id`, `_redis_key`, `_mmh3`) and value decoding, and return plain rows
in the feature service's order. `plan()` returns None for anything else (other online
stores, on-demand views, key mappings, versioned tables): the SDK path then serves.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ValueProto fields read as they are; anything else goes through Feast's converter.
SCALARS = frozenset({"int32_val", "int64_val", "double_val", "float_val", "string_val", "bool_val"})


@dataclass(frozen=True)
class View:
    """One feature view of the service: where its values live, where they go in a row."""

    name: str  # Feast's table suffix / Redis field prefix (the view's name)
    table: str  # SQLite table: Feast's compute_table_id
    features: tuple[str, ...]
    slots: tuple[int, ...]  # position of each feature in the row


@dataclass(frozen=True)
class Plan:
    """What a direct read needs, taken from the registry once."""

    project: str
    key: str
    key_value_type: Any  # feast ValueType of the join key
    key_version: int  # entity_key_serialization_version
    views: tuple[View, ...]
    width: int


def plan(store: Any, service: Any, key: str, features: list[str]) -> tuple[Plan | None, str]:
    """(plan, "") when the direct path reads exactly what the SDK would, else (None, why)."""
    from feast.infra.online_stores.helpers import compute_table_id

    cfg = store.config
    if getattr(cfg.registry, "enable_online_feature_view_versioning", False):
        return None, "versioned feature views"
    if service.feature_view_projections is None or not service.feature_view_projections:
        return None, "empty feature service"
    slot = {f: i for i, f in enumerate(features)}
    views, key_types, seen = [], set(), set()
    odfv = {v.name for v in store.list_on_demand_feature_views()}
    for proj in service.feature_view_projections:
        if proj.name in odfv:
            return None, f"on-demand view {proj.name}"
        if proj.join_key_map or proj.name_alias:
            return None, f"projection mapping on {proj.name}"
        fv = store.get_feature_view(proj.name)
        if list(fv.join_keys) != [key]:
            return None, f"view {fv.name} is keyed by {list(fv.join_keys)}, not [{key!r}]"
        key_types |= {c.dtype.to_value_type() for c in fv.entity_columns if c.name == key}
        names = tuple(f.name for f in proj.features)
        if any(n not in slot for n in names):
            return None, f"view {fv.name} has features outside the config"
        seen |= set(names)
        table = compute_table_id(cfg.project, fv, False)
        views.append(View(fv.name, table, names, tuple(slot[n] for n in names)))
    if seen != set(features):
        return (
            None,
            f"the service's features differ from the config's: {sorted(seen ^ set(features))}",
        )
    if len(key_types) != 1:
        return None, f"join key {key!r} has types {sorted(map(str, key_types))}"
    return Plan(
        cfg.project,
        key,
        key_types.pop(),
        int(cfg.entity_key_serialization_version),
        tuple(views),
        len(features),
    ), ""


def entity_protos(p: Plan, ids: Sequence[Any]) -> list[Any]:
    """EntityKey protos as `get_online_features` builds them (values typed by the view)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    values = python_values_to_proto_values(list(ids), p.key_value_type)
    return [EntityKey(join_keys=[p.key], entity_values=[v]) for v in values]


def sqlite_keys(p: Plan, ids: Sequence[Any]) -> list[bytes]:
    """The `entity_key` column values Feast's SQLite store writes for `ids`."""
    from feast.infra.key_encoding_utils import serialize_entity_key

    v = p.key_version
    return [
        serialize_entity_key(k, entity_key_serialization_version=v) for k in entity_protos(p, ids)
    ]


def redis_keys(p: Plan, ids: Sequence[Any]) -> list[bytes]:
    """The hash keys Feast's Redis store writes for `ids`."""
    from feast.infra.online_stores.helpers import _redis_key

    return [_redis_key(p.project, k, p.key_version) for k in entity_protos(p, ids)]


def decoder() -> Callable[[bytes], Any]:
    """bytes of a ValueProto -> the Python value Feast would return (None when unset)."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    def decode(raw: bytes | None) -> Any:
        if not raw:
            return None
        v = Value()
        v.ParseFromString(raw)
        kind = v.WhichOneof("val")
        if kind is None or kind == "null_val":
            return None
        if kind in SCALARS:
            return getattr(v, kind)
        return feast_value_type_to_python_type(v)

    return decode


class SqliteReader:
    """Reads Feast's SQLite online store over read-only connections, one per thread."""

    def __init__(self, p: Plan, path: Path) -> None:
        self.plan = p
        self.path = path
        self._local = threading.local()
        self._decode = decoder()
        self._slots = {v.table: dict(zip(v.features, v.slots, strict=True)) for v in p.views}
        self._sql: dict[int, str] = {}

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # mode=ro: an outage never creates an empty database in its place.
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def _query(self, n: int) -> str:
        sql = self._sql.get(n)
        if sql is None:
            marks = ",".join("?" * n)
            # One statement for every view: one round through sqlite3 per request.
            sql = " UNION ALL ".join(
                f"SELECT {i}, entity_key, feature_name, value FROM {_quote(v.table)}"
                f" WHERE entity_key IN ({marks})"
                for i, v in enumerate(self.plan.views)
            )
            self._sql[n] = sql
        return sql

    def read(self, ids: Sequence[Any]) -> list[list[Any]]:
        keys = sqlite_keys(self.plan, ids)
        unique = list(dict.fromkeys(keys))
        at = {k: i for i, k in enumerate(unique)}
        rows: list[list[Any]] = [[None] * self.plan.width for _ in unique]
        tables = [v.table for v in self.plan.views]
        params = unique * len(tables)
        decode = self._decode
        for view_i, key, name, raw in self._conn().execute(self._query(len(unique)), params):
            slot = self._slots[tables[view_i]].get(name)
            if slot is not None:
                rows[at[key]][slot] = decode(raw)
        if len(unique) == len(keys):
            return rows
        return [list(rows[at[k]]) for k in keys]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class RedisReader:
    """Reads Feast's Redis online store: one HMGET per entity and view, one round trip."""

    def __init__(self, p: Plan, client: Any) -> None:
        from feast.infra.online_stores.helpers import _mmh3

        self.plan = p
        self.client = client
        self._decode = decoder()
        # Field names as Feast's online_write_batch writes them (murmur3 of view:feature).
        self._fields = [[_mmh3(f"{v.name}:{f}") for f in v.features] for v in p.views]

    def read(self, ids: Sequence[Any]) -> list[list[Any]]:
        keys = redis_keys(self.plan, ids)
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                for fields in self._fields:
                    pipe.hmget(key, fields)
            replies = pipe.execute()
        out, decode, per = [], self._decode, len(self.plan.views)
        for i in range(len(keys)):
            row: list[Any] = [None] * self.plan.width
            for j, view in enumerate(self.plan.views):
                for slot, raw in zip(view.slots, replies[i * per + j], strict=True):
                    row[slot] = decode(raw)
            out.append(row)
        return out

    def close(self) -> None:
        """The client belongs to Feast's store object; nothing of our own to close."""


def _quote(identifier: str) -> str:
    """A quoted SQLite identifier (as Feast's own `_quote_id`)."""
    return '"' + identifier.replace('"', '""') + '"'
