"""Served traffic from the workspace's prediction and feedback logs, cut into windows."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import LabelsConfig, LabelValue
from components.common.labels import apply_value_map, canonical, check_labels, positive_mask
from components.predictions.reader import read_log
from components.predictions.records import LogQuery, ReadStats

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
_PRED_COLUMNS = [
    "ts",
    "request_id",
    "index",
    "entity_id",
    "model_name",
    "model_version",
    "score",
    "decision",
    "features",
]


AS_LOGGED = ("request_id", "index", "entity_id", "label")
"""Columns kept as the logged values (object dtype), never upcast to float64 next to
nulls; ids are joined and labels compared as `id_key` text."""


@dataclass
class Traffic:
    """The readable prediction and feedback records a run asked for, plus what the
    reads skipped."""

    predictions: pd.DataFrame
    feedback: pd.DataFrame
    skipped: dict[str, list[str]] = field(default_factory=dict)


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for c in columns:
        if c not in df.columns:
            df[c] = None
    # Ids as logged: a column of ints with some nulls (requests without entity ids)
    # would otherwise become float64, and 2**53 + 1 or "00042" would not survive it.
    for c in AS_LOGGED:
        if c in columns:
            df[c] = pd.Series([r.get(c) for r in records], index=df.index, dtype=object)
    df["ts"] = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="ISO8601")
    return df


def log_location(workspace: Path, log_url: str | None = None) -> str:
    """Where `read_traffic` reads predictions from, for messages (no password)."""
    from components.predictions.postgres import redact

    url = _log_url(log_url)
    return f"{redact(url)} (table seamless_{PREDICTIONS})" if url else str(workspace / PREDICTIONS)


def read_traffic(
    workspace: Path,
    log_url: str | None = None,
    *,
    model_name: str | None = None,
    since: datetime | None = None,
    features: bool = True,
) -> Traffic:
    """Read `<workspace>/predictions/` and `<workspace>/feedback/` (torn tails skipped):
    the predictions of `model_name` and both logs' records after `since`, when given,
    so a run holds what its windows need, not the log's whole history; `features=False`
    reads the predictions without their features (most of their bytes).

    With `log_url` (default: SEAMLESS_SERVE_LOG_URL, as serving uses) the logs are read
    from PostgreSQL tables instead, which select the records themselves.
    """
    url = _log_url(log_url)
    pstats, fstats = ReadStats(), ReadStats()
    omit = frozenset() if features else frozenset({"features"})
    wanted = LogQuery(model_name=model_name, since=since, omit=omit)
    preds = read_log(url or workspace / PREDICTIONS, PREDICTIONS, pstats, wanted)
    fb = read_log(url or workspace / FEEDBACK, FEEDBACK, fstats, LogQuery(since=since))
    predictions = _predictions(list(preds))
    feedback = _frame(list(fb), ["ts", "request_id", "index", "entity_id", "label"])
    skipped = {
        "torn_tails": pstats.torn_tails + fstats.torn_tails,
        "corrupt_lines": pstats.corrupt_lines + fstats.corrupt_lines,
    }
    return Traffic(predictions=predictions, feedback=feedback, skipped=skipped)


def read_first_served(
    workspace: Path, model_name: str, version: str, rows: int, log_url: str | None = None
) -> pd.DataFrame:
    """The first `rows` predictions of `model_name` v`version` by time (ties in write
    order): its post-deployment baseline, however long ago it began. Memory holds
    `rows` records, whatever the log's length (PostgreSQL sorts and limits them)."""
    source = _log_url(log_url) or workspace / PREDICTIONS
    wanted = LogQuery(model_name=model_name, model_version=version, first=rows)
    first = read_log(source, PREDICTIONS, query=wanted)
    return _predictions(list(first))


def _log_url(log_url: str | None) -> str | None:
    return log_url or os.environ.get("SEAMLESS_SERVE_LOG_URL") or None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _predictions(records: list[dict[str, Any]]) -> pd.DataFrame:
    predictions = _frame(records, _PRED_COLUMNS)
    predictions["model_version"] = predictions["model_version"].astype("object").map(_text)
    predictions["score"] = pd.to_numeric(predictions["score"], errors="coerce")
    return predictions


def window(
    frame: pd.DataFrame,
    now: pd.Timestamp,
    hours: float | None,
    max_rows: int | None,
) -> pd.DataFrame:
    """Rows with `ts` in the last `hours` before `now`, at most the latest `max_rows`."""
    rows = frame[frame["ts"].notna() & (frame["ts"] <= now)]
    if hours is not None:
        rows = rows[rows["ts"] > now - pd.Timedelta(hours=hours)]
    rows = rows.sort_values("ts", kind="stable")
    if max_rows is not None:
        rows = rows.tail(max_rows)
    return rows.reset_index(drop=True)


def feature_rows(predictions: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The `features` of each prediction as columns, and the names some record lacks."""
    dicts = [f if isinstance(f, dict) else {} for f in predictions["features"]]
    lacking = [n for n in names if any(n not in d for d in dicts)]
    frame = pd.DataFrame.from_records(dicts) if dicts else pd.DataFrame()
    return frame.reindex(columns=names), lacking


def id_key(value: Any) -> str | None:
    """An id (request id, index, entity id) as join text: ints, integral floats and
    their text alike ("118968" for 118968, 118968.0 and "118968"); None for a null/NaN.

    Prediction and feedback frames are joined on these keys, so an id column that pandas
    read as float64 (ints next to nulls) still matches the feedback's ints. The same
    canonical text compares label values (components/common/labels.py).
    """
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return canonical(value)


def _keys(values: pd.Series) -> pd.Series:
    return pd.Series([id_key(v) for v in values], index=values.index, dtype=object)


@dataclass
class JoinStats:
    """What `labelled` did with the feedback: every record is accounted for."""

    feedback: int = 0
    """Feedback records given."""
    without_label: int = 0
    """Records whose label is null (not usable)."""
    unknown_label: int = 0
    """Records whose label is none of the classes (not usable, not a negative)."""
    unknown_values: dict[str, int] = field(default_factory=dict)
    """Those labels' values (as text) and their counts."""
    matched: int = 0
    """Records that named at least one of the given predictions."""
    unmatched: int = 0
    """Records that named none (another model/version, a prediction outside the log or
    older than the windows read, or a wrong id)."""
    replaced: int = 0
    """Labels of a prediction that a later label for the same prediction replaced."""
    labelled: int = 0
    """Predictions that got a label."""

    def to_dict(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self.__dict__.items()}


def _feedback_labels(values: pd.Series, labels: LabelsConfig, stats: JoinStats) -> pd.Series:
    """1.0 / 0.0 per feedback label; NaN for a missing label or one that is none of the
    classes (counted in `stats`, never a silent negative)."""
    raw = values.astype(object)
    positive = labels.positive_class
    if isinstance(positive, int) and not isinstance(positive, bool):
        # JSON true/false against a 1/0 positive class.
        raw = raw.map(lambda v: int(v) if isinstance(v, bool | np.bool_) else v)
    raw, _ = apply_value_map(labels, raw)
    check = check_labels(labels, raw)
    missing = raw.isna().to_numpy(bool)
    unknown = check.unknown & ~missing
    stats.without_label += int(missing.sum())
    stats.unknown_label += int(unknown.sum())
    for value, n in check.value_counts.items():
        if value != "null":
            stats.unknown_values[value] = stats.unknown_values.get(value, 0) + n
    y = pd.Series(positive_mask(labels, raw).astype(float), index=values.index)
    return y.where(~(missing | unknown))


def labelled(
    predictions: pd.DataFrame,
    feedback: pd.DataFrame,
    labels: LabelsConfig | LabelValue,
    stats: JoinStats | None = None,
) -> pd.DataFrame:
    """Predictions that received a label, with `label` 0/1 and the feedback time.

    Feedback names a prediction by request id plus its `index` in the request, or plus
    its `entity_id`, or by the request id alone (every prediction of that request). A
    later label for the same prediction replaces an earlier one. Ids are compared as
    `id_key` text, whatever dtype the frames carry. `stats` (when given) counts what
    happened to every feedback record. `labels` is the config's labels section (its
    classes and value map apply to feedback as to training data) or, for a bare positive
    class, the negative class is the one other value the feedback holds.
    """
    if not isinstance(labels, LabelsConfig):
        labels = LabelsConfig(table="feedback", label_column="label", positive_class=labels)
    stats = stats if stats is not None else JoinStats()
    stats.feedback += len(feedback)
    out = predictions.assign(label=np.nan)
    if feedback.empty or predictions.empty:
        nulls = int(feedback["label"].isna().sum()) if "label" in feedback else 0
        stats.without_label += nulls
        stats.unmatched += len(feedback) - nulls
        return out.iloc[0:0]
    fb = feedback.reset_index(drop=True).assign(
        _fb=lambda d: np.arange(len(d)),
        y=_feedback_labels(feedback["label"].reset_index(drop=True), labels, stats).to_numpy(),
        request_id=lambda d: _keys(d["request_id"]),
        _index=lambda d: _keys(d["index"]),
        _entity=lambda d: _keys(d["entity_id"]),
    )
    usable = fb.dropna(subset=["y"])
    fb = usable.sort_values("ts", kind="stable")
    keyed = predictions.reset_index(drop=True).assign(
        _row=lambda d: np.arange(len(d)),
        request_id=lambda d: _keys(d["request_id"]),
        _index=lambda d: _keys(d["index"]),
        _entity=lambda d: _keys(d["entity_id"]),
    )
    has_index, has_entity = fb["_index"].notna(), fb["_entity"].notna()
    by_index = fb[has_index]
    by_entity = fb[~has_index & has_entity]
    by_request = fb[~has_index & ~has_entity]
    wanted = ["_fb", "y", "ts"]
    matches = [
        keyed[["_row", "request_id", "_index"]].merge(
            by_index[["request_id", "_index", *wanted]], on=["request_id", "_index"]
        ),
        keyed[["_row", "request_id", "_entity"]].merge(
            by_entity[["request_id", "_entity", *wanted]], on=["request_id", "_entity"]
        ),
        keyed[["_row", "request_id"]].merge(by_request[["request_id", *wanted]], on="request_id"),
    ]
    found = pd.concat([m[["_row", *wanted]] for m in matches], ignore_index=True)
    stats.matched += int(found["_fb"].nunique())
    stats.unmatched += len(fb) - int(found["_fb"].nunique())
    if found.empty:
        return out.iloc[0:0]
    latest = found.sort_values("ts", kind="stable").drop_duplicates("_row", keep="last")
    stats.replaced += len(found) - len(latest)
    stats.labelled += len(latest)
    result = predictions.reset_index(drop=True).iloc[latest["_row"].to_numpy()].copy()
    result["label"] = latest["y"].to_numpy()
    result["label_ts"] = latest["ts"].to_numpy()
    return result.sort_values("ts", kind="stable").reset_index(drop=True)
