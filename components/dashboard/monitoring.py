"""Monitoring over time: PSI per feature across monitoring runs, live performance against
the holdout, prediction volume and the score distribution.

Monitoring runs are the MLflow runs the monitor stage logs (`components/monitor/
exporters.log_run`: tags `seamless.stage=monitor`, `seamless.model_name`,
`seamless.model_version`, `seamless.decision`; metrics `psi.<feature>`,
`status.<feature>`, `live_<metric>`; the HTML report as an artifact), found with one
bounded search (newest `limit`). Holdout numbers are the monitored version's `holdout.*`
tags. Traffic comes from `predictions.summary` (bounded, see there).
"""

from __future__ import annotations

from typing import Any

from components.common.tracking import holdout_metrics
from components.dashboard.models import filter_quoted

STATUS_NAMES = {0: "ok", 1: "warn", 2: "drift", -1: "not_enough_data"}
"""`status.<feature>` metric -> status (monitor/drift.py STATUS_CODE, inverted)."""
CHARTED = ("roc_auc", "brier", "ece", "precision", "recall")
"""Live metrics drawn against the holdout when both exist (roc_auc first)."""
MAX_EXPERIMENTS = 200


def monitoring_runs(client: Any, model_name: str, limit: int = 30) -> list[dict[str, Any]]:
    """The newest `limit` monitoring runs of `model_name`, oldest first."""
    out = []
    for run in reversed(_newest_runs(client, model_name, limit)):
        m = dict(run.data.metrics)
        tags = dict(run.data.tags)
        out.append(
            {
                "run_id": run.info.run_id,
                "time": _iso(run.info.start_time),
                "version": tags.get("seamless.model_version"),
                "decision": tags.get("seamless.decision"),
                "drift_status": tags.get("seamless.drift_status"),
                "performance_status": tags.get("seamless.performance_status"),
                "reason": tags.get("seamless.reason", ""),
                "window_rows": m.get("window_rows"),
                "labelled_rows": m.get("labelled_rows"),
                "psi": {k[4:]: v for k, v in sorted(m.items()) if k.startswith("psi.")},
                "status": {
                    k[7:]: STATUS_NAMES.get(int(v), "ok")
                    for k, v in sorted(m.items())
                    if k.startswith("status.")
                },
                "live": {k[5:]: v for k, v in sorted(m.items()) if k.startswith("live_")},
            }
        )
    return out


def _newest_runs(client: Any, model_name: str, limit: int) -> list[Any]:
    """The newest `limit` monitoring runs of `model_name`, newest first (one bounded
    search over the experiments)."""
    experiments = client.search_experiments(max_results=MAX_EXPERIMENTS)
    if not experiments:
        return []
    return list(
        client.search_runs(
            [e.experiment_id for e in experiments],
            filter_string=(
                "tags.`seamless.stage` = 'monitor' and "
                f"tags.`seamless.model_name` = '{filter_quoted(model_name)}'"
            ),
            max_results=limit,
            order_by=["attributes.start_time DESC"],
        )
    )


def latest_runs_as_prometheus(client: Any) -> bytes:
    """Each registered model's latest monitoring run as the gauges the monitor step writes
    (common/monitoring_gauges.py), in Prometheus' text format: on a cluster the step's
    pod and textfile are gone, so this is what Prometheus scrapes for the drift and
    live-performance alerts. `seamless_monitor_last_run_timestamp_seconds` is the run's
    start, so an alert can also tell a stale check."""
    from prometheus_client import generate_latest

    from components.common.monitoring_gauges import GaugeSet, summary_gauges

    gauges = GaugeSet()
    for model in client.search_registered_models(max_results=MAX_EXPERIMENTS):
        for run in _newest_runs(client, model.name, 1):
            tags = dict(run.data.tags)
            version = str(tags.get("seamless.model_version", ""))
            holdout = holdout_of(client, model.name, {version}).get(version, {})
            summary_gauges(
                model.name,
                version,
                str(tags.get("seamless.decision", "")),
                dict(run.data.metrics),
                holdout,
                run.info.start_time / 1000,
                gauges,
            )
    return bytes(generate_latest(gauges.registry))


def _iso(ms: int | None) -> str | None:
    from datetime import UTC, datetime

    return None if not ms else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def holdout_of(client: Any, model_name: str, versions: set[str]) -> dict[str, dict[str, float]]:
    """Version -> its holdout metrics (`holdout.*` tags); a deleted version maps to {}."""
    from mlflow.exceptions import MlflowException

    out: dict[str, dict[str, float]] = {}
    for v in sorted(versions):
        try:
            tags = dict(client.get_model_version(model_name, v).tags or {})
        except MlflowException:
            out[v] = {}
            continue
        out[v] = holdout_metrics(tags)
    return out


def features_by_peak(runs: list[dict[str, Any]]) -> list[str]:
    """Every feature seen, highest PSI ever first (what to look at first)."""
    peak: dict[str, float] = {}
    for r in runs:
        for f, v in r["psi"].items():
            value = v if isinstance(v, float) and v == v else float("-inf")
            peak[f] = max(peak.get(f, float("-inf")), value)
    return sorted(peak, key=lambda f: (-peak[f], f))


def performance_series(
    runs: list[dict[str, Any]], holdout: dict[str, dict[str, float]]
) -> dict[str, dict[str, list[float | None]]]:
    """metric -> {"live": [...], "holdout": [...]} per run, for metrics with both."""
    out: dict[str, dict[str, list[float | None]]] = {}
    for metric in CHARTED:
        live = [r["live"].get(metric) for r in runs]
        base = [holdout.get(str(r["version"]), {}).get(metric) for r in runs]
        if any(v is not None for v in live) and any(v is not None for v in base):
            out[metric] = {"live": live, "holdout": base}
    return out
