"""Publish a monitoring result: Prometheus gauges (registry + textfile) and an MLflow run."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, write_to_textfile

from components.common.monitoring_gauges import summary_gauges
from components.monitor.results import MonitoringResult

REPORT_ARTIFACT = "monitoring_report.html"
RESULT_ARTIFACT = "monitoring_result.json"
LAST_RUN_TAG = "seamless.monitor.last_run_id"


def prometheus_registry(
    result: MonitoringResult, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Gauges of `result` in `registry` (a new one by default, which a caller can expose).

    Every series carries `model` and `version` labels; per-feature ones also `feature`.
    """
    return summary_gauges(
        result.model_name,
        result.model_version,
        result.decision,
        result.summary_metrics(),
        result.performance.holdout,
        time.time(),
        registry,
    )


def write_textfile(result: MonitoringResult, path: str | Path) -> Path:
    """The gauges in Prometheus text format, for node-exporter's textfile collector.

    `write_to_textfile` writes a temporary file and renames it, so the collector never
    reads a half-written file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(target), prometheus_registry(result))
    return target


def log_run(result: MonitoringResult, report_html: str, experiment: str) -> str:
    """An MLflow run for this check, linked to the monitored model version both ways."""
    import mlflow

    from components.common.tracking import ensure_experiment, mlflow_client

    client = mlflow_client()
    ensure_experiment(experiment)
    metrics = result.summary_metrics()
    with mlflow.start_run(run_name=f"monitor-{result.model_name}-v{result.model_version}") as run:
        mlflow.set_tags(
            {
                "seamless.stage": "monitor",
                "seamless.model_name": result.model_name,
                "seamless.model_version": result.model_version,
                "seamless.model_alias": result.model_alias,
                "seamless.decision": result.decision,
                "seamless.drift_status": result.drift.status,
                "seamless.performance_status": result.performance.status,
                "seamless.reference": str(result.reference.get("kind", "")),
                "seamless.reason": result.reason[:5000],
            }
        )
        mlflow.log_metrics(_mlflow_safe(metrics))
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / REPORT_ARTIFACT
            report.write_text(report_html, encoding="utf-8")
            mlflow.log_artifact(str(report))
            payload = Path(tmp) / RESULT_ARTIFACT
            payload.write_text(json.dumps(result.to_dict(), indent=2, default=str))
            mlflow.log_artifact(str(payload))
        run_id: str = run.info.run_id
    client.set_model_version_tag(result.model_name, result.model_version, LAST_RUN_TAG, run_id)
    return run_id


def _mlflow_safe(metrics: dict[str, Any]) -> dict[str, float]:
    """MLflow metric keys allow letters, digits and `_-./ `; NaN values are dropped."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        clean = "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)
        if value == value:
            out[clean] = float(value)
    return out
