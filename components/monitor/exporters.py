"""Publish a monitoring result: Prometheus gauges (registry + textfile) and an MLflow run."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from components.monitor.drift import STATUS_CODE
from components.monitor.performance import BREACH
from components.monitor.results import MonitoringResult

REPORT_ARTIFACT = "monitoring_report.html"
RESULT_ARTIFACT = "monitoring_result.json"
LAST_RUN_TAG = "seamless.monitor.last_run_id"
_LIVE = ("roc_auc", "pr_auc", "precision", "recall", "brier", "ece", "log_loss")


def prometheus_registry(
    result: MonitoringResult, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Gauges of `result` in `registry` (a new one by default, which a caller can expose).

    Every series carries `model` and `version` labels; per-feature ones also `feature`.
    """
    r = registry if registry is not None else CollectorRegistry()
    base = {"model": result.model_name, "version": result.model_version}
    names = ["model", "version"]
    feat = [*names, "feature"]

    def gauge(name: str, doc: str, labels: list[str] = names) -> Gauge:
        return Gauge(name, doc, labels, registry=r)

    d, p = result.drift, result.performance
    gauge(
        "seamless_drift_status", "Overall drift: 0 ok, 1 warn, 2 drift, -1 not enough data."
    ).labels(**base).set(STATUS_CODE[d.status])
    gauge("seamless_monitor_window_rows", "Served rows in the drift window.").labels(**base).set(
        d.rows
    )
    gauge(
        "seamless_monitor_decision_retrain", "1 when the last monitoring run said retrain."
    ).labels(**base).set(float(result.decision == "retrain"))
    gauge(
        "seamless_monitor_retrain_skipped",
        "1 when drift or a breach persists but its retrain already ran on the same data.",
    ).labels(**base).set(float(result.decision == "retrain_skipped"))
    gauge(
        "seamless_monitor_last_run_timestamp_seconds", "Unix time of the last monitoring run."
    ).labels(**base).set(time.time())
    per_feature = {
        "seamless_drift_psi": ("Population stability index vs training.", "psi"),
        "seamless_drift_pvalue": ("KS (numeric) / chi-square (categorical) p-value.", "pvalue"),
        "seamless_drift_missing_rate": ("Missing-value rate in the window.", "missing_rate"),
        "seamless_drift_out_of_range_rate": (
            "Share outside the bounds (numeric) or unseen categories.",
            "out_of_range_rate",
        ),
    }
    for metric, (doc, attr) in per_feature.items():
        g = gauge(metric, doc, feat)
        for f in d.features:
            g.labels(**base, feature=f.feature).set(float(getattr(f, attr)))
    g = gauge("seamless_drift_feature_status", "Per feature: 0 ok, 1 warn, 2 drift.", feat)
    for f in d.features:
        g.labels(**base, feature=f.feature).set(STATUS_CODE[f.status])
    gauge("seamless_live_labelled_rows", "Labelled predictions in the performance window.").labels(
        **base
    ).set(p.labelled)
    gauge(
        "seamless_live_performance_breach", "1 when live ROC AUC fell below holdout - margin."
    ).labels(**base).set(float(p.status == BREACH))
    for key in _LIVE:
        if key in p.metrics:
            gauge(f"seamless_live_{key}", f"Live {key} on labelled predictions.").labels(
                **base
            ).set(p.metrics[key])
        if key in p.holdout:
            gauge(f"seamless_holdout_{key}", f"Holdout {key} of the model version.").labels(
                **base
            ).set(p.holdout[key])
    return r


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
