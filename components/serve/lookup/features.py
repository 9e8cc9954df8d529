"""Online feature lookups from Feast, with unknown entities and outages made explicit.

Feast answers an entity it does not know with nulls, not an error, so a row whose
features are all null is reported as unknown. Requests read through `direct_store`
(the SQLite or Redis online store read directly, keyed as Feast writes it) when the
feature service allows it; the Feast SDK serves otherwise and for `fetch` (frames).
A Redis Cluster is read directly too, through redis-py's cluster client as Feast builds
it (keys hashed to their slot's master, MOVED/ASK followed), in worker threads: the
event loop's client (resp.py) speaks to one plain Redis only. `read_path` says which.
The SQLite online store keeps its connection open: a moved or deleted database file
would go unnoticed (reads keep hitting the old inode) or, on reconnect, be silently
re-created empty. So the file is checked before a lookup, at most every
`FILE_CHECK_S` seconds (a stat() and an access() per request cost more than the read
itself) and before every readiness probe; a missing file is an outage (503), and a
replaced file (new inode, e.g. rebuilt by materialization) reopens the store.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.config import SeamlessConfig
from components.common.env import disable_telemetry, feast_config_file
from components.common.redis_tls import redis_tls_problem
from components.serve.lookup import direct_store
from components.serve.lookup.resp import AsyncRedis, RespError, RespUnavailable

log = logging.getLogger(__name__)
FILE_CHECK_S = 0.05
"""Longest time a deleted or replaced SQLite file can go unnoticed by lookups."""


class FeatureStoreUnavailable(Exception):
    """The online store cannot be read right now (answered with 503)."""


class OnlineFeatures:
    """The feature service's latest values for a list of entity ids."""

    def __init__(self, repo_path: Path, config: SeamlessConfig) -> None:
        self.repo_path = repo_path
        self.config = config
        self.key = config.entity_key()
        self.features = list(config.feature_types())
        self._lock = threading.Lock()
        self._store: Any = None
        self._service: Any = None
        self._sqlite_path: Path | None = None
        self._inode: tuple[int, int] | None = None
        self._checked_at = float("-inf")  # time.monotonic() of the last file check
        self._reader: Any = None
        self.read_path = "not opened"
        """`sqlite`/`redis`/`redis-cluster`/`redis-sentinel` (direct reads) or
        `feast-sdk (why)`; for /readyz."""

    def _open(self) -> tuple[Any, Any]:
        """The cached FeatureStore and service, (re)opened when needed."""
        store, service, _ = self._opened()
        return store, service

    def _opened(self, may_open: bool = True, recheck: bool = False) -> tuple[Any, Any, Any]:
        """Store, service and direct reader (None: use the SDK), read under one lock.

        With `may_open=False`, (None, None, None) instead of opening the store. The
        SQLite file is checked when the last check is `FILE_CHECK_S` old, or `recheck`."""
        with self._lock:
            if self._store is not None:
                self._check_sqlite_file(recheck)
            if self._store is None and not may_open:
                return None, None, None
            if self._store is None:
                disable_telemetry()
                from feast import FeatureStore

                config_file = feast_config_file(self.repo_path)
                if not config_file.is_file():
                    raise FeatureStoreUnavailable(
                        f"Feast repo {self.repo_path} has no feature_store.yaml."
                    )
                try:
                    store = FeatureStore(repo_path=str(self.repo_path), fs_yaml_file=config_file)
                    online = store.config.online_store
                    problem = redis_tls_problem(online, str(config_file))
                    if problem:
                        raise FeatureStoreUnavailable(problem)
                    self._sqlite_path = None
                    if getattr(online, "type", "") == "sqlite":
                        p = Path(online.path)
                        self._sqlite_path = p if p.is_absolute() else self.repo_path / p
                        # Check before the first connect: sqlite3 would create an empty file.
                        self._inode = self._stat_sqlite()
                    service = store.get_feature_service(self.config.features.service)
                except FeatureStoreUnavailable:
                    raise
                except Exception as exc:
                    raise FeatureStoreUnavailable(
                        f"Opening the Feast repo {self.repo_path} failed: {exc}"
                    ) from exc
                self._store, self._service = store, service
                self._reader = self._direct_reader(store, service)
            return self._store, self._service, self._reader

    def _direct_reader(self, store: Any, service: Any) -> Any:
        kind = getattr(store.config.online_store, "type", "")
        try:
            p, why = direct_store.plan(store, service, self.key, self.features)
            if p is not None and kind == "sqlite" and self._sqlite_path is not None:
                reader: Any = direct_store.SqliteReader(p, self._sqlite_path)
            elif p is not None and kind == "redis":
                online = store.config.online_store
                reader = direct_store.RedisReader(p, _redis_client(online), _async_redis(online))
                kind = _redis_kind(online)
            else:
                reader, why = None, why or f"online store type {kind!r}"
        except Exception as exc:  # the SDK still serves: slower, never wrong
            reader, why = None, f"{type(exc).__name__}: {exc}"
        self.read_path = kind if reader is not None else f"feast-sdk ({why})"
        if reader is None:
            log.info("Online features through the Feast SDK: %s.", why)
        else:
            log.info("Online features read directly: %s.", kind)
        return reader

    def _stat_sqlite(self) -> tuple[int, int]:
        assert self._sqlite_path is not None
        try:
            st = os.stat(self._sqlite_path)
        except OSError as exc:
            raise FeatureStoreUnavailable(
                f"The online store file {self._sqlite_path} is missing or unreadable "
                f"({exc.strerror})."
            ) from None
        if not os.access(self._sqlite_path, os.R_OK):
            raise FeatureStoreUnavailable(
                f"The online store file {self._sqlite_path} is not readable."
            )
        return (st.st_dev, st.st_ino)

    def _check_sqlite_file(self, recheck: bool) -> None:
        if self._sqlite_path is None:
            return
        now = time.monotonic()
        if not recheck and now - self._checked_at < FILE_CHECK_S:
            return
        self._checked_at = now
        try:
            inode = self._stat_sqlite()
        except FeatureStoreUnavailable:
            self._drop()
            raise
        if inode != self._inode:
            log.info("Online store file %s was replaced; reopening.", self._sqlite_path)
            self._drop()

    def _drop(self) -> None:
        """Forget the store (and its connection) so the next lookup reopens it."""
        if self._reader is not None:
            self._reader.close()
        self._store = self._service = self._reader = None

    def fetch(self, entity_ids: list[Any]) -> pd.DataFrame:
        """One row per id, in order: the key column then the service's features."""
        store, service = self._open()
        try:
            response = store.get_online_features(
                features=service, entity_rows={self.key: list(entity_ids)}
            )
            frame = response.to_df()
        except Exception as exc:
            with self._lock:
                self._drop()
            raise FeatureStoreUnavailable(f"Online feature lookup failed: {exc}") from exc
        return frame[[self.key, *self.features]]

    def fetch_rows_local(self, entity_ids: list[Any]) -> list[list[Any]] | None:
        """`fetch_rows` when it is a read of a local SQLite file through an open store
        (short, no network: the event loop may call it); None when it would be anything
        else (opening Feast, the SDK, a Redis round trip)."""
        if not isinstance(self._reader, direct_store.SqliteReader):
            return None
        _, _, reader = self._opened(may_open=False)
        if not isinstance(reader, direct_store.SqliteReader):
            return None
        return self._read(reader, entity_ids)

    async def fetch_rows_async(self, entity_ids: list[Any]) -> list[list[Any]] | None:
        """`fetch_rows` on the event loop when it is a Redis read through an open store
        with an `AsyncRedis` (resp.py); None otherwise (opening the store, the SDK)."""
        if not isinstance(self._reader, direct_store.RedisReader):
            return None  # checked first without the lock, which an opening thread holds
        _, _, reader = self._opened(may_open=False)
        if not isinstance(reader, direct_store.RedisReader) or reader.aclient is None:
            return None
        try:
            rows: list[list[Any]] = await reader.read_async(entity_ids)
        except (RespUnavailable, RespError) as exc:
            # The store stays open: the client reconnects on the next request by itself.
            raise FeatureStoreUnavailable(f"Online feature lookup failed: {exc}") from exc
        except Exception as exc:
            raise self._lookup_failed(reader, exc) from exc
        return rows

    def fetch_rows(self, entity_ids: list[Any], recheck: bool = False) -> list[list[Any]]:
        """One row per id, in order: the service's feature values (None = missing).

        `recheck`: check the SQLite file now, however recently it was checked."""
        _, _, reader = self._opened(recheck=recheck)
        if reader is None:
            frame = self.fetch(entity_ids)[self.features]
            return frame.astype(object).where(frame.notna(), None).values.tolist()
        return self._read(reader, entity_ids)

    def _read(self, reader: Any, entity_ids: list[Any]) -> list[list[Any]]:
        try:
            rows: list[list[Any]] = reader.read(entity_ids)
        except Exception as exc:
            raise self._lookup_failed(reader, exc) from exc
        return rows

    def _lookup_failed(self, reader: Any, exc: Exception) -> FeatureStoreUnavailable:
        """Forget the store (reopened by the next lookup) unless another request has
        already reopened it; the error to raise."""
        with self._lock:
            if self._reader is reader:
                self._drop()
        return FeatureStoreUnavailable(f"Online feature lookup failed: {exc}")

    def probe(self) -> str | None:
        """None when a lookup works, else why not (for /readyz)."""
        try:
            self.fetch_rows([self.placeholder_id()], recheck=True)
        except FeatureStoreUnavailable as exc:
            return str(exc)
        return None

    def placeholder_id(self) -> Any:
        kind = self.config.tables[self.config.labels.table].columns.get(self.key, "int")
        return -1 if kind == "int" else "__seamless_probe__"


def unknown_rows(frame: pd.DataFrame, features: list[str]) -> list[int]:
    """Positions of rows whose every feature is null: entities the store does not know."""
    mask = frame[features].isna().all(axis=1).to_numpy()
    return [int(i) for i in mask.nonzero()[0]]


REDIS_TIMEOUT_S = 1.0
"""Socket (connect and read) timeout of the redis-py clients of direct reads, unless the
connection string sets `socket_timeout` / `socket_connect_timeout`: the event loop's
client (resp.AsyncRedis) has the same default. Without it a Redis that accepts and never
answers (a stopped process, a black-holed route) holds a worker thread for ever."""


def _redis_client(online: Any) -> Any:
    """The client for direct reads, built as Feast builds it from the connection string,
    with `REDIS_TIMEOUT_S` by default; a plain Redis also gets no client-side retries
    unless the connection string asks for them (redis-py's default of 3 retries with
    backoff turns an outage into ~10 s stalls instead of a prompt 503). A Sentinel stays
    exactly Feast's."""
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisType

    if online.redis_type == RedisType.redis_sentinel:
        return RedisOnlineStore()._get_client(online)
    nodes, kwargs = RedisOnlineStore._parse_connection_string(online.connection_string)
    kwargs.setdefault("socket_timeout", REDIS_TIMEOUT_S)
    kwargs.setdefault("socket_connect_timeout", REDIS_TIMEOUT_S)
    if online.redis_type == RedisType.redis_cluster:
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(**node) for node in nodes], **kwargs)
    from redis import Redis

    kwargs.setdefault("retry", None)
    return Redis(host=nodes[0]["host"], port=nodes[0]["port"], **kwargs)


def _redis_kind(online: Any) -> str:
    """`read_path` of a direct Redis read: `redis`, or `redis-cluster` / `redis-sentinel`
    (redis-py's client for those, as Feast builds it, in worker threads)."""
    from feast.infra.online_stores.redis import RedisType

    return {
        RedisType.redis_cluster: "redis-cluster",
        RedisType.redis_sentinel: "redis-sentinel",
    }.get(online.redis_type, "redis")


def _async_redis(online: Any) -> AsyncRedis | None:
    """An `AsyncRedis` for a plain Redis (not cluster or sentinel) with options it
    supports, else None (reads then stay with redis-py in worker threads)."""
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisType

    if online.redis_type != RedisType.redis:
        return None
    nodes, kwargs = RedisOnlineStore._parse_connection_string(online.connection_string)
    return AsyncRedis.from_redis_kwargs(nodes[0]["host"], int(nodes[0]["port"]), kwargs)


def unknown_positions(rows: list[list[Any]]) -> list[int]:
    """Positions of rows whose every feature is None (see `unknown_rows`)."""
    return [i for i, row in enumerate(rows) if all(v is None for v in row)]
