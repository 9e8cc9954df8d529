"""Served traffic from the workspace's prediction and feedback logs, cut into windows."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.serve.prediction_log import ReadStats, read_log

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


@dataclass
class Traffic:
    """Every readable prediction and feedback record, plus what the reads skipped."""

    predictions: pd.DataFrame
    feedback: pd.DataFrame
    skipped: dict[str, list[str]] = field(default_factory=dict)


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for c in columns:
        if c not in df.columns:
            df[c] = None
    df["ts"] = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="ISO8601")
    return df


def log_location(workspace: Path, log_url: str | None = None) -> str:
    """Where `read_traffic` reads predictions from, for messages (no password)."""
    from components.serve.prediction_log_pg import redact

    url = log_url or os.environ.get("SEAMLESS_SERVE_LOG_URL") or None
    return f"{redact(url)} (table seamless_{PREDICTIONS})" if url else str(workspace / PREDICTIONS)


def read_traffic(workspace: Path, log_url: str | None = None) -> Traffic:
    """Read `<workspace>/predictions/` and `<workspace>/feedback/` (torn tails skipped).

    With `log_url` (default: SEAMLESS_SERVE_LOG_URL, as serving uses) the logs are read
    from PostgreSQL tables instead.
    """
    url = log_url or os.environ.get("SEAMLESS_SERVE_LOG_URL") or None
    pstats, fstats = ReadStats(), ReadStats()
    preds = list(read_log(url or workspace / PREDICTIONS, PREDICTIONS, pstats))
    fb = list(read_log(url or workspace / FEEDBACK, FEEDBACK, fstats))
    predictions = _frame(preds, _PRED_COLUMNS)
    predictions["model_version"] = (
        predictions["model_version"].astype("object").map(lambda v: None if v is None else str(v))
    )
    predictions["score"] = pd.to_numeric(predictions["score"], errors="coerce")
    feedback = _frame(fb, ["ts", "request_id", "index", "entity_id", "label"])
    skipped = {
        "torn_tails": pstats.torn_tails + fstats.torn_tails,
        "corrupt_lines": pstats.corrupt_lines + fstats.corrupt_lines,
    }
    return Traffic(predictions=predictions, feedback=feedback, skipped=skipped)


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


def _positive(label: Any, positive_class: int | str) -> float:
    if label is None or (isinstance(label, float) and np.isnan(label)):
        return np.nan
    if isinstance(label, bool):  # JSON true/false against a 1/0 positive class
        label = int(label)
    return 1.0 if str(label) == str(positive_class) else 0.0


def labelled(
    predictions: pd.DataFrame, feedback: pd.DataFrame, positive_class: int | str
) -> pd.DataFrame:
    """Predictions that received a label, with `label` 0/1 and the feedback time.

    Feedback names a prediction by request id plus its `index` in the request, or plus
    its `entity_id`, or by the request id alone (every prediction of that request). A
    later label for the same prediction replaces an earlier one.
    """
    out = predictions.assign(label=np.nan)
    if feedback.empty or predictions.empty:
        return out.iloc[0:0]
    fb = feedback.assign(
        y=[_positive(v, positive_class) for v in feedback["label"]],
        request_id=feedback["request_id"].astype(str),
    ).dropna(subset=["y"])
    fb = fb.sort_values("ts", kind="stable")
    keyed = predictions.reset_index(drop=True).assign(
        _row=lambda d: np.arange(len(d)),
        request_id=lambda d: d["request_id"].astype(str),
        _index=lambda d: pd.to_numeric(d["index"], errors="coerce"),
        _entity=lambda d: d["entity_id"].map(lambda v: None if v is None else str(v)),
    )
    by_index = fb[fb["index"].notna()].assign(_index=lambda d: pd.to_numeric(d["index"]))
    by_entity = fb[fb["index"].isna() & fb["entity_id"].notna()].assign(
        _entity=lambda d: d["entity_id"].map(str)
    )
    by_request = fb[fb["index"].isna() & fb["entity_id"].isna()]
    matches = [
        keyed[["_row", "request_id", "_index"]].merge(
            by_index[["request_id", "_index", "y", "ts"]], on=["request_id", "_index"]
        ),
        keyed[["_row", "request_id", "_entity"]].merge(
            by_entity[["request_id", "_entity", "y", "ts"]], on=["request_id", "_entity"]
        ),
        keyed[["_row", "request_id"]].merge(by_request[["request_id", "y", "ts"]], on="request_id"),
    ]
    found = pd.concat([m[["_row", "y", "ts"]] for m in matches], ignore_index=True)
    if found.empty:
        return out.iloc[0:0]
    latest = found.sort_values("ts", kind="stable").drop_duplicates("_row", keep="last")
    result = predictions.reset_index(drop=True).iloc[latest["_row"].to_numpy()].copy()
    result["label"] = latest["y"].to_numpy()
    result["label_ts"] = latest["ts"].to_numpy()
    return result.sort_values("ts", kind="stable").reset_index(drop=True)
