"""Drift statistics of a window that is sorted once: bin counts and the two-sample KS test.

`scipy.stats.ks_2samp` sorts both samples and then looks every pooled value up in both
(two `searchsorted` calls of n1 + n2 queries): ~270 ms for a million rows against a
5,000-value reference sample. Here the window is sorted once (~20 ms) and everything
else is a lookup of the few reference values or bin edges into it.

Why looking up only the reference values gives scipy's statistic exactly: between two
consecutive reference values the reference ECDF F2 is constant while the window ECDF F1
only rises, so over that stretch F1 - F2 is largest at the last window value before the
next reference value and smallest at the reference value that starts it. Both are
`searchsorted` counts at the reference values (side "left" and "right"), divided by
n1 and n2 the same way scipy divides them, so the floats are the ones scipy compares.
The p-value then comes from scipy's own functions, chosen as `ks_2samp` chooses them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

try:  # private helpers of ks_2samp: the only way to get its p-value from a statistic
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - a scipy that moved them: use ks_2samp itself
    _attempt_exact_2kssamp = None

MAX_AUTO_N = 10_000  # ks_2samp's 'auto' is exact when both samples are at most this size
_ALTERNATIVES = {"t": "two-sided", "g": "greater", "l": "less"}


def bin_counts_sorted(x_sorted: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Counts per bin i: edges[i-1] < x <= edges[i], outer bins open (profile.bin_index).

    Equal to `np.bincount(profile.bin_index(x, edges), minlength=len(edges) + 1)` for
    NaN-free `x`, at the cost of one lookup per edge instead of one per value.
    """
    e = np.asarray(edges, dtype=float)
    at_or_below = np.searchsorted(x_sorted, e, side="right")
    return np.diff(np.concatenate([[0], at_or_below, [len(x_sorted)]]))


def ks_pvalue(
    d: float, n1: int, n2: int, alternative: str = "two-sided", method: str = "auto"
) -> tuple[float, float]:
    """(statistic, p-value) of `ks_2samp` for statistic `d` and sample sizes n1, n2.

    The branch order follows scipy's `ks_2samp`; its exact method rounds the statistic
    to a multiple of 1/lcm(n1, n2), so the statistic is returned too.
    """
    if method not in ("auto", "exact", "asymp"):
        raise ValueError(f"Invalid value for mode: {method}")
    alternative = _ALTERNATIVES.get(alternative.lower()[:1], alternative)
    g = math.gcd(n1, n2)
    mode = method
    if mode == "auto":
        mode = "exact" if max(n1, n2) <= MAX_AUTO_N else "asymp"
    elif mode == "exact" and n1 // g >= np.iinfo(np.int32).max / (n2 // g):
        mode = "asymp"
        warnings.warn(
            f"Exact ks_2samp calculation not possible with samples sizes {n1} and {n2}. "
            "Switching to 'asymp'.",
            RuntimeWarning,
            stacklevel=2,
        )
    prob = -np.inf
    if mode == "exact":
        assert _attempt_exact_2kssamp is not None
        success, d, prob = _attempt_exact_2kssamp(n1, n2, g, d, alternative)
        if not success:
            mode = "asymp"
            warnings.warn(
                "ks_2samp: Exact calculation unsuccessful. Switching to method=asymp.",
                RuntimeWarning,
                stacklevel=2,
            )
    if mode == "asymp":
        m, n = sorted([float(n1), float(n2)], reverse=True)
        en = m * n / (m + n)
        if alternative == "two-sided":
            prob = stats.kstwo.sf(d, np.round(en))
        else:  # Hodges' approximation, as scipy (m is the larger sample)
            z = np.sqrt(en) * d
            prob = np.exp(-2 * z**2 - 2 * z * (m + 2 * n) / np.sqrt(m * n * (m + n)) / 3.0)
    return float(d), float(np.clip(prob, 0, 1))


def ks_2samp_sorted(
    x_sorted: np.ndarray,
    y_sorted: np.ndarray,
    alternative: str = "two-sided",
    method: str = "auto",
) -> tuple[float, float]:
    """(statistic, p-value) equal to `scipy.stats.ks_2samp(x, y, alternative, method)`.

    Both arrays must be sorted ascending (NaN last, as np.sort leaves them); `y` is the
    small side: the cost is O(len(y) * log(len(x))) after the sorts.
    """
    n1, n2 = len(x_sorted), len(y_sorted)
    if min(n1, n2) == 0:
        raise ValueError("Data passed to ks_2samp must not be empty")
    if np.isnan(x_sorted[-1]) or np.isnan(y_sorted[-1]):
        return float("nan"), float("nan")  # ks_2samp's default nan_policy='propagate'
    if _attempt_exact_2kssamp is None:  # pragma: no cover
        res = stats.ks_2samp(x_sorted, y_sorted, alternative=alternative, method=method)
        return float(res.statistic), float(res.pvalue)
    # F1 - F2 at each reference value, and just before it (after the last window value
    # below it); ks_2samp evaluates it at every pooled value, these are its extremes.
    at = (
        np.searchsorted(x_sorted, y_sorted, side="right") / n1
        - np.searchsorted(y_sorted, y_sorted, side="right") / n2
    )
    before = (
        np.searchsorted(x_sorted, y_sorted, side="left") / n1
        - np.searchsorted(y_sorted, y_sorted, side="left") / n2
    )
    # 0 is attained at the largest pooled value (both ECDFs are 1 there).
    max_s = max(float(at.max()), float(before.max()), 0.0)
    min_s = float(np.clip(-min(float(at.min()), 0.0), 0, 1))
    alternative = _ALTERNATIVES.get(alternative.lower()[:1], alternative)
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"Invalid value for alternative: {alternative}")
    d = min_s if alternative == "less" or (alternative == "two-sided" and min_s > max_s) else max_s
    return ks_pvalue(d, n1, n2, alternative, method)
