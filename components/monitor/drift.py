"""Drift and data quality of a window of served feature rows against the reference profile.

Per feature three checks:

- distribution: PSI over the reference's quantile bins (numeric) or categories, plus a
  test: two-sample Kolmogorov-Smirnov against the stored training sample (numeric) or
  chi-square goodness of fit against the training frequencies (categorical);
- missing values: one-sided binomial test of the window's missing rate against the
  training rate;
- range: share of values outside the configured bounds or the training min/max
  (numeric), share of categories never seen in training (categorical).

Status rule (the same for every feature): a shift is `drift` when it is large (PSI >=
`psi_warn`, missing rate up by >= `missing_rate_increase`) *and* significant at
`ks_pvalue / number of tests` (Bonferroni over every test of the window), or when PSI
alone reaches `psi_drift`. It is `warn` when it is significant after the correction but
small, or large but significant only at the uncorrected `ks_pvalue`: a large PSI that
no test backs is the noise of a small window, not a warning. With ~13 features x 2
tests, the uncorrected level would flag about a quarter of same-distribution windows;
the corrected one keeps the window's family-wise false-alarm rate at or below
`ks_pvalue`. Range checks have no test: their thresholds sit far above the 2/N share
of out-of-range values a window drawn like N training rows shows.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from components.common.errors import SeamlessError
from components.common.monitoring_config import MonitoringConfig
from components.common.reference_profile import CATEGORICAL, categorical_values
from components.monitor.fast_stats import bin_counts_sorted, ks_2samp_sorted

OK, WARN, DRIFT, NOT_ENOUGH_DATA = "ok", "warn", "drift", "not_enough_data"
STATUS_CODE = {OK: 0, WARN: 1, DRIFT: 2, NOT_ENOUGH_DATA: -1}
"""Numeric encoding for gauges: 0 ok, 1 warn, 2 drift, -1 not enough data."""
UNSEEN = "__unseen__"
_FLOOR = 1e-4  # reference share given to an empty bin, so PSI stays finite
TESTS_PER_FEATURE = 2  # distribution test + missing-rate test
DRIFT_THREADS = 2  # features checked in parallel by `compare` (the 2-CPU pods)


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    status: str
    rows: int
    """Non-missing values in the window."""
    psi: float
    test: str
    """`ks` or `chi2`; `none` when there was nothing to compare."""
    statistic: float
    pvalue: float
    missing_rate: float
    reference_missing_rate: float
    missing_pvalue: float
    out_of_range_rate: float
    """Numeric: share outside the bounds; categorical: share of unseen categories."""
    mean: float | None = None
    reference_mean: float | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class DriftResult:
    status: str
    rows: int
    min_rows: int
    tests: int
    corrected_pvalue: float
    features: list[FeatureDrift] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def by_status(self, status: str) -> list[str]:
        return [f.feature for f in self.features if f.status == status]


def psi(expected: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of window `counts` against reference shares."""
    e = np.maximum(np.asarray(expected, dtype=float), _FLOOR)
    e = e / e.sum()
    n = counts.sum()
    # Half a count per bin: an empty window bin is not infinitely surprising.
    a = (counts + 0.5) / (n + 0.5 * len(counts))
    return float(np.sum((a - e) * np.log(a / e)))


def chi_square(expected_shares: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Goodness of fit, pooling the rarest slots until the pool expects >= 5 rows."""
    n = counts.sum()
    e = np.maximum(np.asarray(expected_shares, dtype=float), _FLOOR)
    e = n * e / e.sum()
    order = np.argsort(e)
    pooled_e = pooled_o = 0.0
    i = 0
    while i < len(order) and pooled_e < 5:
        pooled_e += e[order[i]]
        pooled_o += counts[order[i]]
        i += 1
    rest = order[i:]
    exp = np.concatenate([[pooled_e], e[rest]]) if pooled_e > 0 else e[rest]
    obs = np.concatenate([[pooled_o], counts[rest]]) if pooled_e > 0 else counts[rest]
    if len(exp) < 2:
        return 0.0, 1.0
    stat = float(np.sum((obs - exp) ** 2 / exp))
    return stat, float(stats.chi2.sf(stat, len(exp) - 1))


def chi_square_two_sample(reference: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Homogeneity of two count vectors (reference sample vs window), 2 x k chi-square;
    the rarest slots pooled until the pool holds >= 10 rows of the two together."""
    ref = np.asarray(reference, dtype=float)
    win = np.asarray(counts, dtype=float)
    keep = (ref + win) > 0
    ref, win = ref[keep], win[keep]
    order = np.argsort(ref + win)
    pooled = 0.0
    i = 0
    while i < len(order) and pooled < 10:
        pooled += ref[order[i]] + win[order[i]]
        i += 1
    head, rest = order[:i], order[i:]
    table = np.array(
        [
            [ref[head].sum(), *ref[rest]],
            [win[head].sum(), *win[rest]],
        ]
    )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    stat, pvalue, _, _ = stats.chi2_contingency(table, correction=False)
    return float(stat), float(pvalue)


def missing_test_two_sample(missing: int, n: int, ref_missing: int, ref_rows: int) -> float:
    """One-sided Fisher exact p-value that the window's missing rate is above the
    reference sample's."""
    if n == 0 or missing == 0 or ref_rows == 0:
        return 1.0
    table = [[missing, n - missing], [ref_missing, ref_rows - ref_missing]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def missing_test(missing: int, n: int, reference_rate: float, reference_rows: int) -> float:
    """One-sided p-value of seeing `missing` or more of `n` at the reference rate."""
    if n == 0 or missing == 0:
        return 1.0
    # A rate of exactly 0 in training would make one missing value impossible.
    p0 = max(reference_rate, 1.0 / (2.0 * max(reference_rows, 1)))
    return float(stats.binom.sf(missing - 1, n, p0))


def feature_values(frame: pd.DataFrame, name: str, kind: str) -> pd.Series:
    if kind == CATEGORICAL:
        return categorical_values(frame[name])
    # No copy of a float64 column: the checks only read it.
    return pd.to_numeric(frame[name], errors="coerce").astype("float64", copy=False)


def check_feature(
    name: str,
    ref: dict[str, Any],
    values: pd.Series,
    cfg: MonitoringConfig,
    corrected: float,
    two_sample: bool = False,
) -> FeatureDrift:
    """One feature's checks; `two_sample`: the reference is itself a small sample (a
    served baseline), so its shares are tested as estimates, not as known values."""
    n = len(values)
    present = values.dropna()
    k_missing = n - len(present)
    miss_rate = k_missing / n if n else 0.0
    ref_miss = float(ref["missing_rate"])
    ref_rows = int(ref.get("rows", 0))
    if two_sample:
        miss_p = missing_test_two_sample(k_missing, n, round(ref_miss * ref_rows), ref_rows)
    else:
        miss_p = missing_test(k_missing, n, ref_miss, ref_rows)
    kind = str(ref["kind"])
    result = FeatureDrift(
        feature=name,
        kind=kind,
        status=OK,
        rows=len(present),
        psi=0.0,
        test="none",
        statistic=0.0,
        pvalue=1.0,
        missing_rate=miss_rate,
        reference_missing_rate=ref_miss,
        missing_pvalue=miss_p,
        out_of_range_rate=0.0,
    )
    if kind == CATEGORICAL:
        freqs: dict[str, float] = ref["frequencies"]
        cats = list(freqs)
        if len(present) and cats:
            known = present.isin(cats)
            counts = np.array(
                [*(present[known].value_counts().reindex(cats, fill_value=0)), (~known).sum()],
                dtype=float,
            )
            shares = np.array([*freqs.values(), 0.0])
            result.psi = psi(shares, counts)
            if two_sample:
                ref_counts = np.round(shares * (ref_rows - round(ref_miss * ref_rows)))
                result.statistic, result.pvalue = chi_square_two_sample(ref_counts, counts)
            else:
                result.statistic, result.pvalue = chi_square(shares, counts)
            result.test = "chi2"
            result.out_of_range_rate = float((~known).mean())
    else:
        x = present.to_numpy(dtype=float)
        sample = np.asarray(ref.get("sample") or [], dtype=float)
        if len(x) and len(sample):
            # Sorted once: bins, KS and range are then lookups of a few values into it
            # (fast_stats), with the same counts and floats as bincount / ks_2samp.
            xs = np.sort(x)
            counts = bin_counts_sorted(xs, ref["bin_edges"]).astype(float)
            result.psi = psi(np.asarray(ref["bin_frequencies"]), counts)
            result.statistic, result.pvalue = ks_2samp_sorted(xs, np.sort(sample), method="asymp")
            result.test = "ks"
            # The unsorted array: np.mean's pairwise sum depends on the order.
            result.mean, result.reference_mean = float(x.mean()), ref.get("mean")
            bounds = cfg.bounds.get(name)
            lo = bounds.min if bounds is not None else ref.get("min")
            hi = bounds.max if bounds is not None else ref.get("max")
            outside = 0
            if lo is not None:
                outside += int(np.searchsorted(xs, lo, side="left"))
            if hi is not None:
                outside += len(xs) - int(np.searchsorted(xs, hi, side="right"))
            result.out_of_range_rate = outside / len(xs)
    classify(result, cfg, corrected)
    return result


def classify(f: FeatureDrift, cfg: MonitoringConfig, corrected: float) -> None:
    """Set `status` and `reasons` from the statistics (see the module docstring)."""
    drift: list[str] = []
    warn: list[str] = []
    what = "KS" if f.test == "ks" else "chi-square"
    if f.test != "none":
        large = f.psi >= cfg.psi_warn
        significant = f.pvalue < corrected
        detail = f"PSI {f.psi:.3f}, {what} p={f.pvalue:.2g}"
        if f.psi >= cfg.psi_drift or (large and significant):
            drift.append(f"distribution shifted ({detail})")
        elif significant or (large and f.pvalue < cfg.ks_pvalue):
            warn.append(f"distribution changed ({detail})")
    increase = f.missing_rate - f.reference_missing_rate
    if increase > 0:
        detail = (
            f"missing {f.missing_rate:.1%} vs {f.reference_missing_rate:.1%} in training, "
            f"p={f.missing_pvalue:.2g}"
        )
        large = increase >= cfg.missing_rate_increase
        significant = f.missing_pvalue < corrected
        if large and significant:
            drift.append(f"more missing values ({detail})")
        elif (large and f.missing_pvalue < cfg.ks_pvalue) or (
            significant and increase >= cfg.missing_rate_increase / 2
        ):
            warn.append(f"more missing values ({detail})")
    label = "unseen categories" if f.kind == CATEGORICAL else "values out of range"
    if f.out_of_range_rate >= cfg.out_of_range_drift and f.out_of_range_rate > 0:
        drift.append(f"{label}: {f.out_of_range_rate:.1%}")
    elif f.out_of_range_rate > cfg.out_of_range_warn:
        warn.append(f"{label}: {f.out_of_range_rate:.1%}")
    f.reasons = drift + warn
    f.status = DRIFT if drift else WARN if warn else OK


def missing_features(profile: dict[str, Any], records: pd.DataFrame) -> list[str]:
    return [name for name in profile["features"] if name not in records.columns]


def not_enough_data(
    profile: dict[str, Any], window: pd.DataFrame, cfg: MonitoringConfig, why: str
) -> DriftResult:
    """The verdict of a window that cannot be judged (too small, no reference yet)."""
    tests = TESTS_PER_FEATURE * len(profile["features"])
    return DriftResult(
        status=NOT_ENOUGH_DATA,
        rows=len(window),
        min_rows=cfg.min_rows,
        tests=tests,
        corrected_pvalue=cfg.ks_pvalue / max(tests, 1),
        message=f"not enough data: {why}",
    )


def compare(profile: dict[str, Any], window: pd.DataFrame, cfg: MonitoringConfig) -> DriftResult:
    """Drift verdict of a window of feature rows (one column per feature)."""
    names = list(profile["features"])
    absent = missing_features(profile, window)
    if absent:
        raise SeamlessError(
            f"The served feature rows lack features {absent} that the reference profile has; "
            "the prediction log and the monitored model version do not match."
        )
    if len(window) < cfg.min_rows:
        return not_enough_data(
            profile,
            window,
            cfg,
            f"{len(window)} served rows in the window, {cfg.min_rows} needed (monitoring.min_rows)",
        )
    tests = TESTS_PER_FEATURE * len(names)
    corrected = cfg.ks_pvalue / max(tests, 1)
    result = DriftResult(
        status=OK, rows=len(window), min_rows=cfg.min_rows, tests=tests, corrected_pvalue=corrected
    )

    two_sample = bool(profile.get("two_sample"))

    def one(name: str) -> FeatureDrift:
        ref = profile["features"][name]
        values = feature_values(window, name, str(ref["kind"]))
        return check_feature(name, ref, values, cfg, corrected, two_sample)

    # Features are independent and numpy's sort / searchsorted release the GIL, so two
    # threads nearly halve a large window's time; map keeps the profile's order.
    workers = max(1, min(DRIFT_THREADS, os.cpu_count() or 1, len(names)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        result.features.extend(pool.map(one, names))
    drifted, warned = result.by_status(DRIFT), result.by_status(WARN)
    if drifted:
        result.status = DRIFT
        result.message = f"drift in {len(drifted)} feature(s): {', '.join(drifted)}"
    elif warned:
        result.status = WARN
        result.message = f"warnings on {len(warned)} feature(s): {', '.join(warned)}"
    else:
        result.message = f"no drift in {len(names)} features over {len(window)} rows"
    return result
