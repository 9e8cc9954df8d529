"""Holdout metrics and the champion/challenger gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    roc_auc_score,
    roc_curve,
)

from components.common.config import PromotionConfig, SeamlessConfig
from components.common.errors import SeamlessError
from components.common.model_input import model_input
from components.common.tracking import CHAMPION, champion_version, mlflow_client
from components.train.training import encode_labels

LOWER_IS_BETTER = {"log_loss", "brier"}


@dataclass
class Decision:
    decision: str  # "promote" | "reject"
    reason: str
    metric: str
    challenger: float
    champion: float | None
    champion_version: str | None
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    segments: dict[str, Any] = field(default_factory=dict)
    """The challenger per declared segment (segments.segment_report); {} without any."""
    holdout_period: dict[str, str] = field(default_factory=dict)
    """First and last label time of the holdout rows (ISO 8601)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean score| over equal-width score bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    pred = (p >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }


def roc_points(
    y: np.ndarray, p: np.ndarray, max_points: int = 200
) -> list[tuple[float, float, float]]:
    """(fpr, tpr, threshold) triples, thinned so the KFP artifact stays small."""
    fpr, tpr, thr = roc_curve(y, p)
    thr = np.where(np.isfinite(thr), thr, 1.0)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    return [(float(a), float(b), float(c)) for a, b, c in zip(fpr, tpr, thr, strict=True)]


def confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> list[list[int]]:
    return confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).tolist()


def score(model: Any, config: SeamlessConfig, holdout: pd.DataFrame) -> np.ndarray:
    """Positive-class probabilities of a scikit-learn model on the holdout."""
    return np.asarray(model.predict_proba(model_input(config, holdout))[:, 1], dtype=float)


def gate(
    policy: PromotionConfig,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None,
    same_score: tuple[float, int] | None = None,
) -> Decision:
    """Promote when the challenger beats the champion by the configured margin.

    `same_score` (score, rows): the challenger gave every holdout row that one score; it
    learned nothing and is never promoted, whatever its metric says (ROC AUC 0.5 passes a
    floor of 0.5)."""
    metric = policy.metric
    value = challenger[metric]
    lower = metric in LOWER_IS_BETTER
    base = Decision(
        decision="reject",
        reason="",
        metric=metric,
        challenger=value,
        champion=None if champion is None else champion[metric],
        champion_version=champion_version,
        challenger_metrics=challenger,
        champion_metrics=champion or {},
    )
    if same_score is not None:
        base.reason = (
            f"challenger gives every one of the {same_score[1]} holdout rows the same score "
            f"({same_score[0]:.4f}): it learned nothing from its training rows (too few for "
            "the estimator's settings, such as min_samples_leaf, or no feature that varies)"
        )
        return base
    if policy.min_value is not None:
        fails = value > policy.min_value if lower else value < policy.min_value
        if fails:
            bound = "at most" if lower else "at least"
            base.reason = (
                f"challenger {metric} {value:.4f} does not reach the required {bound} "
                f"{policy.min_value:.4f} (promotion.min_value)"
            )
            return base
    if champion is None:
        base.decision = "promote"
        base.reason = f"no champion yet; challenger {metric} {value:.4f} becomes the first champion"
        return base
    old = champion[metric]
    improvement = (old - value) if lower else (value - old)
    needed = policy.min_improvement
    if improvement > 0 and improvement >= needed:
        base.decision = "promote"
        base.reason = (
            f"challenger {metric} {value:.4f} beats champion v{champion_version} {old:.4f} by "
            f"{improvement:.4f} (needed {needed:.4f})"
        )
    else:
        base.reason = (
            f"challenger {metric} {value:.4f} vs champion v{champion_version} {old:.4f}: "
            f"improvement {improvement:+.4f} is below the required {needed:.4f}"
        )
    return base


def measure_segments(
    config: SeamlessConfig, holdout: pd.DataFrame, y: np.ndarray, p: np.ndarray
) -> dict[str, Any]:
    """The challenger's metric per declared segment group; {} when none is declared."""
    from components.evaluate.segments import segment_report

    policy = config.compliance
    if policy is None or not policy.segments:
        return {}
    metric = policy.metric or config.promotion.metric
    return segment_report(policy, metric, holdout, y, p, config.model.threshold)


def holdout_period(config: SeamlessConfig, holdout: pd.DataFrame) -> dict[str, str]:
    ts = pd.to_datetime(holdout[config.timestamp_key(config.labels.table)], utc=True)
    return {"first": ts.min().isoformat(), "last": ts.max().isoformat()}


def evaluate(
    config: SeamlessConfig, holdout: pd.DataFrame, model_uri: str
) -> tuple[Decision, dict[str, Any]]:
    """Score the challenger and the current champion on the same holdout and decide;
    the challenger is also measured on each declared segment (the register step's
    compliance policy judges those numbers)."""
    import mlflow.sklearn

    client = mlflow_client()
    y = encode_labels(config, holdout).to_numpy()
    threshold = config.model.threshold
    try:
        challenger_model = mlflow.sklearn.load_model(model_uri)
    except Exception as exc:
        raise SeamlessError(f"Cannot load the challenger model {model_uri}: {exc}") from None
    p = score(challenger_model, config, holdout)
    challenger = classification_metrics(y, p, threshold)
    measured: dict[str, Any] = {
        "segments": measure_segments(config, holdout, y, p),
        "holdout_period": holdout_period(config, holdout),
    }

    current = champion_version(client, config.model.name, CHAMPION)
    champion: dict[str, float] | None = None
    if current is not None:
        uri = f"models:/{config.model.name}@{CHAMPION}"
        try:
            champion = classification_metrics(
                y, score(mlflow.sklearn.load_model(uri), config, holdout), threshold
            )
        except Exception as exc:  # a champion that cannot score this data cannot be compared
            decision = Decision(
                decision="reject",
                reason=(
                    f"champion v{current.version} could not be scored on this holdout ({exc}); "
                    "promote manually once checked"
                ),
                metric=config.promotion.metric,
                challenger=challenger[config.promotion.metric],
                champion=None,
                champion_version=str(current.version),
                challenger_metrics=challenger,
                **measured,
            )
            return decision, {"roc": roc_points(y, p), "confusion": confusion(y, p, threshold)}
    same = (float(p[0]), len(p)) if len(p) and np.ptp(p) == 0 else None
    decision = gate(
        config.promotion,
        challenger,
        champion,
        None if current is None else str(current.version),
        same_score=same,
    )
    decision.segments = measured["segments"]
    decision.holdout_period = measured["holdout_period"]
    plots = {"roc": roc_points(y, p), "confusion": confusion(y, p, threshold)}
    return decision, plots
