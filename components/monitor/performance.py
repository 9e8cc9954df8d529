"""Live model performance on labelled predictions, against the version's holdout numbers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import precision_score, recall_score

from components.common.monitoring_config import MonitoringConfig
from components.evaluate.evaluation import classification_metrics

OK, BREACH, NOT_ENOUGH_DATA, NO_BASELINE = "ok", "breach", "not_enough_data", "no_baseline"


@dataclass
class PerformanceResult:
    status: str
    labelled: int
    positives: int
    min_labels: int
    metrics: dict[str, float] = field(default_factory=dict)
    holdout: dict[str, float] = field(default_factory=dict)
    auc_se: float | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982) standard error of a ROC AUC."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return math.sqrt(max(var, 0.0))


def live_performance(
    rows: pd.DataFrame, threshold: float, holdout: dict[str, float], cfg: MonitoringConfig
) -> PerformanceResult:
    """Metrics of labelled predictions (`score`, `label`, `decision`) and the verdict.

    Breach: live ROC AUC below holdout AUC minus `auc_margin`, and the shortfall from the
    holdout AUC significant at `performance_alpha` (one-sided, Hanley-McNeil SE), so the
    noise of a small label window alone does not trigger a retrain.
    """
    y = rows["label"].to_numpy(dtype=float).astype(int) if len(rows) else np.zeros(0, int)
    positives = int(y.sum())
    result = PerformanceResult(
        status=NOT_ENOUGH_DATA,
        labelled=len(y),
        positives=positives,
        min_labels=cfg.min_labels,
        holdout=holdout,
    )
    if len(y) < cfg.min_labels or positives == 0 or positives == len(y):
        result.message = (
            f"not enough labels: {len(y)} labelled predictions ({positives} positive), "
            f"{cfg.min_labels} with both classes needed (monitoring.min_labels)"
        )
        return result
    p = rows["score"].to_numpy(dtype=float)
    metrics = classification_metrics(y, p, threshold)
    # Precision/recall of the decisions actually served (the serving threshold).
    served = rows["decision"]
    pred = (
        served.astype(bool).to_numpy().astype(int)
        if served.notna().all()
        else (p >= threshold).astype(int)
    )
    metrics["precision"] = float(precision_score(y, pred, zero_division=0))
    metrics["recall"] = float(recall_score(y, pred, zero_division=0))
    result.metrics = metrics
    auc = metrics["roc_auc"]
    se = auc_standard_error(auc, positives, len(y) - positives)
    result.auc_se = se
    base = holdout.get("roc_auc")
    if base is None:
        result.status = NO_BASELINE
        result.message = (
            f"live ROC AUC {auc:.4f} on {len(y)} labels; the model version has no "
            "holdout.roc_auc tag to compare with"
        )
        return result
    shortfall = base - auc
    z = stats.norm.ppf(1 - cfg.performance_alpha)
    significant = se > 0 and shortfall / se >= z
    if auc < base - cfg.auc_margin and significant:
        result.status = BREACH
        result.message = (
            f"live ROC AUC {auc:.4f} (± {se:.3f}) on {len(y)} labels is below the holdout "
            f"{base:.4f} minus the margin {cfg.auc_margin:.3f}"
        )
    else:
        result.status = OK
        result.message = (
            f"live ROC AUC {auc:.4f} (± {se:.3f}) on {len(y)} labels vs holdout {base:.4f} "
            f"(margin {cfg.auc_margin:.3f})"
        )
    return result
