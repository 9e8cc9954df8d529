"""The features stage: publish tables to Feast and build the point-in-time training set.

`build_features` is what the KFP component calls; `online_features` is what serving
calls. Both work on a Feast repo folder (see `components.common.env.feast_repo_path`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from components.common.config import SeamlessConfig
from components.common.env import disable_telemetry
from components.common.errors import SeamlessError
from components.features.repo import build_objects, ensure_repo
from components.features.store import (
    TableSpan,
    apply_objects,
    materialize_windows,
    online_windows,
    open_store,
    require_columns,
    windows_as_json,
    write_snapshots,
)
from components.features.training_set import (
    check_joined,
    entity_frame,
    historical_features,
    order_columns,
)

log = logging.getLogger(__name__)


class PhaseTimer:
    """Seconds per phase of the features step, for its info (`timer("phase")` ends one)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round(now - self._start, 3)
        self._start = now


def build_features(
    config: SeamlessConfig,
    tables: dict[str, pd.DataFrame],
    table_hashes: dict[str, str],
    repo_path: Path,
    release_inputs: bool = False,
    online: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Publish the feature tables to Feast and return (training set, info).

    The training set has one row per label row, in the labels' order: entity,
    label timestamp, the feature service's features as known at that timestamp
    (null when no value lies within the view's ttl), and the label.

    With `online` (default) the online store is loaded too; without, the info's
    `online_windows` say what to load (the pipeline's materialize step, beside training).

    With `release_inputs` the caller hands `tables` over: the dict is emptied once the
    snapshots are written, so the input frames (the step's largest) are freed before
    materialization and the join, which need only the snapshots and the label rows.
    """
    disable_telemetry()
    lap = PhaseTimer()
    timings = lap.timings

    labels_table = config.labels.table
    if labels_table not in tables:
        raise SeamlessError(
            f"The labels table '{labels_table}' is not among the input tables {sorted(tables)}."
        )
    # Check labels before touching the repo so a bad input leaves nothing published.
    entity_df = entity_frame(config, tables[labels_table])
    for view in config.features.views:
        if view.table in tables:
            require_columns(
                tables[view.table],
                view.table,
                {f"feature (view '{view.name}')": f for f in view.features},
            )
    lap("prepare")

    ensure_repo(repo_path, config.features.project)
    spans = write_snapshots(config, tables, table_hashes, repo_path)
    if release_inputs:
        tables.clear()
    lap("write")

    # Events pushed by the stream consumer join the views they belong to (components/stream).
    from components.stream.pushed import publish_pushed

    pushed = publish_pushed(config, repo_path, table_hashes)
    spans = widen_to_pushed(config, spans, pushed)
    store = open_store(repo_path)
    objects = build_objects(config, repo_path, table_hashes, pushed=pushed)
    removed = apply_objects(store, objects)
    lap("apply")

    windows = online_windows(objects, spans, {v.name: v.table for v in config.features.views})
    if online:
        materialize_windows(store, windows)
        # Feast's arrow-to-proto conversion leaves freed buffers in arrow's allocator pool;
        # hand them back before the join needs its own.
        pa.default_memory_pool().release_unused()
        lap("materialize")

    key, ts = config.entity_key(), config.timestamp_key(labels_table)
    joined = historical_features(store, objects.service, entity_df, key, ts)
    training = order_columns(config, joined)
    empty = check_joined(config, training, spans)
    lap("historical_join")

    if empty:
        log.warning("Feature views %s joined no value for any label row.", empty)
    features = list(config.feature_types())
    info: dict[str, Any] = {
        "feature_service": config.features.service,
        "project": store.project,
        "views": [v.name for v in config.features.views],
        "features": features,
        "rows": len(training),
        "materialized_entities": len(frozenset().union(*(s.keys for s in spans.values()))),
        "empty_views": empty,
        "removed_objects": removed,
        "null_fraction": {f: round(float(training[f].isna().mean()), 4) for f in features},
        "tables": {t: s.describe() for t, s in spans.items()},
        "pushed_rows": {v: p.pushed_rows for v, p in pushed.items()},
        "online_windows": windows_as_json(windows),
        "materialized": online,
        "timings_s": timings,
    }
    timings["total"] = round(sum(timings.values()), 3)
    return training, info


def widen_to_pushed(
    config: SeamlessConfig, spans: dict[str, TableSpan], pushed: dict[str, Any]
) -> dict[str, TableSpan]:
    """Table spans widened to the pushed events' times, so materialization loads the
    newest value of each entity, pushed or not (SQLite's store overwrites with whatever
    it is given)."""
    out = dict(spans)
    for view in config.features.views:
        if view.name in pushed:
            span, p = out[view.table], pushed[view.name]
            out[view.table] = replace(
                span, start=min(span.start, p.start), end=max(span.end, p.end)
            )
    return out


def online_features(repo_path: Path, config: SeamlessConfig, entity_ids: list[Any]) -> pd.DataFrame:
    """Latest materialized feature values for `entity_ids`, one row each, in the given order.

    An entity the online store does not know comes back with every feature null, not
    an error: callers (serving) must detect such rows themselves.
    """
    disable_telemetry()
    store = open_store(repo_path)
    service = store.get_feature_service(config.features.service)
    key = config.entity_key()
    response = store.get_online_features(features=service, entity_rows={key: list(entity_ids)})
    out = response.to_df()
    return out[[key, *config.feature_types()]]


def materialize_online(repo_path: Path, config: SeamlessConfig) -> dict[str, Any]:
    """Bring the online store up to now for every view of the config (the scheduled job).

    Feast remembers each view's last materialized time, so a run only moves what is new;
    a killed run is simply repeated by the next one.
    """
    from datetime import UTC, datetime

    from components.features.store import open_store

    store = open_store(repo_path)
    views = [view.name for view in config.features.views]
    known = {fv.name for fv in store.list_feature_views()}
    missing = [v for v in views if v not in known]
    if missing:
        raise SeamlessError(
            f"Feature views {missing} are not in the Feast registry; run the training "
            "pipeline's features step first."
        )
    end = datetime.now(UTC)
    try:
        store.materialize_incremental(end_date=end, feature_views=views)
    except (OSError, sqlite3.Error) as exc:
        online = getattr(store.config.online_store, "path", None) or store.config.online_store.type
        raise SeamlessError(f"Cannot write the online store ({online}): {exc}.") from None
    return {"views": views, "end": end.isoformat()}
