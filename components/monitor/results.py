"""What one monitoring run found, and the decision the monitoring pipeline gates on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from components.monitor.drift import DRIFT, NOT_ENOUGH_DATA, STATUS_CODE, DriftResult
from components.monitor.performance import BREACH, PerformanceResult

RETRAIN, OK = "retrain", "ok"
RETRAIN_SKIPPED = "retrain_skipped"
"""Drift or a breach whose retrain already ran on the same data (monitor/guard.py)."""
DECISIONS = (RETRAIN, OK, NOT_ENOUGH_DATA, RETRAIN_SKIPPED)


def decide(drift: DriftResult, performance: PerformanceResult) -> tuple[str, str]:
    """`retrain` on drift or a performance breach; `not_enough_data` when the drift
    window is too small and nothing else says retrain; `ok` otherwise."""
    reasons = []
    if drift.status == DRIFT:
        reasons.append(drift.message)
    if performance.status == BREACH:
        reasons.append(performance.message)
    if reasons:
        return RETRAIN, "; ".join(reasons)
    if drift.status == NOT_ENOUGH_DATA:
        return NOT_ENOUGH_DATA, drift.message
    return OK, f"{drift.message}; {performance.message}"


@dataclass
class MonitoringResult:
    model_name: str
    model_version: str
    model_alias: str
    checked_at: str
    decision: str
    reason: str
    drift: DriftResult
    performance: PerformanceResult
    window: dict[str, Any] = field(default_factory=dict)
    """The windows' bounds and the log read's skipped lines."""
    reference: dict[str, Any] = field(default_factory=dict)
    """What drift compared with (`kind` served/training, `description`), and for a
    served baseline the same window against the training profile (`vs_training`)."""
    guard: dict[str, Any] = field(default_factory=dict)
    """The retrain guard's record (verdict, data fingerprint, last retrain), when asked."""
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_metrics(self) -> dict[str, float]:
        """Flat numbers for KFP `Metrics` and MLflow (feature metrics as `<name>.<feature>`)."""
        out: dict[str, float] = {
            "drift_status": float(STATUS_CODE[self.drift.status]),
            "window_rows": float(self.drift.rows),
            "drifted_features": float(len(self.drift.by_status(DRIFT))),
            "labelled_rows": float(self.performance.labelled),
            "performance_breach": float(self.performance.status == BREACH),
            "retrain_skipped": float(self.decision == RETRAIN_SKIPPED),
        }
        for f in self.drift.features:
            out[f"psi.{f.feature}"] = f.psi
            out[f"pvalue.{f.feature}"] = f.pvalue
            out[f"missing_rate.{f.feature}"] = f.missing_rate
            out[f"out_of_range.{f.feature}"] = f.out_of_range_rate
            out[f"status.{f.feature}"] = float(STATUS_CODE[f.status])
        for key, value in self.performance.metrics.items():
            out[f"live_{key}"] = float(value)
        return out
