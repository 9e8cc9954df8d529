"""The challenger's metric on each group of each declared segment (config `compliance.segments`).

Measures only: whether a gap or an unmeasurable group fails the policy is decided by
governance/compliance.py, which reads this report from the evaluation record. A group
whose metric cannot be computed (no rows, or one class where the metric needs both)
gets `value: null` and the reason in `undefined`, never a number that means nothing
(scikit-learn's ROC AUC raises there, and F1 with no positive row would say 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, log_loss

from components.common.compliance_config import ComplianceConfig, SegmentConfig
from components.common.labels import canonical, canonical_series

NEEDS_BOTH_CLASSES = {"roc_auc", "pr_auc"}


def metric_value(
    metric: str, y: np.ndarray, p: np.ndarray, threshold: float
) -> tuple[float | None, str | None]:
    """(value, None), or (None, why it is undefined on these rows)."""
    from sklearn.metrics import roc_auc_score

    n, positives = len(y), int(y.sum())
    if n == 0:
        return None, "no rows"
    if metric in NEEDS_BOTH_CLASSES and positives in (0, n):
        only = "positive" if positives else "negative"
        return None, f"only {only} rows ({n}), so {metric} is undefined"
    if metric == "f1" and positives == 0:
        return None, f"no positive rows ({n} negative), so f1 is undefined"
    if metric == "roc_auc":
        return float(roc_auc_score(y, p)), None
    if metric == "pr_auc":
        return float(average_precision_score(y, p)), None
    if metric == "f1":
        return float(f1_score(y, (p >= threshold).astype(int), zero_division=0)), None
    if metric == "log_loss":
        return float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])), None
    if metric == "brier":
        return float(brier_score_loss(y, p)), None
    raise ValueError(f"unknown segment metric {metric!r}")


def bin_label(low: float, high: float, last: bool) -> str:
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    return f"[{num(low)}, {num(high)}{']' if last else ')'}"


def groups(segment: SegmentConfig, column: pd.Series) -> Iterator[tuple[str, np.ndarray]]:
    """(group label, boolean row mask) for each value or bin, in config order."""
    if segment.values is not None:
        texts = canonical_series(column)
        for value in segment.values:
            yield str(canonical(value)), (texts == canonical(value)).to_numpy(dtype=bool)
        return
    assert segment.bins is not None
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    edges = segment.bins
    for i, (low, high) in enumerate(pairwise(edges)):
        last = i == len(edges) - 2
        upper = numbers <= high if last else numbers < high
        yield bin_label(low, high, last), (numbers >= low) & upper


def segment_report(
    policy: ComplianceConfig,
    metric: str,
    holdout: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    """Overall metric, and per segment its groups (rows, positives, value, gap to overall)
    and the spread between its measured groups."""
    overall, _ = metric_value(metric, y, p, threshold)
    segments = []
    for index, segment in enumerate(policy.segments):
        column = holdout[segment.column]
        assigned = np.zeros(len(holdout), dtype=bool)
        rows: list[dict[str, Any]] = []
        for label, mask in groups(segment, column):
            assigned |= mask
            value, why = metric_value(metric, y[mask], p[mask], threshold)
            rows.append(
                {
                    "group": label,
                    "rows": int(mask.sum()),
                    "positives": int(y[mask].sum()),
                    "value": value,
                    "gap": None if value is None or overall is None else value - overall,
                    "undefined": why,
                }
            )
        measured: list[float] = [r["value"] for r in rows if r["value"] is not None]
        segments.append(
            {
                "index": index,
                "name": segment.label,
                "column": segment.column,
                "groups": rows,
                "unassigned_rows": int((~assigned).sum()),
                "spread": (max(measured) - min(measured)) if len(measured) >= 2 else None,
            }
        )
    return {"metric": metric, "overall": overall, "rows": len(y), "segments": segments}
