"""Post-deploy check and the audited promote/rollback operations (real MLflow registry)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.common.config import PromotionConfig, SeamlessConfig
from components.common.errors import SeamlessError
from components.common.tracking import CHAMPION, PREVIOUS_CHAMPION, mlflow_client
from components.governance.audit import audit_log
from components.monitor.postdeploy import (
    KEEP,
    NOT_ENOUGH,
    ROLLBACK,
    check_and_act,
    post_deploy_check,
)
from components.predictions.files import AppendLog
from components.register.operations import promote, rollback
from components.register.registry import register
from components.serve.service import FEEDBACK, PREDICTIONS
from components.train.run import train_and_log
from tests.factories import quick_model, training_set

pytestmark = [pytest.mark.unit, pytest.mark.slow]


def _config(config: SeamlessConfig) -> SeamlessConfig:
    return quick_model(config).model_copy(
        update={"promotion": PromotionConfig(metric="roc_auc", min_value=None)}
    )


def _two_versions(cfg: SeamlessConfig) -> None:
    """v1 champion, then v2 promoted: v1 is previous_champion."""
    for seed in (1, 2):
        result, _ = train_and_log(
            cfg,
            training_set(800, seed=seed),
            data_sha256="a" * 64,
            feature_service="svc",
            pipeline_run_id="t",
            source_uri="file:///x",
        )
        register(cfg.model.name, result.model_uri, "promote", {})


def _traffic(ws: Path, version: str, rng: np.random.Generator, signal: float, n: int) -> None:
    """n labelled predictions of `version`; `signal` sets how well scores rank labels."""
    preds, feedback = AppendLog(ws / PREDICTIONS, PREDICTIONS), AppendLog(ws / FEEDBACK, FEEDBACK)
    preds.open()
    feedback.open()
    y = (rng.uniform(size=n) < 0.3).astype(int)
    scores = np.clip(0.5 + signal * (y - 0.5) + rng.normal(0, 0.25, n), 0, 1)
    now = datetime.now(UTC).isoformat()
    rows: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(n):
        rid = f"{version}-{i}"
        rows.append(
            {
                "ts": now,
                "request_id": rid,
                "index": 0,
                "entity_id": i,
                "model_name": "credit_risk",
                "model_version": version,
                "score": float(scores[i]),
                "decision": bool(scores[i] >= 0.5),
                "features": {},
            }
        )
        labels.append({"ts": now, "request_id": rid, "index": 0, "label": int(y[i])})
    preds.append(rows)
    feedback.append(labels)
    preds.close()
    feedback.close()


def test_keep_then_rollback_on_live_regression(config: SeamlessConfig, workspace: Path) -> None:
    cfg = _config(config)
    _two_versions(cfg)
    rng = np.random.default_rng(0)
    assert post_deploy_check(cfg, workspace).decision == NOT_ENOUGH

    _traffic(workspace, "1", rng, signal=0.6, n=400)
    _traffic(workspace, "2", rng, signal=0.6, n=400)
    kept = post_deploy_check(cfg, workspace)
    assert kept.decision == KEEP, kept.reason
    # The step's audit event says which check decided (not a bare "keep").
    check_and_act(cfg, workspace, workspace / "deployments")
    decided = [e for e in audit_log().entries() if e["action"] == "monitoring_decision"]
    assert decided[-1]["details"]["decision"] == "post_deploy_keep"
    assert decided[-1]["details"]["reason"] == kept.reason

    _traffic(workspace, "2", rng, signal=0.0, n=3000)  # v2 now ranks at random
    verdict = post_deploy_check(cfg, workspace)
    assert verdict.decision == ROLLBACK, verdict.reason
    assert "regressed below previous champion v1" in verdict.reason

    move = rollback(cfg.model.name, verdict.previous, verdict.reason, workspace / "deployments")
    client = mlflow_client()
    assert str(client.get_model_version_by_alias(cfg.model.name, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(cfg.model.name, PREVIOUS_CHAMPION).version) == "2"
    assert move.replaced == "2"
    events = [e for e in audit_log().entries() if e["action"] in ("rollback", "deployment")]
    assert events[-2]["action"] == "rollback" and "regressed" in events[-2]["details"]["reason"]
    assert events[-1]["subject"].endswith("/1")


def test_manual_promote_and_refusals(config: SeamlessConfig, workspace: Path) -> None:
    cfg = _config(config)
    _two_versions(cfg)
    name = cfg.model.name
    promote(name, "1", "back to the first", workspace / "deployments")
    assert str(mlflow_client().get_model_version_by_alias(name, CHAMPION).version) == "1"
    with pytest.raises(SeamlessError, match="already the champion"):
        promote(name, "1", "again")
    with pytest.raises(SeamlessError, match="has no version 9"):
        promote(name, "9", "nope")
