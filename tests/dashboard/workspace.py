"""A small real workspace with everything the dashboard shows, built once per test session.

Through the stages' own logic functions and governance hooks, as the components call
them (tests/governance/test_lineage.py does the same): demo data -> ingest -> validate
(Great Expectations) -> features (Feast) -> train (MLflow) -> evaluate (the gate) ->
register -> deploy as pipeline run 1; a second training run gated against the champion;
a promotion by hand (with a hostile reason) and a rollback by someone else; two
monitoring runs over served traffic, the second one shifted; and a real batch scoring
pipeline run through kfp.local (`seamless run batch-scoring`), which leaves a step log,
a run folder and batch rows in the prediction log.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.common.env import deployments_dir
from components.common.model_input import model_input
from components.common.monitoring_config import monitoring_config
from components.common.tables import read_table
from components.deploy.deployment import deploy_local
from components.evaluate.stage import run_evaluation
from components.features.stage import run_features
from components.governance import hooks
from components.ingest.stage import ingest_tables
from components.monitor.stage import run_monitoring
from components.predictions.files import AppendLog
from components.predictions.records import jsonable
from components.register.operations import promote, rollback
from components.register.registry import register
from components.train.stage import run_training
from components.validate.stage import run_validation
from pipelines.demo_data import generate
from pipelines.local import use_workspace
from tests.factories import quick_model
from tests.helpers.cli import run_cli
from tests.helpers.environ import restored_environ
from tests.serving.workspace import clean_endpoints, small_config

RUN_1, RUN_2 = "dash-run-1", "dash-run-2"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\"> & <b>bold</b>"
"""In a promotion's reason: every page must show it as text."""
CHECK_1 = datetime(2026, 1, 10, 12, tzinfo=UTC)
CHECK_2 = CHECK_1 + timedelta(hours=6)
TRAFFIC_ROWS = 600


def dashboard_config() -> SeamlessConfig:
    """The bundled config, small and quick, drift compared with the training rows (the
    served baseline would need 500 predictions before any verdict)."""
    # Logistic regression: a few seconds per training run instead of ~20 (2 CPUs).
    config = quick_model(small_config(load_config(default_config_path())))
    monitoring = monitoring_config(config).model_copy(
        update={"reference": "training", "min_rows": 200, "min_labels": 100}
    )
    return config.model_copy(update={"monitoring": monitoring})


def _train(
    config: SeamlessConfig, run: str, training: Path, meta: dict[str, Any], root: Path
) -> tuple[dict[str, Any], Any]:
    """Train, gate against the champion, register: (train result, gate decision)."""
    holdout = root / run / "holdout"
    trained = run_training(config, str(training), meta, training.as_uri(), run, str(holdout))
    hooks.on_train(trained["model"], run)
    decision, _ = run_evaluation(
        config, trained["model"]["model_uri"], str(holdout), str(root / run / "decision.json")
    )
    tags = {
        "seamless.data_sha256": meta["data_sha256"],
        "seamless.validation": "pass",
        "seamless.feature_service": meta["feature_service"],
        "seamless.pipeline_run_id": run,
        "seamless.train_run_id": trained["model"]["run_id"],
        "seamless.decision_reason": decision.reason,
        **{f"holdout.{k}": f"{v:.6g}" for k, v in decision.challenger_metrics.items()},
    }
    reg = register(
        config.model.name, trained["model"]["model_uri"], decision.decision, tags,
        description=f"{decision.decision}: {decision.reason}",
    )  # fmt: skip
    hooks.on_register(reg, run, reason=decision.reason, gate=decision.to_dict())
    if reg.promoted:
        hooks.on_deploy(deploy_local(config.model.name, reg.version, deployments_dir(), run))
    return {**trained, "version": reg.version, "promoted": reg.promoted}, decision


def _traffic(
    ws: Path, config: SeamlessConfig, version: str, frame: pd.DataFrame, end: datetime, tag: str
) -> list[str]:
    """Predictions of `frame`'s rows ending at `end` (one a minute back), with their labels."""
    x = model_input(config, frame)
    rng = np.random.default_rng(len(tag))
    label = config.labels.label_column
    preds, feedback, ids = [], [], []
    for i, row in enumerate(x.to_dict(orient="records")):
        ts = (end - timedelta(seconds=6 * (len(frame) - i))).isoformat()
        score = float(np.clip(0.15 + 0.5 * frame[label].iloc[i] + rng.normal(0, 0.2), 0, 1))
        request_id = f"{tag}-{i}"
        ids.append(request_id)
        preds.append(
            {
                "ts": ts,
                "request_id": request_id,
                "index": 0,
                "entity_id": int(frame[config.entity_key()].iloc[i]),
                "route": "/v1/predict",
                "model_name": config.model.name,
                "model_version": version,
                "features": {k: jsonable(v) for k, v in row.items()},
                "score": score,
                "decision": score >= config.model.threshold,
            }
        )
        feedback.append({"ts": ts, "request_id": request_id, "label": int(frame[label].iloc[i])})
    for prefix, records in (("predictions", preds), ("feedback", feedback)):
        log = AppendLog(ws / prefix, prefix)
        log.open()
        log.append(records)
        log.close()
    return ids


def build(root: Path) -> dict[str, Any]:
    """Build the workspace under `root`; returns what the tests compare the pages with.
    The process environment is restored afterwards; `env` holds the workspace's."""
    with restored_environ(), clean_endpoints():
        return _build(root)


def _build(root: Path) -> dict[str, Any]:
    config = dashboard_config()
    data = root / "data"
    generate(data, n_rows=2000, seed=3)
    ws = root / "ws"
    use_workspace(ws)
    os.environ["SEAMLESS_ACTOR"] = "pipeline"
    os.environ["SEAMLESS_ROLE"] = "ml_engineer"

    # Pipeline run 1: the whole chain; the first version becomes champion.
    dataset = root / RUN_1 / "dataset"
    manifest = ingest_tables(config, data, dataset)
    hooks.on_ingest(dataset, RUN_1)
    report = root / RUN_1 / "validation.html"
    validated = run_validation(config, str(dataset), str(report))
    hooks.on_validate(dataset, report, validated.decision, RUN_1)
    training = root / RUN_1 / "training"
    meta = run_features(config, str(dataset), str(training), online=False)
    hooks.on_features(meta, RUN_1)
    first, gate_1 = _train(config, RUN_1, training, meta, root)
    # Pipeline run 2: the same data again; the gate compares it with the champion.
    second, gate_2 = _train(config, RUN_2, training, meta, root)

    # Alias moves by hand, by two people; the reason is hostile text.
    name = config.model.name
    os.environ["SEAMLESS_ACTOR"] = "alice"
    if not second["promoted"]:
        promote(name, second["version"], HOSTILE)
    os.environ["SEAMLESS_ACTOR"] = "bob"
    rollback(name, first["version"], "live AUC dropped after the switch")
    os.environ["SEAMLESS_ACTOR"] = "pipeline"

    # Served traffic and two monitoring runs: as trained, then shifted.
    frame = read_table(training, "training_set")
    sample = frame.sample(TRAFFIC_ROWS, random_state=1).reset_index(drop=True)
    ids = _traffic(ws, config, first["version"], sample, CHECK_1, "calm")
    shifted = sample.copy()
    shifted["credit_utilization"] = shifted["credit_utilization"] + 0.6
    _traffic(ws, config, first["version"], shifted, CHECK_2, "shifted")
    checks = [
        run_monitoring(config, workspace=ws, now=now, window_hours=2, label_window_hours=2)
        for now in (CHECK_1, CHECK_2)
    ]

    # A real pipeline run through kfp.local: a step log, a run folder, batch traffic.
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_unset=True)))
    key, ts = config.entity_key(), config.timestamp_key(config.labels.table)
    frame[[key, ts]].head(50).to_parquet(root / "entities.parquet")
    done = run_cli(
        "run", "batch-scoring", "--workspace", str(ws), "--config", str(config_path),
        "--input", str(root / "entities.parquet"), "--timestamp-column", ts,
        "--output", str(root / "scores.parquet"), "--json", cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        "ws": ws,
        "root": root,
        "config": config,
        "sha": manifest["sha256"],
        "versions": [first["version"], second["version"]],
        "gates": [gate_1, gate_2],
        "train_runs": [first["model"]["run_id"], second["model"]["run_id"]],
        "validation": validated.decision,
        "checks": checks,
        "request_ids": ids,
        "batch": done.stdout,
        "env": {k: os.environ[k] for k in ("SEAMLESS_WORKSPACE", "MLFLOW_TRACKING_URI",
                                            "SEAMLESS_FEAST_REPO")},
    }  # fmt: skip
