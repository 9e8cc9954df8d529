"""The stage against a real local MLflow store: profile stored at training, loaded by
version or alias, and a whole monitoring run (report, gauges, MLflow run)."""

# No `from __future__ import annotations`: KFP reads the test pipeline's annotations.
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.model_input import model_input
from components.common.monitoring_config import monitoring_config
from components.common.reference_profile import PROFILE_ARTIFACT, load_reference_profile
from components.monitor.exporters import LAST_RUN_TAG, REPORT_ARTIFACT, prometheus_registry
from components.monitor.stage import default_textfile, run_monitoring
from components.predictions.files import AppendLog
from components.predictions.records import jsonable
from tests.factories import quick_model, train_and_register_once, training_set

pytestmark = [pytest.mark.unit, pytest.mark.slow]  # ~15 s: one real train + register

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)


def _small(config: SeamlessConfig) -> SeamlessConfig:
    """A quick model; drift against the training rows (these tests are about that
    comparison; the served baseline has its own in test_retrain_guard.py)."""
    monitoring = monitoring_config(config).model_copy(update={"reference": "training"})
    return quick_model(config).model_copy(update={"monitoring": monitoring})


@pytest.fixture(scope="module")
def _trained(store: Path) -> dict[str, Any]:
    """A trained and registered (promoted) version with a stored profile (`registered`
    in tests/monitor/conftest.py points a test at it)."""
    from components.common.config import default_config_path, load_config

    return train_and_register_once(store, _small(load_config(default_config_path())), "a" * 64)


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    """Each test's own prediction/feedback logs (passed to run_monitoring explicitly)."""
    ws = tmp_path / "traffic"
    ws.mkdir()
    return ws


def _write_traffic(
    workspace: Path,
    cfg: SeamlessConfig,
    version: str,
    n: int,
    seed: int,
    utilization: float = 0.0,
    now: datetime = NOW,
) -> None:
    frame = training_set(n, seed=seed)
    frame["credit_utilization"] = frame["credit_utilization"] + utilization
    x = model_input(cfg, frame)
    rng = np.random.default_rng(seed)
    preds = AppendLog(workspace / "predictions", "predictions")
    fb = AppendLog(workspace / "feedback", "feedback")
    preds.open()
    fb.open()
    records, labels = [], []
    for i, row in enumerate(x.to_dict(orient="records")):
        ts = (now - timedelta(minutes=n - i)).isoformat()
        score = float(rng.random())
        records.append(
            {
                "ts": ts,
                "request_id": f"req{seed}-{i}",
                "index": 0,
                "entity_id": int(frame["customer_id"].iloc[i]),
                "route": "v1",
                "model_name": cfg.model.name,
                "model_version": version,
                "features": {k: jsonable(v) for k, v in row.items()},
                "score": score,
                "decision": score >= 0.5,
            }
        )
        # Scores are random: the live AUC is ~0.5, far below the holdout's 0.80.
        labels.append({"ts": ts, "request_id": f"req{seed}-{i}", "label": int(rng.random() < 0.3)})
    preds.append(records)
    fb.append(labels)
    preds.close()
    fb.close()


def test_profile_is_stored_with_the_model_and_loads_by_version_or_alias(
    registered: dict[str, Any],
) -> None:
    name = registered["config"].model.name
    profile, mv = load_reference_profile(name, registered["version"])
    assert str(mv.version) == registered["version"]
    assert set(profile["features"]) == set(registered["config"].feature_types())
    assert profile["rows"] == 2_400  # the training split, not the holdout
    by_alias, _ = load_reference_profile(name, "champion")
    assert by_alias["features"] == profile["features"]


def test_version_without_profile_is_one_sentence(registered: dict[str, Any]) -> None:
    import mlflow

    name = registered["config"].model.name
    client = mlflow.tracking.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_param("x", 1)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    with pytest.raises(SeamlessError, match=rf"version {mv.version} has no stored reference"):
        load_reference_profile(name, str(mv.version))
    with pytest.raises(SeamlessError, match="has no alias 'nope'"):
        load_reference_profile(name, "nope")
    assert PROFILE_ARTIFACT == "reference_profile.json"


def test_drifted_traffic_with_bad_labels_says_retrain(
    registered: dict[str, Any], workspace: Path, tmp_path: Path
) -> None:
    import mlflow

    cfg, version = registered["config"], registered["version"]
    _write_traffic(workspace, cfg, version, 600, seed=7, utilization=0.4)
    report = tmp_path / "report.html"
    textfile = default_textfile(workspace)
    result = run_monitoring(
        cfg,
        workspace=workspace,
        report_path=report,
        textfile_path=textfile,
        now=NOW,
        min_rows=200,
    )
    assert result.decision == "retrain"
    assert result.drift.status == "drift"
    assert "credit_utilization" in result.drift.by_status("drift")
    assert result.performance.status == "breach", result.performance.message

    html = report.read_text()
    assert "credit_utilization" in html and "<script" not in html
    prom = textfile.read_text()
    assert 'seamless_drift_status{model="credit_risk",version="1"} 2.0' in prom
    assert 'seamless_drift_psi{feature="credit_utilization"' in prom
    assert "seamless_live_roc_auc" in prom

    run = mlflow.get_run(result.mlflow_run_id)
    assert run.data.tags["seamless.model_version"] == version
    assert run.data.tags["seamless.decision"] == "retrain"
    assert "psi.credit_utilization" in run.data.metrics
    artifacts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(run.info.run_id)}
    assert REPORT_ARTIFACT in artifacts
    mv = mlflow.tracking.MlflowClient().get_model_version(cfg.model.name, version)
    assert mv.tags[LAST_RUN_TAG] == result.mlflow_run_id
    # The decision is in the audit trail whoever called the stage (step, CLI, demo).
    from components.governance import audit

    decided = [e for e in audit.audit_log().entries() if e["action"] == "monitoring_decision"]
    assert decided and decided[-1]["details"]["decision"] == "retrain"
    assert decided[-1]["subject"] == audit.model_subject(cfg.model.name, version)


def test_same_distribution_traffic_is_ok_and_empty_log_is_not_enough_data(
    registered: dict[str, Any], workspace: Path
) -> None:
    cfg, version = registered["config"], registered["version"]
    empty = run_monitoring(cfg, workspace=workspace, now=NOW, log_to_mlflow=False)
    assert empty.decision == "not_enough_data"
    assert empty.performance.status == "not_enough_data"
    _write_traffic(workspace, cfg, version, 800, seed=11)
    result = run_monitoring(
        cfg, workspace=workspace, now=NOW, log_to_mlflow=False, label_window_hours=0.001
    )
    assert result.drift.status in ("ok", "warn"), result.drift.message
    assert result.performance.status == "not_enough_data"  # the label window is tiny
    assert result.decision == "ok"
    # A window that ends before the traffic began is empty, not an error.
    early = run_monitoring(
        cfg, workspace=workspace, now=NOW - timedelta(days=2), log_to_mlflow=False
    )
    assert early.decision == "not_enough_data"


def test_log_without_a_feature_is_named(registered: dict[str, Any], workspace: Path) -> None:
    cfg, version = registered["config"], registered["version"]
    log = AppendLog(workspace / "predictions", "predictions")
    log.open()
    log.append(
        [
            {
                "ts": NOW.isoformat(),
                "request_id": "r",
                "index": 0,
                "model_name": cfg.model.name,
                "model_version": version,
                "features": {"age": 40},
                "score": 0.2,
                "decision": False,
            }
        ]
    )
    log.close()
    with pytest.raises(SeamlessError, match=r"lack features \['annual_income'"):
        run_monitoring(cfg, workspace=workspace, now=NOW, log_to_mlflow=False)


def test_registry_is_exposable(registered: dict[str, Any], workspace: Path) -> None:
    from prometheus_client import generate_latest

    cfg = registered["config"]
    result = run_monitoring(cfg, workspace=workspace, now=NOW, log_to_mlflow=False)
    text = generate_latest(prometheus_registry(result)).decode()
    assert "seamless_drift_status" in text and 'version="1"' in text


def test_component_compiles(tmp_path: Path) -> None:
    from kfp import compiler, dsl

    from components.monitor.component import monitor

    @dsl.pipeline(name="monitor-only")
    def only(cfg: str) -> str:
        checked = monitor(config_yaml=cfg, window_hours=24.0)
        with dsl.If(checked.outputs["Output"] == "retrain"):
            pass
        return checked.outputs["Output"]

    out = tmp_path / "monitor.yaml"
    compiler.Compiler().compile(only, str(out))
    assert "comp-monitor" in out.read_text()


def test_cli_run_exits_3_on_retrain(
    registered: dict[str, Any], store: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from pipelines.monitor_cli import EXIT_RETRAIN, monitor_app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow' / 'mlflow.db'}")
    cfg, version = registered["config"], registered["version"]
    # Traffic of "now": the CLI's windows end at the current time.
    _write_traffic(workspace, cfg, version, 400, seed=5, utilization=0.4, now=datetime.now(UTC))
    app = typer.Typer()
    app.add_typer(monitor_app, name="monitor")
    done = CliRunner().invoke(
        app,
        [
            *("monitor", "run", "--workspace", str(workspace), "--no-mlflow", "--json"),
            *("--reference", "training"),
        ],
    )
    assert done.exit_code == EXIT_RETRAIN, done.output
    assert '"decision": "retrain"' in done.output
    assert (workspace / "monitoring" / "report.html").is_file()
    assert (workspace / "monitoring" / "seamless_monitor.prom").is_file()
