"""The sorted-window statistics equal scipy's ks_2samp and plain histogram counts."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from components.common.monitoring_config import FeatureBounds, MonitoringConfig
from components.common.reference_profile import bin_index, build_profile
from components.monitor.drift import compare, psi
from components.monitor.fast_stats import bin_counts_sorted, ks_2samp_sorted, ks_pvalue
from tests.monitor.synthetic import CATEGORICAL, NUMERIC, rows

pytestmark = pytest.mark.unit

TOL = 1e-9


def _samples(rng: np.random.Generator, kind: int, n1: int, n2: int) -> tuple[np.ndarray, ...]:
    if kind == 0:  # continuous, shifted
        return rng.normal(size=n1), rng.normal(0.3, 1.2, size=n2)
    if kind == 1:  # few distinct values: ties inside and across the samples
        return rng.integers(0, 5, n1).astype(float), rng.integers(0, 7, n2).astype(float)
    if kind == 2:  # rounded, heavy ties
        return np.round(rng.exponential(size=n1), 1), np.round(rng.exponential(1.4, n2), 1)
    if kind == 3:  # one sample a subset of the other
        x = rng.normal(size=n1)
        return x, rng.choice(x, size=n2)
    # disjoint ranges: statistic 1
    return rng.uniform(0, 1, n1), rng.uniform(2, 3, n2)


def _check(x: np.ndarray, y: np.ndarray, alternative: str, method: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exact -> asymp switches, both sides
        want = stats.ks_2samp(x, y, alternative=alternative, method=method)
        got = ks_2samp_sorted(np.sort(x), np.sort(y), alternative, method)
    assert got[0] == pytest.approx(float(want.statistic), abs=TOL, rel=0, nan_ok=True)
    assert got[1] == pytest.approx(float(want.pvalue), abs=TOL, rel=0, nan_ok=True)


@pytest.mark.parametrize("method", ["auto", "asymp", "exact"])
def test_ks_equals_scipy_on_small_samples(method: str) -> None:
    rng = np.random.default_rng(7)
    for case in range(300):
        n1, n2 = (int(v) for v in rng.integers(1, 120, 2))
        if case % 10 == 0:
            n2 = n1  # equal sizes: the exact method's own formula
        x, y = _samples(rng, case % 5, n1, n2)
        for alternative in ("two-sided", "less", "greater"):
            _check(x, y, alternative, method)


def test_ks_equals_scipy_on_large_and_mixed_sizes() -> None:
    rng = np.random.default_rng(11)
    sizes = [(20_000, 5_000), (5_000, 20_000), (9_000, 10_000), (10_001, 300), (100_000, 5_000)]
    for i, (n1, n2) in enumerate(sizes):
        x, y = _samples(rng, i % 5, n1, n2)
        for alternative in ("two-sided", "less", "greater"):
            _check(x, y, alternative, "auto")
        _check(x, y, "two-sided", "asymp")


def test_ks_of_identical_samples_and_single_values() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=500)
    for y in (x.copy(), np.full(40, 1.5), np.array([0.0])):
        for method in ("auto", "asymp"):
            _check(x, y, "two-sided", method)
            _check(y, x, "two-sided", method)
    assert ks_2samp_sorted(np.sort(x), np.sort(x))[0] == 0.0
    _check(np.array([1.0]), np.array([1.0]), "two-sided", "auto")
    _check(np.array([1.0]), np.array([2.0]), "two-sided", "auto")


def test_ks_with_infinities_nan_and_empty() -> None:
    x = np.array([-np.inf, 0.0, 1.0, 2.0, np.inf, np.inf])
    y = np.array([-1.0, 0.5, np.inf])
    _check(x, y, "two-sided", "auto")
    stat, p = ks_2samp_sorted(np.sort(np.array([1.0, np.nan])), np.array([0.0, 1.0]))
    assert np.isnan(stat) and np.isnan(p)  # scipy's nan_policy='propagate'
    with pytest.raises(ValueError, match="empty"):
        ks_2samp_sorted(np.array([]), np.array([1.0]))


def test_pvalue_from_statistic_rejects_bad_method() -> None:
    with pytest.raises(ValueError):
        ks_pvalue(0.1, 10, 10, method="approx")


def _histogram_counts(x: np.ndarray, edges: list[float]) -> np.ndarray:
    """The plain way: np.histogram, whose bins are [a, b); negated, they are (a, b]
    like the profile's, so ties at an edge land on the same side."""
    neg = np.concatenate([[-np.inf], -np.asarray(edges, dtype=float)[::-1], [np.inf]])
    return np.histogram(-x, bins=neg)[0][::-1]


def _histogram_psi(reference: np.ndarray, x: np.ndarray, bins: int = 10) -> float:
    edges = [float(e) for e in np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))]
    ref_counts = _histogram_counts(reference, edges)
    return psi(ref_counts / ref_counts.sum(), _histogram_counts(x, edges).astype(float))


def test_bin_counts_equal_histogram_and_bincount() -> None:
    rng = np.random.default_rng(5)
    for case in range(200):
        n = int(rng.integers(1, 3_000))
        x, ref = _samples(rng, case % 5, n, 2_000)
        edges = [float(e) for e in np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))]
        if case % 7 == 0:
            edges = edges + [float(v) for v in x[:3]]  # edges that are window values
            edges = sorted(set(edges))
        got = bin_counts_sorted(np.sort(x), edges)
        assert got.tolist() == _histogram_counts(x, edges).tolist()
        want = np.bincount(bin_index(x, edges), minlength=len(edges) + 1)
        assert got.tolist() == want.tolist()
    assert bin_counts_sorted(np.sort(np.array([1.0, 2.0])), []).tolist() == [2]


def test_psi_from_profile_equals_histogram_psi() -> None:
    rng = np.random.default_rng(9)
    reference = pd.DataFrame(
        {
            "normal": rng.normal(size=30_000),
            "ints": rng.poisson(3, 30_000).astype(float),
            "skewed": np.round(rng.lognormal(2, 1, 30_000), 1),
        }
    )
    window = pd.DataFrame(
        {
            "normal": rng.normal(0.2, 1.0, 20_000),
            "ints": rng.poisson(3.4, 20_000).astype(float),
            "skewed": np.round(rng.lognormal(2.1, 1, 20_000), 1),
        }
    )
    profile = build_profile(reference, list(reference.columns), [])
    result = compare(profile, window, MonitoringConfig())
    for f in result.features:
        want = _histogram_psi(reference[f.feature].to_numpy(), window[f.feature].to_numpy())
        assert f.psi == pytest.approx(want, abs=TOL, rel=0)


def _slow_numeric(ref: dict, x: np.ndarray, lo: float | None, hi: float | None) -> tuple:
    """What drift.check_feature computed before the sorted-window path."""
    counts = np.bincount(
        bin_index(x, ref["bin_edges"]), minlength=len(ref["bin_frequencies"])
    ).astype(float)
    ks = stats.ks_2samp(x, np.asarray(ref["sample"]), method="asymp")
    outside = np.zeros(len(x), dtype=bool)
    if lo is not None:
        outside |= x < lo
    if hi is not None:
        outside |= x > hi
    return (
        psi(np.asarray(ref["bin_frequencies"]), counts),
        float(ks.statistic),
        float(ks.pvalue),
        float(x.mean()),
        float(outside.mean()),
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_compare_results_are_unchanged_by_the_fast_path(seed: int) -> None:
    profile = build_profile(rows(20_000, seed=0), NUMERIC, CATEGORICAL)
    window = rows(5_000, seed=seed, income_shift=0.3 * seed, score_scale=1.2)
    cfg = MonitoringConfig(bounds={"credit_score": FeatureBounds(min=350, max=800)})
    result = compare(profile, window, cfg)
    assert [f.feature for f in result.features] == list(profile["features"])
    for f in result.features:
        if f.kind != "numeric":
            continue
        ref = profile["features"][f.feature]
        x = pd.to_numeric(window[f.feature]).dropna().to_numpy(dtype=float)
        b = cfg.bounds.get(f.feature)
        lo, hi = (b.min, b.max) if b is not None else (ref["min"], ref["max"])
        want = _slow_numeric(ref, x, lo, hi)
        # Same counts, same floats: exactly equal, not merely close.
        assert (f.psi, f.statistic, f.pvalue, f.mean, f.out_of_range_rate) == want
