"""Publishing tables to Feast: Parquet snapshots, registry apply, online materialization."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore
from feast.feast_object import FeastObject

from components.common import storage
from components.common.config import SeamlessConfig
from components.common.connect import wait_for_tcp
from components.common.env import feast_config_file
from components.common.errors import SeamlessError
from components.common.redis_tls import redis_tls_problem
from components.features.repo import FEATURE_STORE_YAML, FeastObjects, snapshot_path


def open_store(repo_path: Path) -> FeatureStore:
    """The FeatureStore of a repo folder that has a feature_store.yaml."""
    config_file = feast_config_file(repo_path)
    if not config_file.is_file():
        raise SeamlessError(
            f"Feast repo {repo_path} has no {FEATURE_STORE_YAML}; run the features stage first."
        )
    store = FeatureStore(repo_path=str(repo_path), fs_yaml_file=config_file)
    problem = redis_tls_problem(store.config.online_store, str(config_file))
    if problem:
        raise SeamlessError(problem)
    try:
        endpoints = store_endpoints(store)
    except Exception:  # an address this cannot parse: Feast will say what is wrong with it
        endpoints = []
    for host, port, what in endpoints:
        wait_for_tcp(host, port, what)  # a fresh pod's first connection (issue #14 A.1)
    return store


def store_endpoints(store: FeatureStore) -> list[tuple[str, int, str]]:
    """(host, port, what) of the network servers the store's config names: a SQL
    registry other than SQLite, and a Redis online store's first node."""
    from sqlalchemy.engine import make_url

    out: list[tuple[str, int, str]] = []
    registry = store.config.registry
    path = str(getattr(registry, "path", "") or "")
    if getattr(registry, "registry_type", "") == "sql" and "://" in path:
        url = make_url(path)
        if url.host and not url.drivername.startswith("sqlite"):
            out.append((url.host, int(url.port or 5432), "Feast registry database"))
    online = store.config.online_store
    if getattr(online, "type", "") == "redis":
        first = str(getattr(online, "connection_string", "")).split(",")[0]
        host, _, port = first.partition(":")
        if host and "=" not in first:
            out.append((host, int(port or 6379), "Feast online store (Redis)"))
    return out


def to_utc(ts: pd.Series) -> pd.Series:
    """Timezone-aware UTC timestamps; naive values are taken to be UTC already."""
    ts = pd.to_datetime(ts, utc=False)
    if ts.dt.tz is None:
        return ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC")


def require_columns(df: pd.DataFrame, table: str, columns: dict[str, str]) -> None:
    """Fail naming the first required column (by role) the table lacks."""
    for role, col in columns.items():
        if col not in df.columns:
            raise SeamlessError(
                f"Table '{table}' has no {role} column '{col}' (columns: {list(df.columns)})."
            )


@dataclass(frozen=True)
class TableSpan:
    """What a published feature table holds: its event-time range and distinct entities."""

    start: datetime
    end: datetime
    entities: int
    rows: int
    dropped_rows: int
    keys: frozenset[Any]
    """Distinct entity ids, i.e. the entities materialized for the view (empty on Spark,
    which counts them where they are)."""

    def describe(self) -> dict[str, Any]:
        """The span as the features step reports it."""
        return {
            "rows": self.rows,
            "dropped_rows": self.dropped_rows,
            "entities": self.entities,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


def feature_frame(config: SeamlessConfig, table: str, df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The table as Feast reads it: UTC event time, non-null keys; returns (frame, dropped rows).

    Rows without an entity or an event time cannot be placed in a point-in-time join
    (ingestion turns unparseable values into nulls), so they are left out and counted.
    """
    key, ts = config.entity_key(), config.timestamp_key(table)
    require_columns(df, table, {"entity": key, "timestamp": ts})
    out = df.copy()
    out[ts] = to_utc(out[ts])
    keep = out[key].notna() & out[ts].notna()
    dropped = int((~keep).sum())
    if dropped:
        out = out[keep]
    if config.tables[table].columns.get(key, "int") == "int":
        # Same integer dtype as the label rows, whatever nullable form ingestion used.
        out[key] = out[key].astype("int64")
    return out.reset_index(drop=True), dropped


def write_snapshots(
    config: SeamlessConfig,
    tables: dict[str, pd.DataFrame],
    table_hashes: dict[str, str],
    repo_path: Path,
) -> dict[str, TableSpan]:
    """Write each feature view's table once to `<repo>/data/<table>/<sha256>.parquet`.

    A snapshot is named by the table's content hash, so an existing file is already
    right and is not rewritten; registry entries never point at data that changes.
    """
    spans: dict[str, TableSpan] = {}
    for view in config.features.views:
        table = view.table
        if table in spans:
            continue
        if table not in tables:
            raise SeamlessError(
                f"Feature view '{view.name}' needs table '{table}', which is not among the "
                f"input tables {sorted(tables)}."
            )
        frame, dropped = feature_frame(config, table, tables[table])
        if frame.empty:
            raise SeamlessError(
                f"Table '{table}' (feature view '{view.name}') has no row with both an entity "
                f"and an event time."
            )
        ts = frame[config.timestamp_key(table)]
        keys = frozenset(frame[config.entity_key()].unique().tolist())
        spans[table] = TableSpan(
            start=ts.min().to_pydatetime(),
            end=ts.max().to_pydatetime(),
            entities=len(keys),
            rows=len(frame),
            dropped_rows=dropped,
            keys=keys,
        )
        target = snapshot_path(repo_path, table, table_hashes[table])
        if isinstance(target, str):
            _write_object(frame, target)
            continue
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return spans


def _write_object(frame: pd.DataFrame, uri: str) -> None:
    """Upload one snapshot to the object store unless its key is there (same name, same
    content); one PUT or multipart upload, so readers see all of it or nothing."""
    if storage.exists(uri):
        return
    with tempfile.TemporaryDirectory(prefix="seamless-feast-") as tmp:
        local = Path(tmp) / "snapshot.parquet"
        frame.to_parquet(local, index=False)
        storage.put_file(local, uri)


def stale_objects(store: FeatureStore, objects: FeastObjects) -> list[FeastObject]:
    """Registry objects of the project that the config no longer defines."""
    views = {v.name for v in objects.views}
    stale_views = [v for v in store.list_feature_views() if v.name not in views]
    gone = {v.name for v in stale_views}
    # A service over a removed view would fail at retrieval; ours is re-applied anyway.
    stale_services = [
        s
        for s in store.list_feature_services()
        if s.name != objects.service.name
        and any(p.name in gone for p in s.feature_view_projections)
    ]
    used = {e for v in objects.views for e in v.entities}
    stale_entities = [
        e
        for e in store.list_entities()
        if e.name not in used and e.name != objects.entity.name and not e.name.startswith("__")
    ]
    stale: list[FeastObject] = [*stale_views, *stale_services, *stale_entities]
    return stale


def apply_objects(store: FeatureStore, objects: FeastObjects) -> list[str]:
    """Register the config's objects and remove those it dropped; returns the removed names."""
    stale = stale_objects(store, objects)
    store.apply(objects.all(), objects_to_delete=stale, partial=not stale)
    return [o.name for o in stale]


OnlineWindows = dict[str, tuple[datetime, datetime]]
"""Feature view -> the event-time window its online values are loaded from."""


def online_windows(
    objects: FeastObjects, spans: dict[str, TableSpan], tables_of: dict[str, str]
) -> OnlineWindows:
    """Each view over its own table's range, [first event, last event + 1 s] (the end is
    exclusive in some offline stores), so nothing outside the data is scanned."""
    views = {view.name: spans[tables_of[view.name]] for view in objects.views}
    return {name: (span.start, span.end + timedelta(seconds=1)) for name, span in views.items()}


def materialize_windows(store: FeatureStore, windows: OnlineWindows) -> None:
    """Load the latest value per entity of each view's window into the online store."""
    from components.features.online_load import use_columnar_load
    from components.features.sqlite_writer import use_batched_writer

    if not use_columnar_load(store):  # another engine: the batched writer, if SQLite
        use_batched_writer(store)
    for name, (start, end) in windows.items():
        store.materialize(start_date=start, end_date=end, feature_views=[name])


def windows_as_json(windows: OnlineWindows) -> dict[str, list[str]]:
    return {name: [start.isoformat(), end.isoformat()] for name, (start, end) in windows.items()}


def windows_from_json(data: dict[str, list[str]]) -> OnlineWindows:
    return {
        name: (datetime.fromisoformat(start), datetime.fromisoformat(end))
        for name, (start, end) in data.items()
    }


def materialize(
    store: FeatureStore,
    objects: FeastObjects,
    spans: dict[str, TableSpan],
    tables_of: dict[str, str],
) -> None:
    """Load the latest value per entity of each view into the online store."""
    materialize_windows(store, online_windows(objects, spans, tables_of))
