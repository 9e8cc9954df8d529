"""`MonitoringConfig`: thresholds and windows of the monitoring stage (config schema, shared:
the config loader in common/config.py and the monitor stage both read it).

Meant to sit under an optional `monitoring:` key of the use-case config; like every
Seamless config model it forbids unknown keys and uses strict types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from components.common.strict import StrictModel as _Strict


class FeatureBounds(_Strict):
    """Allowed range of one numeric feature (either end may be open)."""

    min: float | None = None
    """Smallest valid value; null: no lower bound."""
    max: float | None = None
    """Largest valid value; null: no upper bound."""


class MonitoringConfig(_Strict):
    """Drift, data-quality and live-performance checks on the prediction log.

    A feature is `drift` when its shift is both large (PSI, missing-rate increase) and
    statistically significant after a Bonferroni correction over every test of the
    window, so the 13-odd features of a window do not multiply false alarms; `warn`
    when it is significant but small, or large but significant only uncorrected
    (details in components/monitor/drift.py). The window is `drift` when any feature is.
    """

    psi_warn: float = Field(0.1, gt=0)
    """PSI at or above which a shift counts as large (`drift` when also significant)."""
    psi_drift: float = Field(0.25, gt=0)
    """PSI at or above which a feature is `drift` whatever the test says."""
    ks_pvalue: float = Field(0.01, gt=0, lt=1)
    """Family-wise significance level of the KS / chi-square / missing-rate tests of a
    window: each test uses it divided by the number of tests (Bonferroni)."""
    missing_rate_increase: float = Field(0.05, gt=0, le=1)
    """Absolute rise of a feature's missing rate over the reference that counts as large
    (`drift` when also significant); half of it, significant, is `warn`."""
    out_of_range_warn: float = Field(0.01, ge=0, le=1)
    """Share of a feature's non-missing values outside its bounds (or unseen categories)
    above which it is `warn`."""
    out_of_range_drift: float = Field(0.05, ge=0, le=1)
    """Share of values outside the bounds (or unseen categories) that is `drift`."""
    bounds: dict[str, FeatureBounds] = Field(default_factory=dict)
    """Feature -> configured valid range; features not listed use the reference min/max."""
    min_rows: int = Field(200, ge=1)
    """Fewest predictions in the drift window for a verdict; fewer is `not_enough_data`."""
    window_hours: float | None = Field(24.0, gt=0)
    """Drift window: predictions of the last N hours (null: the whole log). A run reads
    the logs from the start of the longer of the two windows (plus the served baseline),
    so its time and memory follow the windows, not the log's age; null reads it all."""
    max_rows: int | None = Field(20_000, gt=0)
    """Drift window: at most the latest N predictions of it (null: no cap)."""
    min_labels: int = Field(200, ge=1)
    """Fewest labelled predictions (with both classes) for a live-performance verdict."""
    label_window_hours: float | None = Field(24.0 * 7, gt=0)
    """Performance window: labelled predictions made in the last N hours (null: all)."""
    max_labels: int | None = Field(5_000, gt=0)
    """Performance window: at most the latest N labelled predictions (null: no cap)."""
    auc_margin: float = Field(0.05, ge=0, lt=1)
    """Breach when live ROC AUC < holdout ROC AUC minus this margin (and the shortfall
    is significant at `performance_alpha`)."""
    performance_alpha: float = Field(0.05, gt=0, lt=1)
    """One-sided level of the AUC shortfall test (Hanley-McNeil standard error), so a
    small label window's noise alone is not a breach."""
    false_alarm_target: float = Field(0.05, gt=0, lt=1)
    """Share of same-distribution windows that may be flagged `drift`; the defaults
    are tested to stay under it (measured: see components/monitor/README.md)."""
    profile_bins: int = Field(10, ge=2, le=100)
    """Quantile bins per numeric feature in the reference profile (at training time)."""
    profile_sample_size: int = Field(5_000, ge=100, le=5_000)
    """Training values kept per numeric feature for the KS test (at training time)."""
    reference: Literal["served", "training"] = "served"
    """What the drift window is compared with. `served`: the monitored version's
    post-deployment baseline, its first `baseline_rows` served predictions (what serving
    saw right after the deployment; drift is a change since then). `training`: the
    profile of the training rows stored with the model; features that trend over the
    training period (e.g. counts that accumulate) then differ from any recent window
    even when nothing changed (docs/drift-benchmark.md). Either way the report also
    shows the window against the training profile."""
    baseline_rows: int = Field(500, ge=50)
    """`reference: served`: predictions of the monitored version that make its baseline;
    until it has served that many, the drift verdict is `not_enough_data`."""
    retrain_requires_change: bool = True
    """A `retrain` decision for a version that already had one needs new data (another
    source hash of the tables the retrain would ingest) or a new signal (a feature
    drifting that did not then, or a performance breach that was not there); otherwise
    the decision is `retrain_skipped` (recorded in the audit trail). False: every
    drift or breach says `retrain`."""

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringConfig:
        if self.psi_drift < self.psi_warn:
            raise ValueError(
                f"psi_drift ({self.psi_drift}) must be at least psi_warn ({self.psi_warn})"
            )
        if self.out_of_range_drift < self.out_of_range_warn:
            raise ValueError(
                f"out_of_range_drift ({self.out_of_range_drift}) must be at least "
                f"out_of_range_warn ({self.out_of_range_warn})"
            )
        for name, b in self.bounds.items():
            if b.min is not None and b.max is not None and b.min > b.max:
                raise ValueError(f"bounds.{name}: min {b.min} is above max {b.max}")
        return self


def monitoring_config(config: Any) -> MonitoringConfig:
    """The use case's `monitoring:` section, or the defaults when it has none (yet)."""
    found = getattr(config, "monitoring", None)
    return found if isinstance(found, MonitoringConfig) else MonitoringConfig()
