"""Direct reads of Feast's online store (SQLite, Redis, Redis Cluster), keyed as Feast writes.

`FeatureStore.get_online_features` costs about a millisecond of Python per call (request
context, protobuf response, Arrow/pandas frame) for what is one indexed read. These
readers do the read alone, with Feast's own key functions (`serialize_entity_key`,
`compute_table_id`, `_redis_key`, `_mmh3`) and value decoding, and return plain rows
in the feature service's order. `plan()` returns None for anything else (other online
stores, on-demand views, key mappings, versioned tables): the SDK path then serves.
Integer and string entity keys are serialized without building protos (`KeyEncoder`,
checked against Feast's function when built); any other id goes through Feast's.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.serve.lookup.resp import AsyncRedis

# ValueProto fields read as they are; anything else goes through Feast's converter.
SCALARS = frozenset({"int32_val", "int64_val", "double_val", "float_val", "string_val", "bool_val"})
# Ids a `KeyEncoder` is checked on against Feast (the edges of int32/int64, non-ASCII).
INT_SAMPLES = (0, 1, -1, 255, 2**31 - 1, -(2**31), 2**40 + 3, 2**63 - 1, -(2**63))
STR_SAMPLES = ("", "a", "customer-42", "é∂🙂", "x" * 300)
_DOUBLE = struct.Struct("<d").unpack_from


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


class KeyEncoder:
    """`sqlite_keys` (or `redis_keys`, with `suffix` the project) at a fraction of the
    cost: Feast's serialize_entity_key layout for one join key written directly, for ids
    of the key's own Python type (int for INT64/INT32 keys, str for STRING keys); any
    other list of ids, and any key type or serialization this does not know, goes
    through Feast's function (`slow`). The layout is checked against Feast's on sample
    ids when built, so a Feast that serializes differently only loses the shortcut."""

    def __init__(
        self, p: Plan, slow: Callable[[Plan, Sequence[Any]], list[bytes]], suffix: bytes = b""
    ) -> None:
        self.plan, self.slow, self.suffix = p, slow, suffix
        self._type: type | None = None
        self._one: Callable[[Any], bytes] | None = None
        made = _direct_encoder(p, suffix)
        if made is not None and self._agrees(*made):
            self._type, self._one = made

    def _agrees(self, kind: type, one: Callable[[Any], bytes]) -> bool:
        samples = [v for v in (INT_SAMPLES if kind is int else STR_SAMPLES) if _fits(self.plan, v)]
        try:
            return [one(v) for v in samples] == self.slow(self.plan, samples)
        except Exception:  # Feast refused a sample: keep its own path
            return False

    def __call__(self, ids: Sequence[Any]) -> list[bytes]:
        one, kind = self._one, self._type
        if one is not None and all(type(v) is kind for v in ids):
            try:
                return [one(v) for v in ids]
            except (struct.error, UnicodeEncodeError):
                pass  # out of range or unencodable: Feast raises its own error
        return self.slow(self.plan, ids)


def _direct_encoder(p: Plan, suffix: bytes) -> tuple[type, Callable[[Any], bytes]] | None:
    """(id type, id -> key bytes) for one int or string join key, else None. Mirrors
    feast.infra.key_encoding_utils.serialize_entity_key (+ `suffix`, as `_redis_key`)."""
    from feast.protos.feast.types.Value_pb2 import ValueType as ProtoType
    from feast.value_type import ValueType

    u32 = struct.Struct("<I").pack
    v3 = p.key_version > 2
    name = p.key.encode("utf8")
    head = (u32(1) if v3 else b"") + u32(ProtoType.STRING) + (u32(len(name)) if v3 else b"")
    head += name
    ints = {
        ValueType.INT64: (ProtoType.INT64, "<l" if 0 <= p.key_version <= 1 else "<q"),
        ValueType.INT32: (ProtoType.INT32, "<i"),
    }
    if p.key_value_type in ints:
        code, fmt = ints[p.key_value_type]
        pack = struct.Struct(fmt).pack
        prefix = head + u32(code) + u32(struct.calcsize(fmt))

        def one_int(v: int) -> bytes:
            return prefix + pack(v) + suffix

        return int, one_int
    if p.key_value_type == ValueType.STRING:
        prefix = head + u32(ProtoType.STRING)

        def one_str(v: str) -> bytes:
            raw = v.encode("utf8")
            return prefix + u32(len(raw)) + raw + suffix

        return str, one_str
    return None


def _fits(p: Plan, v: Any) -> bool:
    """Whether a sample id is valid for the key type (int32 keys take int32 ids)."""
    from feast.value_type import ValueType

    if type(v) is not int:
        return True
    bits = 32 if p.key_value_type == ValueType.INT32 or 0 <= p.key_version <= 1 else 64
    return -(2 ** (bits - 1)) <= v < 2 ** (bits - 1)


def decoder() -> Callable[[bytes | None], Any]:
    """bytes of a ValueProto -> the Python value Feast would return (None when unset)."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    def decode(raw: bytes | None) -> Any:
        if not raw:
            return None
        # The commonest encodings read off the wire format (a third of the cost):
        # double_val, int64_val 0..127, string_val shorter than 128 bytes.
        tag, n = raw[0], len(raw)
        if tag == 0x29 and n == 9:
            return _DOUBLE(raw, 1)[0]
        if tag == 0x20 and n == 2 and raw[1] < 0x80:
            return raw[1]
        if tag == 0x12 and n >= 2 and raw[1] == n - 2 and raw[1] < 0x80:
            with contextlib.suppress(UnicodeDecodeError):  # not UTF-8: protobuf decides
                return raw[2:].decode()
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
        self._keys = KeyEncoder(p, sqlite_keys)
        # Per view (the query's first column): feature name -> position in the row.
        self._slots = [dict(zip(v.features, v.slots, strict=True)) for v in p.views]
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
        keys = self._keys(ids)
        unique = list(dict.fromkeys(keys)) if len(keys) > 1 else keys
        at = {k: i for i, k in enumerate(unique)}
        rows: list[list[Any]] = [[None] * self.plan.width for _ in unique]
        slots, decode = self._slots, self._decode
        found = self._conn().execute(self._query(len(unique)), unique * len(slots))
        for view_i, key, name, raw in found:
            slot = slots[view_i].get(name)
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
    """Reads Feast's Redis online store. Feast keeps every view of an entity in one hash
    (key: entity key + project), so an entity is one HMGET of all the service's fields;
    a batch is one pipelined round trip. `read` goes through redis-py (worker threads);
    `read_async`, when an `AsyncRedis` is given, on the event loop (resp.py). On a Redis
    Cluster `client` is redis-py's `RedisCluster`: one HMGET goes to its key's master, a
    batch is one pipeline per master, and a MOVED or ASK reply is followed by redis-py
    (there is no `AsyncRedis` for a cluster)."""

    def __init__(self, p: Plan, client: Any, aclient: AsyncRedis | None = None) -> None:
        from feast.infra.online_stores.helpers import _mmh3

        self.plan = p
        self.client = client
        self.aclient = aclient
        self._decode = decoder()
        self._keys = KeyEncoder(p, redis_keys, suffix=p.project.encode("utf-8"))
        # Field names as Feast's online_write_batch writes them (murmur3 of view:feature),
        # every view's in one list, with the row position of each.
        self._fields = [_mmh3(f"{v.name}:{f}") for v in p.views for f in v.features]
        self._slots = [slot for v in p.views for slot in v.slots]

    def read(self, ids: Sequence[Any]) -> list[list[Any]]:
        keys, fields = self._keys(ids), self._fields
        if len(keys) == 1:  # the common case: no pipeline object to build
            return self._rows([self.client.hmget(keys[0], fields)])
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, fields)
            return self._rows(pipe.execute())

    async def read_async(self, ids: Sequence[Any]) -> list[list[Any]]:
        assert self.aclient is not None
        keys, fields = self._keys(ids), self._fields
        if len(keys) == 1:
            return self._rows([await self.aclient.hmget(keys[0], fields)])
        return self._rows(await self.aclient.hmget_many(keys, fields))

    def _rows(self, replies: list[list[bytes | None]]) -> list[list[Any]]:
        out, decode, slots, width = [], self._decode, self._slots, self.plan.width
        for reply in replies:
            row: list[Any] = [None] * width
            for slot, raw in zip(slots, reply, strict=True):
                row[slot] = decode(raw)
            out.append(row)
        return out

    def close(self) -> None:
        """Closes the asyncio client; redis-py's is left to the garbage collector (a read
        in a worker thread may still be using it)."""
        if self.aclient is not None:
            self.aclient.close_threadsafe()


def _quote(identifier: str) -> str:
    """A quoted SQLite identifier (as Feast's own `_quote_id`)."""
    return '"' + identifier.replace('"', '""') + '"'
