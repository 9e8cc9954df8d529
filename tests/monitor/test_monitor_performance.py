"""Live performance: feedback joined to predictions, windows, the breach rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.monitoring_config import MonitoringConfig
from components.common.tracking import holdout_metrics
from components.monitor.performance import (
    BREACH,
    NO_BASELINE,
    NOT_ENOUGH_DATA,
    OK,
    auc_standard_error,
    live_performance,
)
from components.monitor.traffic import feature_rows, labelled, read_traffic, window
from components.predictions.files import AppendLog

pytestmark = pytest.mark.unit

CFG = MonitoringConfig()
NOW = pd.Timestamp("2026-01-10T12:00:00Z")


def scored(n: int, seed: int, signal: float) -> pd.DataFrame:
    """Labelled predictions whose scores separate the classes by `signal`."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    logit = -1.2 + signal * (y - 0.25) * 2 + rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"score": p, "label": y.astype(float), "decision": p >= 0.5})


def test_healthy_model_is_ok_and_degraded_one_breaches() -> None:
    good = scored(2_000, seed=1, signal=1.0)
    base = live_performance(good, 0.5, {}, CFG).metrics["roc_auc"]
    holdout = {"roc_auc": base}
    ok = live_performance(scored(2_000, seed=2, signal=1.0), 0.5, holdout, CFG)
    assert ok.status == OK, ok.message
    assert {"roc_auc", "precision", "recall", "brier", "ece"} <= set(ok.metrics)
    bad = live_performance(scored(2_000, seed=3, signal=0.4), 0.5, holdout, CFG)
    assert bad.status == BREACH, bad.message
    assert "below the holdout" in bad.message


def test_noise_of_a_small_window_is_not_a_breach() -> None:
    """Same model, 200 labels: over many windows the breach rate stays small."""
    base = live_performance(scored(50_000, seed=0, signal=1.0), 0.5, {}, CFG).metrics["roc_auc"]
    verdicts = [
        live_performance(scored(200, seed=s, signal=1.0), 0.5, {"roc_auc": base}, CFG).status
        for s in range(200)
    ]
    assert verdicts.count(BREACH) / len(verdicts) <= 0.02


def test_few_or_one_class_labels_are_not_enough_data() -> None:
    few = live_performance(scored(50, seed=1, signal=1.0), 0.5, {"roc_auc": 0.8}, CFG)
    assert few.status == NOT_ENOUGH_DATA and "50 labelled" in few.message
    one = scored(500, seed=1, signal=1.0).assign(label=0.0)
    assert live_performance(one, 0.5, {"roc_auc": 0.8}, CFG).status == NOT_ENOUGH_DATA
    empty = live_performance(scored(1, 1, 1.0).iloc[0:0], 0.5, {}, CFG)
    assert empty.status == NOT_ENOUGH_DATA


def test_missing_holdout_tag_is_no_baseline() -> None:
    result = live_performance(scored(500, seed=1, signal=1.0), 0.5, {}, CFG)
    assert result.status == NO_BASELINE and result.metrics["roc_auc"] > 0.6


def test_holdout_tags_and_auc_error() -> None:
    tags = {"holdout.roc_auc": "0.81", "holdout.brier": "0.1", "seamless.x": "y", "holdout.z": "?"}
    assert holdout_metrics(tags) == {"roc_auc": 0.81, "brier": 0.1}
    assert auc_standard_error(0.8, 100, 400) == pytest.approx(0.0279, abs=0.0005)


def _pred(ts: str, request: str, index: int, entity: int | None, version: str = "1") -> dict:
    return {
        "ts": ts,
        "request_id": request,
        "index": index,
        "entity_id": entity,
        "route": "v1",
        "model_name": "credit_risk",
        "model_version": version,
        "features": {"age": 30 + index, "region": "north"},
        "score": 0.1 * (index + 1),
        "decision": index >= 4,
    }


def test_feedback_joins_by_index_entity_or_request(tmp_path: Path) -> None:
    preds = AppendLog(tmp_path / "predictions", "predictions")
    preds.open()
    preds.append([_pred("2026-01-10T10:00:00+00:00", "r1", i, 100 + i) for i in range(3)])
    preds.append([_pred("2026-01-10T11:00:00+00:00", "r2", 0, None)])
    preds.append([_pred("2026-01-10T11:30:00+00:00", "r3", i, 200 + i) for i in range(2)])
    preds.close()
    fb = AppendLog(tmp_path / "feedback", "feedback")
    fb.open()
    fb.append(
        [
            {"ts": "2026-01-10T11:00:00+00:00", "request_id": "r1", "index": 0, "label": 1},
            {"ts": "2026-01-10T11:00:00+00:00", "request_id": "r1", "entity_id": 102, "label": 0},
            {"ts": "2026-01-10T11:00:00+00:00", "request_id": "r2", "label": True},
            {"ts": "2026-01-10T11:40:00+00:00", "request_id": "r3", "label": 0},
            {"ts": "2026-01-10T11:50:00+00:00", "request_id": "r3", "index": 1, "label": 1},
            {"ts": "2026-01-10T11:50:00+00:00", "request_id": "unknown", "label": 1},
        ]
    )
    fb.close()
    with (tmp_path / "predictions" / "predictions-99999999999999999999-1.jsonl").open("w") as fh:
        fh.write('{"ts": "torn')  # a killed writer's tail is skipped, not fatal
    traffic = read_traffic(tmp_path)
    assert traffic.skipped["torn_tails"]
    joined = labelled(traffic.predictions, traffic.feedback, 1)
    got = {(r.request_id, int(r.index)): int(r.label) for r in joined.itertuples()}
    # r1/1 has no label; r3/1's later label replaces the request-wide one.
    assert got == {("r1", 0): 1, ("r1", 2): 0, ("r2", 0): 1, ("r3", 0): 0, ("r3", 1): 1}

    recent = window(traffic.predictions, NOW, hours=1.5, max_rows=None)
    assert list(recent["request_id"]) == ["r2", "r3", "r3"]
    assert len(window(traffic.predictions, NOW, hours=None, max_rows=2)) == 2
    frame, lacking = feature_rows(recent, ["age", "region", "income"])
    assert lacking == ["income"] and list(frame.columns) == ["age", "region", "income"]


def test_no_logs_is_an_empty_traffic(tmp_path: Path) -> None:
    traffic = read_traffic(tmp_path)
    assert traffic.predictions.empty and traffic.feedback.empty
    assert labelled(traffic.predictions, traffic.feedback, 1).empty
    assert window(traffic.predictions, NOW, 24, 10).empty
