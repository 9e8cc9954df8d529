"""The monitoring gauges Prometheus alerts on (`seamless_drift_psi`, `seamless_live_roc_auc`,
...; manifests/base/prometheus/rules), built from a monitoring run's flat numbers.

Shared: the monitor step writes them to its textfile (monitor/exporters.py), and the
dashboard's `/metrics` re-exports each model's latest monitoring run from MLflow
(dashboard/monitoring.py), which is how Prometheus sees them on a cluster, where the
step's pod and file are gone. One definition, so both publish the same series.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

_LIVE = ("roc_auc", "pr_auc", "precision", "recall", "brier", "ece", "log_loss")


# Per-feature gauges: (summary metric prefix, help).
_PER_FEATURE = {
    "seamless_drift_psi": ("psi", "Population stability index vs training."),
    "seamless_drift_pvalue": ("pvalue", "KS (numeric) / chi-square (categorical) p-value."),
    "seamless_drift_missing_rate": ("missing_rate", "Missing-value rate in the window."),
    "seamless_drift_out_of_range_rate": (
        "out_of_range",
        "Share outside the bounds (numeric) or unseen categories.",
    ),
    "seamless_drift_feature_status": ("status", "Per feature: 0 ok, 1 warn, 2 drift."),
}
# Run-wide gauges: (summary metric, help).
_PER_RUN = {
    "seamless_drift_status": (
        "drift_status",
        "Overall drift: 0 ok, 1 warn, 2 drift, -1 not enough data.",
    ),
    "seamless_monitor_window_rows": ("window_rows", "Served rows in the drift window."),
    "seamless_live_labelled_rows": (
        "labelled_rows",
        "Labelled predictions in the performance window.",
    ),
    "seamless_live_performance_breach": (
        "performance_breach",
        "1 when live ROC AUC fell below holdout - margin.",
    ),
    "seamless_monitor_retrain_skipped": (
        "retrain_skipped",
        "1 when drift or a breach persists but its retrain already ran on the same data.",
    ),
}


class GaugeSet:
    """Gauges made once per registry, so several models' runs share each metric family."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._made: dict[str, Gauge] = {}

    def __call__(self, name: str, doc: str, labels: list[str]) -> Gauge:
        if name not in self._made:
            self._made[name] = Gauge(name, doc, labels, registry=self.registry)
        return self._made[name]


def summary_gauges(
    model: str,
    version: str,
    decision: str,
    metrics: Mapping[str, float],
    holdout: Mapping[str, float],
    checked_at: float,
    registry: CollectorRegistry | GaugeSet | None = None,
) -> CollectorRegistry:
    """The gauges of one run from its flat numbers (`MonitoringResult.summary_metrics`,
    which is also what its MLflow run logs as metrics); every series is labelled `model`
    and `version`, per-feature ones also `feature`. A number missing from `metrics` (NaN
    is not logged to MLflow) gives no series."""
    made = registry if isinstance(registry, GaugeSet) else GaugeSet(registry)
    base = {"model": model, "version": version}
    names = ["model", "version"]

    def gauge(name: str, doc: str, labels: list[str] = names) -> Gauge:
        return made(name, doc, labels)

    for metric, (key, doc) in _PER_RUN.items():
        if key in metrics:
            gauge(metric, doc).labels(**base).set(float(metrics[key]))
    gauge(
        "seamless_monitor_decision_retrain", "1 when the last monitoring run said retrain."
    ).labels(**base).set(float(decision == "retrain"))
    gauge(
        "seamless_monitor_last_run_timestamp_seconds", "Unix time of the last monitoring run."
    ).labels(**base).set(checked_at)
    for metric, (prefix, doc) in _PER_FEATURE.items():
        g = gauge(metric, doc, [*names, "feature"])
        for key, value in metrics.items():
            if key.startswith(prefix + "."):
                g.labels(**base, feature=key[len(prefix) + 1 :]).set(float(value))
    for key in _LIVE:
        if f"live_{key}" in metrics:
            gauge(f"seamless_live_{key}", f"Live {key} on labelled predictions.").labels(
                **base
            ).set(float(metrics[f"live_{key}"]))
        if key in holdout:
            gauge(f"seamless_holdout_{key}", f"Holdout {key} of the model version.").labels(
                **base
            ).set(float(holdout[key]))
    return made.registry


def gauge_names() -> set[str]:
    """Every series name `summary_gauges` can publish (for checks of rules and dashboards)."""
    return {
        *_PER_RUN,
        *_PER_FEATURE,
        "seamless_monitor_decision_retrain",
        "seamless_monitor_last_run_timestamp_seconds",
        *(f"seamless_live_{key}" for key in _LIVE),
        *(f"seamless_holdout_{key}" for key in _LIVE),
    }
