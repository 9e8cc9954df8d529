"""The point-in-time training set: every label row joined with the features known at its time."""

from __future__ import annotations

from typing import Any

import pandas as pd
from feast import FeatureService, FeatureStore

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.labels import check_labels
from components.features.store import TableSpan, require_columns, to_utc

# Offline stores whose point-in-time join loses entity rows (Feast 0.67 Dask store): it
# drops a row when the entity has values but none inside a view's ttl window, and that
# drop takes the row's other views with it. Joined one view at a time there, a lost row
# only means "no value in this view", which the left merge below turns into nulls.
PER_VIEW_STORES = {"file", "dask"}


def entity_frame(config: SeamlessConfig, labels: pd.DataFrame) -> pd.DataFrame:
    """Label rows as Feast's entity_df: entity, the label's own UTC timestamp, label.

    Joining at each label's own time (not "now") is what makes the join point-in-time.
    With `labels.unknown_values: drop`, rows whose label is null or none of the classes
    are left out here (ingest counted them and kept them in the table, for features).
    """
    table = config.labels.table
    key, ts, label = config.entity_key(), config.timestamp_key(table), config.labels.label_column
    require_columns(labels, table, {"entity": key, "timestamp": ts, "label": label})
    out = labels[[key, ts, label]].reset_index(drop=True)
    # Counted before unknown labels are dropped, as the Spark engine counts them; rows
    # are numbered from 1 in the labels snapshot.
    null_ts = out[ts].isna()
    if null_ts.any():
        raise SeamlessError(
            f"Labels table '{table}' has {int(null_ts.sum())} rows with a null timestamp "
            f"'{ts}' (first at data row {int(null_ts.idxmax()) + 1}); each label needs its "
            "own time."
        )
    null_key = out[key].isna()
    if null_key.any():
        raise SeamlessError(
            f"Labels table '{table}' has {int(null_key.sum())} rows with a null entity "
            f"'{key}' (first at data row {int(null_key.idxmax()) + 1})."
        )
    if config.labels.unknown_values == "drop":
        out = out.loc[~check_labels(config.labels, out[label]).unknown].reset_index(drop=True)
    # One resolution on both sides of the merge back in `historical_features`.
    out[ts] = to_utc(out[ts]).astype("datetime64[ns, UTC]")
    if config.tables[table].columns.get(key, "int") == "int":
        out[key] = out[key].astype("int64")
    return out


def historical_features(
    store: FeatureStore, service: FeatureService, entity_df: pd.DataFrame, key: str, ts: str
) -> pd.DataFrame:
    """Point-in-time join of the service's features onto `entity_df`, its rows and order kept.

    Feast joins the distinct (entity, timestamp) pairs; each label row then takes its
    pair's features by a left merge, so duplicate label rows (which some offline stores
    collapse) and rows a store drops get their values or nulls, and the order is the labels'.
    """
    pairs = entity_df[[key, ts]].drop_duplicates(ignore_index=True)
    if store.config.offline_store.type in PER_VIEW_STORES:
        requests: list[FeatureService | list[str]] = [
            [f"{p.name}:{f.name}" for f in p.features] for p in service.feature_view_projections
        ]
    else:
        requests = [service]
    out = entity_df
    for features in requests:
        part = store.get_historical_features(entity_df=pairs, features=features).to_df()
        part[ts] = to_utc(part[ts]).astype("datetime64[ns, UTC]")
        names = [c for c in part.columns if c not in (key, ts)]
        out = out.merge(part[[key, ts, *names]], on=[key, ts], how="left", validate="many_to_one")
    if len(out) != len(entity_df):
        raise SeamlessError(
            f"The point-in-time join returned {len(out)} rows for {len(entity_df)} label rows."
        )
    return out


def order_columns(config: SeamlessConfig, joined: pd.DataFrame) -> pd.DataFrame:
    """entity, timestamp, the service's features in config order, label."""
    key, ts = config.entity_key(), config.timestamp_key(config.labels.table)
    cols = [key, ts, *config.feature_types(), config.labels.label_column]
    out = joined[cols].copy()
    out[ts] = to_utc(out[ts])
    return out


def empty_views(config: SeamlessConfig, training: pd.DataFrame) -> list[str]:
    """Views none of whose features joined for any label row."""
    return [v.name for v in config.features.views if training[v.features].isna().all(axis=None)]


def check_joined(
    config: SeamlessConfig, training: pd.DataFrame, spans: dict[str, TableSpan]
) -> list[str]:
    """Fail when nothing joined at all; return the views that joined nothing (for a warning)."""
    empty = empty_views(config, training)
    if len(training) and len(empty) == len(config.features.views):
        ts = training[config.timestamp_key(config.labels.table)]
        raise SeamlessError(no_join_problem(config, len(training), ts.min(), ts.max(), spans))
    return empty


def no_join_problem(
    config: SeamlessConfig, rows: int, first: Any, last: Any, spans: dict[str, TableSpan]
) -> str:
    """The sentence for a join in which no feature value met any label row."""
    windows = "; ".join(
        f"view '{v.name}' ttl {v.ttl_days} d, data {spans[v.table].start:%Y-%m-%d}.."
        f"{spans[v.table].end:%Y-%m-%d}"
        for v in config.features.views
    )
    return (
        f"No feature value joined any of the {rows} label rows (labels "
        f"{first:%Y-%m-%d}..{last:%Y-%m-%d}; {windows}): check that labels fall "
        f"after the feature data and within each view's ttl, and that entity ids match."
    )
