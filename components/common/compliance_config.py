"""`ComplianceConfig` and `ModelCardConfig`: the policy a model must pass before promotion,
and what its model card says that the data cannot (config schema, shared by the config
loader, the evaluate and register stages and governance/compliance.py).

Both sit under optional top-level keys of the use-case config, `compliance:` and
`model_card:`. The card describes the model; the policy decides. Like every Seamless
config model they forbid unknown keys and use strict types.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

from pydantic import Field, model_validator

from components.common.strict import StrictModel as _Strict

SegmentMetric = Literal["roc_auc", "pr_auc", "f1", "log_loss", "brier"]
SegmentValue = bool | int | float | str


class SegmentConfig(_Strict):
    """One attribute the holdout is split by (a sensitive attribute, an age band, a
    region): each listed value, or each bin, is one group whose metric is compared with
    the overall one. Rows in none of the groups (nulls included) are counted, not judged."""

    column: str = Field(min_length=1)
    """A feature of `features.service` (the holdout holds the service's features only)."""
    name: str | None = None
    """The segment's name in reports and sentences; default the column's name."""
    values: list[SegmentValue] | None = None
    """Groups by value, compared as text (`1`, `1.0` and `"1"` are one value), e.g.
    `[north, south, east, west]`. Give `values` or `bins`, not both."""
    bins: list[float] | None = None
    """Groups by numeric range: increasing edges `[18, 30, 45, 65, 100]` make the groups
    [18, 30), [30, 45), [45, 65) and [65, 100] (the last one closed). Numeric columns only."""
    max_gap: float | None = Field(None, ge=0)
    """This segment's bound, instead of `compliance.max_gap`."""
    min_rows: int | None = Field(None, ge=1)
    """This segment's smallest measurable group, instead of `compliance.min_rows`."""

    @model_validator(mode="after")
    def _one_grouping(self) -> SegmentConfig:
        where = f"segment '{self.label}'"
        if (self.values is None) == (self.bins is None):
            raise ValueError(f"{where} needs exactly one of `values` or `bins`")
        if self.values is not None:
            texts = [str(v).lower() if isinstance(v, bool) else str(v) for v in self.values]
            if not texts or len(set(texts)) != len(texts):
                raise ValueError(f"{where}: `values` must list distinct values, at least one")
        if self.bins is not None and (
            len(self.bins) < 2
            or not all(math.isfinite(b) for b in self.bins)
            or any(b <= a for a, b in pairwise(self.bins))
        ):
            raise ValueError(
                f"{where}: `bins` must be at least two finite, strictly increasing edges"
            )
        return self

    @property
    def label(self) -> str:
        return self.name or self.column


class ComplianceConfig(_Strict):
    """The policy a model must pass before it is promoted (docs/security.md, "Compliance
    gate"): its training data passed validation; its lineage is complete from the sources
    to the registered version; its model card was logged; and its metric on each declared
    segment is within `max_gap` of the overall metric (Fairlearn's "difference to
    overall"), with the gap between a segment's groups reported. A model that fails is
    registered as `challenger`, never promoted, with a one-sentence reason; `seamless
    promote` then needs an admin and `--override-compliance --reason`.

    Absent, none of this is enforced (the model card is still written). Declared, every
    check applies unless switched off here, and a segment group that cannot be measured
    (fewer than `min_rows` rows, or one class where the metric needs two) fails the policy
    unless `unmeasurable` is `report`."""

    validation: Literal["pass", "pass_or_warn"] = "pass_or_warn"
    """Validation verdicts the training data may have had: `pass_or_warn` honours the
    config's severities (warning-level expectations never block); `pass` also refuses
    data with a failed warning-level expectation."""
    lineage: bool = True
    """Require the whole chain, sources -> snapshot -> validation -> features -> training
    run -> model version, with no gap (what `seamless lineage` shows)."""
    model_card: bool = True
    """Require the model card to be logged on the version's run; `model_card.intended_use`
    and `model_card.owners` must then be set."""
    metric: SegmentMetric | None = None
    """Metric compared across segments; default `promotion.metric`."""
    max_gap: float = Field(0.05, ge=0)
    """Largest allowed distance, either way, between a group's metric and the overall
    holdout metric."""
    max_segment_gap: float | None = Field(None, ge=0)
    """Largest allowed distance between the best and worst group of one segment; null:
    reported only."""
    min_rows: int = Field(30, ge=1)
    """Holdout rows a group needs to be measured."""
    unmeasurable: Literal["fail", "report"] = "fail"
    """A group with fewer than `min_rows` rows, or one class where the metric needs both
    (ROC AUC, PR AUC; F1 needs a positive): `fail` fails the policy, naming the group;
    `report` counts and lists it in the model card only."""
    segments: list[SegmentConfig] = Field(default_factory=list)
    """The segments to compare; none: only validation, lineage and the card are checked."""

    @model_validator(mode="after")
    def _distinct_names(self) -> ComplianceConfig:
        names = [s.label for s in self.segments]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"compliance.segments names {twice} more than once; give each a distinct `name`"
            )
        return self


class ModelCardConfig(_Strict):
    """What the model card (Markdown and JSON, logged on the registered version's run and
    shown as the register step's output in the KFP UI) says that the data cannot. The
    rest of the card (data sources and hashes, date range, rows, features, training setup,
    holdout and segment metrics, approval trail) is filled in by the pipeline."""

    intended_use: str = ""
    """Who the model is for and what decisions it may inform."""
    out_of_scope: list[str] = Field(default_factory=list)
    """Uses the model is not meant for."""
    limitations: list[str] = Field(default_factory=list)
    """Known limitations and caveats, one per item."""
    owners: list[str] = Field(default_factory=list)
    """People or teams accountable for the model, e.g. `risk-ml@acme.example`."""
