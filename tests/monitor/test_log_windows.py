"""Monitoring reads the windows it reports on, not the log's whole history.

The log's filters (model, version, time, the first N by time) give, from segment files
and from PostgreSQL, what filtering every record with pandas gives; a monitoring run over
weeks of older history and other models' traffic judges the same rows as before and
holds only what its windows need."""

# No `from __future__ import annotations`: KFP reads annotations in imported test modules.
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.batch.stage import log_records
from components.common.config import default_config_path, load_config
from components.common.monitoring_config import monitoring_config
from components.monitor.stage import run_monitoring
from components.monitor.traffic import read_first_served, read_traffic
from components.predictions.batch_segment import SegmentWriter
from components.predictions.files import AppendLog
from components.predictions.postgres import PgLog
from components.predictions.reader import read_log
from components.predictions.records import LogQuery, ReadStats
from tests.factories import quick_model, train_and_register_once
from tests.helpers.configs import labels_only_config
from tests.helpers.postgres import PostgresServer, pg_server
from tests.serving.pg_control import fresh_database

__all__ = ["pg_server"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH_TS = "2026-01-05T00:00:00+00:00"
FEATURES = frozenset({"features"})


def _records() -> list[dict[str, Any]]:
    """Two models, three versions (one logged as a number), times over ten days with
    ties, naive text, and rows whose time is missing or unreadable."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(400):
        model = "m" if i % 3 else "other"
        version: Any = ["1", "2", 2][i % 3] if model == "m" else "1"
        ts: Any = (T0 + timedelta(hours=int(rng.integers(0, 240)))).isoformat()
        if i % 50 == 7:
            ts = ts[:19]  # naive: read as UTC
        if i % 97 == 5:
            ts = None if i % 2 else "not a time"
        out.append(
            {
                "ts": ts,
                "request_id": f"r{i}",
                "index": 0,
                "model_name": model,
                "model_version": version,
                "features": {"x": float(i)},
                "score": float(rng.random()),
            }
        )
    return out


def _batch() -> Any:
    """A batch scoring run of model `m` v7 at BATCH_TS (one Parquet segment)."""
    rng = np.random.default_rng(1)
    features = pd.DataFrame({"income": rng.random(30)})
    scores = rng.random(30)
    out = pd.DataFrame(
        {
            "customer_id": np.arange(30),
            "as_of": pd.Timestamp("2025-12-30", tz="UTC"),
            "score": scores,
            "decision": scores >= 0.5,
            "model_version": "7",
        }
    )
    batch = log_records(labels_only_config(), features, out, "batch-1")
    batch.constants["ts"] = BATCH_TS
    batch.constants["model_name"] = "m"
    return batch


def _expected(records: list[dict[str, Any]], **want: Any) -> list[dict[str, Any]]:
    """The oracle: every record in a frame, filtered and ordered by pandas."""
    frame = pd.DataFrame({"i": range(len(records))})
    frame["ts"] = pd.to_datetime(
        [r.get("ts") for r in records], utc=True, errors="coerce", format="ISO8601"
    )
    keep = pd.Series(True, index=frame.index)
    if "model_name" in want:
        keep &= pd.Series([r.get("model_name") == want["model_name"] for r in records])
    if "model_version" in want:
        keep &= pd.Series([str(r.get("model_version")) == want["model_version"] for r in records])
    if "since" in want:
        keep &= frame["ts"] > pd.Timestamp(want["since"])
    rows = frame[keep]
    if "first" in want:
        rows = rows[rows["ts"].notna()].sort_values("ts", kind="stable").head(want["first"])
    return [records[i] for i in rows["i"]]


QUERIES = [
    {"model_name": "m"},
    {"since": T0 + timedelta(days=6)},
    {"model_name": "m", "since": T0 + timedelta(days=3, hours=5)},
    {"model_name": "m", "model_version": "2", "first": 40},
    {"model_name": "m", "model_version": "7", "first": 10},
    {"model_name": "other", "first": 1000},
    {"model_name": "nobody"},
]


@pytest.fixture(scope="module")
def logged() -> list[dict[str, Any]]:
    """What the logs hold, in write order: JSON lines, the batch, more JSON lines."""
    return [*_records()[:250], *_batch().records(), *_records()[250:]]


def _fill_files(folder: Path) -> None:
    records = _records()
    for part in (records[:250], None, records[250:]):
        if part is None:
            SegmentWriter(folder, "predictions").append_batch(_batch())
            continue
        log = AppendLog(folder, "predictions")  # a new segment each time, after the last
        log.open()
        log.append(part)
        log.close()


@pytest.mark.unit
@pytest.mark.parametrize("want", QUERIES, ids=lambda q: ",".join(q))
def test_files_keep_what_pandas_keeps(
    tmp_path: Path, logged: list[dict[str, Any]], want: dict[str, Any]
) -> None:
    _fill_files(tmp_path)
    stats = ReadStats()
    got = list(read_log(tmp_path, "predictions", stats, LogQuery(**want)))
    assert got == _expected(logged, **want)
    assert stats.records >= len(got) and stats.segments == 3


def _without_features(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "features"} for r in records]


@pytest.mark.unit
def test_files_read_without_features_on_request(
    tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    _fill_files(tmp_path)
    lean = list(read_log(tmp_path, "predictions", query=LogQuery(model_name="m", omit=FEATURES)))
    assert lean == _without_features(_expected(logged, model_name="m"))
    with pytest.raises(ValueError, match="cannot omit a field it filters on"):
        LogQuery(since=T0, omit=frozenset({"ts"}))
    with pytest.raises(ValueError, match="must be an aware time"):
        LogQuery(since=T0.replace(tzinfo=None))


@pytest.mark.unit
def test_a_batch_segment_outside_the_query_is_skipped_from_its_footer(tmp_path: Path) -> None:
    SegmentWriter(tmp_path, "predictions").append_batch(_batch())
    for want in ({"model_name": "other"}, {"since": datetime(2026, 1, 6, tzinfo=UTC)}):
        stats = ReadStats()
        assert list(read_log(tmp_path, "predictions", stats, LogQuery(**want))) == []
        assert stats.records == 0 and stats.corrupt_lines == []


@pytest.mark.postgres
def test_postgres_selects_what_the_files_keep(
    pg_server: PostgresServer, logged: list[dict[str, Any]]
) -> None:
    url = fresh_database(pg_server, "log_windows")
    records = _records()
    log = PgLog(url, "predictions")
    log.open()
    # Rows without a time cannot go in a timestamptz column as text: the table's own.
    timed = [r for r in records if pd.notna(pd.to_datetime(r["ts"], errors="coerce"))]
    log.append(timed[:250])
    log.append_batch(_batch())
    log.append(timed[250:])
    log.close()
    in_table = list(read_log(url, "predictions"))
    for want in QUERIES:
        got = list(read_log(url, "predictions", query=LogQuery(**want)))
        assert got == _expected(in_table, **want), want
    lean = read_log(url, "predictions", query=LogQuery(model_name="m", omit=FEATURES))
    assert list(lean) == _without_features(_expected(in_table, model_name="m"))
    # Feedback has no model: asking for one finds nothing, as in the files.
    assert list(read_log(url, "feedback", query=LogQuery(model_name="m"))) == []


@pytest.mark.unit
def test_traffic_and_baseline_reads_hold_only_their_rows(tmp_path: Path) -> None:
    _fill_files(tmp_path / "predictions")
    since = T0 + timedelta(days=8)
    traffic = read_traffic(tmp_path, model_name="m", since=since)
    assert set(traffic.predictions["model_name"]) == {"m"}
    assert (traffic.predictions["ts"] > pd.Timestamp(since)).all()
    base = read_first_served(tmp_path, "m", "2", 25)
    assert len(base) == 25 and set(base["model_version"]) == {"2"}
    assert base["ts"].is_monotonic_increasing


# ------------------------------------------------ a whole monitoring run


@pytest.fixture(scope="module")
def _trained(store: Path) -> dict[str, Any]:
    config = quick_model(load_config(default_config_path()))
    return train_and_register_once(store, config, "c" * 64)


@pytest.mark.unit
@pytest.mark.slow
def test_history_outside_the_windows_changes_nothing(
    registered: dict[str, Any], tmp_path: Path
) -> None:
    """The same run over a log with three weeks of older traffic and another model's:
    the same baseline, window, verdicts and labels; the report says what was read."""
    from tests.monitor.test_retrain_guard import NOW, _serve

    cfg, version = registered["config"], registered["version"]
    # Each run alone: the retrain guard would remember the first run's decision.
    monitoring = monitoring_config(cfg).model_copy(update={"retrain_requires_change": False})
    cfg = cfg.model_copy(update={"monitoring": monitoring})
    lean, full = tmp_path / "lean", tmp_path / "full"
    for ws in (lean, full):
        # The baseline began long ago; the window is the last day's traffic.
        _serve(ws, cfg, version, 500, seed=1, start=NOW - timedelta(days=30))
    for day in range(3, 24):  # older history: a day's traffic, labelled
        _serve(full, cfg, version, 60, seed=100 + day, start=NOW - timedelta(days=day))
    other = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": "other"})})
    _serve(full, other, version, 300, seed=7, start=NOW - timedelta(hours=5))
    for ws in (lean, full):
        _serve(ws, cfg, version, 400, seed=2, start=NOW - timedelta(hours=20))

    def run(ws: Path) -> Any:
        return run_monitoring(
            cfg, workspace=ws, now=NOW, log_to_mlflow=False, label_window_hours=48, min_rows=100
        )

    a, b = run(lean), run(full)
    assert a.reference == b.reference and a.reference["rows"] == 500
    assert a.drift.rows == b.drift.rows == 400
    assert a.drift.to_dict() == b.drift.to_dict()
    assert a.performance.to_dict() == b.performance.to_dict()
    assert a.performance.labelled == 400
    assert (a.decision, a.reason) == (b.decision, b.reason)
    since = (NOW - timedelta(hours=48)).isoformat()
    assert b.window["read_since"] == since and b.window["drift"] == a.window["drift"]
    # Only feedback since then was read: none of the history's 21 days of labels, and
    # the other model's 300 (feedback names no model), which match none of v1's.
    more = {"feedback": 300, "unmatched": 300}
    assert b.window["labels"] == {
        **a.window["labels"],
        **{k: a.window["labels"][k] + n for k, n in more.items()},
    }
