"""Online writes that never replace a newer value with an older one.

Why: an entry taken over (XAUTOCLAIM) from a consumer that is stuck but alive is
written by both. The stuck one's late rule ran before it stalled, so when it resumes it
pushes the entry's (older) value as on time, possibly after the new owner wrote a
newer event of the same entity. The two write paths of Feast behave differently:

- Feast's SQLite store (and components/features/sqlite_writer.py's batched writer)
  upsert whatever they are given: the older value replaced the newer one
  (tests/stream/test_stream_stuck.py reproduced it).
- Feast's Redis store reads each entity's stored time (one pipeline), then writes the
  rows that are newer (a second pipeline). A consumer resuming before that read is
  refused; one stalled between the read and the write is not: the race is narrowed to
  one round trip, not closed (Feast's own comment says as much).

Re-checking ownership of the pending entry (XCLAIM/XPENDING) just before writing only
narrows it too: the consumer can stall again between the check and the write, and the
store cannot see who owns what. What closes it is a write that compares and sets in
one atomic step at the store, so a stale write loses whoever sends it and whenever:

- SQLite: `NewerOnlySqliteOnlineStore` (online_sqlite.py): read, compare and upsert
  in one `BEGIN IMMEDIATE` transaction (SQLite's write lock throughout), to the
  microsecond through a side table beside Feast's, whose own table keeps Feast's whole
  seconds.
- Redis: `NewerOnlyRedisOnlineStore`, one Lua script per entity key that reads the
  stored `_ts:<view>` and writes only a strictly newer time (Feast's own rule, at
  nanosecond precision), so nothing runs between the compare and the set; one key
  per script, so it also works on a Redis Cluster (Feast's `redis_cluster` type: one
  pipeline per node, since redis-py's cluster pipeline refuses scripts;
  tests/stream/test_stream_cluster.py). Keys, fields and values are
  Feast's own (its helpers), so Feast, serving and the feature server read them as
  before.

`guard_writes` swaps the store's writer for these in the consumer's own FeatureStore;
materialization and the rest of the project keep Feast's writers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from feast import FeatureStore
from feast.feature_view import FeatureView
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.infra.passthrough_provider import PassthroughProvider
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.utils import make_tzaware
from google.protobuf.timestamp_pb2 import Timestamp
from redis.cluster import RedisCluster
from redis.exceptions import AskError

from components.features.sqlite_writer import BatchedSqliteOnlineStore, feast_only_columns
from components.stream.online_sqlite import NewerOnlySqliteOnlineStore

log = logging.getLogger(__name__)

Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]
Calls = list[tuple[bytes, list[Any]]]
"""(entity hash key, `WRITE_IF_NEWER` args) per row."""

WRITE_IF_NEWER = """
local function varint(b, i)
  local v, m = 0, 1
  while true do
    local c = string.byte(b, i)
    i = i + 1
    v = v + (c % 128) * m
    if c < 128 then return v, i end
    m = m * 128
  end
end
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then
  local s, n, i = 0, 0, 1
  while i <= #prev do
    local tag = string.byte(prev, i)
    local v
    v, i = varint(prev, i + 1)
    if tag == 8 then s = v elseif tag == 16 then n = v end
  end
  local new_s, new_n = tonumber(ARGV[2]), tonumber(ARGV[3])
  if (s > 0 or n > 0) and (new_s < s or (new_s == s and new_n <= n)) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], unpack(ARGV, 6))
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1
"""
"""KEYS: the entity's hash. ARGV: the `_ts:<view>` field, the new time's seconds and
nanos, its Timestamp bytes, a TTL in seconds (0: none), then feature field/value pairs.
Writes only when the new time is newer than the stored one (a google.protobuf Timestamp:
field 1 seconds, field 2 nanos, varints); returns 1 when it wrote."""


class NewerOnlyRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis online store whose write compares and sets each entity atomically
    (`WRITE_IF_NEWER`): an older (or equally old) time never replaces a stored one,
    whoever writes when. `skip_dedup` is ignored: the comparison is the point."""

    written = 0
    """Rows this store wrote (not refused as older), for tests and logs."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        store = config.online_store
        client = self._get_client(store)
        view = _versioned_fv_name(table, config)
        ts_field = f"_ts:{view}"
        ttl = int(store.key_ttl_seconds or 0)
        version = config.entity_key_serialization_version
        calls: Calls = []
        for entity_key, values, event_ts, _ in data:
            key = _redis_key(config.project, entity_key, entity_key_serialization_version=version)
            ts = Timestamp()
            ts.FromDatetime(make_tzaware(event_ts))
            fields: list[Any] = []
            for name, value in values.items():
                fields += [_mmh3(f"{view}:{name}"), value.SerializeToString()]
            calls.append(
                (key, [ts_field, ts.seconds, ts.nanos, ts.SerializeToString(), ttl, *fields])
            )
        done = (
            _on_cluster(client, calls) if isinstance(client, RedisCluster) else _run(client, calls)
        )
        self.written += sum(int(n) for n in done)
        if progress:
            progress(len(data))


def _run(client: Any, calls: Calls, raise_on_error: bool = True) -> list[Any]:
    """`WRITE_IF_NEWER` per (key, args) in one pipeline of a standalone client (redis-py
    loads the script first if the server lacks it)."""
    script = client.register_script(WRITE_IF_NEWER)
    with client.pipeline(transaction=False) as pipe:
        for key, args in calls:
            script(keys=[key], args=args, client=pipe)
        return list(pipe.execute(raise_on_error=raise_on_error))


def _on_cluster(client: Any, calls: Calls) -> list[Any]:
    """The same on a Redis Cluster: redis-py's cluster pipeline refuses scripts, so one
    pipeline per node, each node's keys by the client's slot map. An entry whose slot
    moved since (MOVED/ASK reply) is sent again alone through the cluster client, which
    follows the redirection; any other error is raised."""
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for i, (key, _) in enumerate(calls):
        node = client.get_node_from_key(key)
        by_node.setdefault(node.name, (node, []))[1].append(i)
    done: list[Any] = [0] * len(calls)
    script = client.register_script(WRITE_IF_NEWER)
    for node, indexes in by_node.values():
        replies = _run(node.redis_connection, [calls[i] for i in indexes], raise_on_error=False)
        for i, reply in zip(indexes, replies, strict=True):
            if isinstance(reply, AskError):  # MovedError is one too
                key, args = calls[i]
                reply = script(keys=[key], args=args)
            elif isinstance(reply, Exception):
                raise reply
            done[i] = reply
    return done


def guard_writes(store: FeatureStore) -> bool:
    """Make `store`'s online writes newer-only (see the module docstring); True when
    they are. False for a store other than Feast's SQLite (without vectors or the
    OpenAI-compatible column) or Redis: there a stuck consumer's late write can still
    replace a newer value, and the consumer says so in its log."""
    provider = store._get_provider()
    if not isinstance(provider, PassthroughProvider):
        return False
    current = provider.online_store
    if type(current) in (SqliteOnlineStore, BatchedSqliteOnlineStore):
        if feast_only_columns(store.config):
            return False
        provider._online_store = NewerOnlySqliteOnlineStore()  # type: ignore[assignment]
        return True
    if type(current) is RedisOnlineStore:
        provider._online_store = NewerOnlyRedisOnlineStore()  # type: ignore[assignment]
        return True
    return isinstance(current, NewerOnlySqliteOnlineStore | NewerOnlyRedisOnlineStore)
