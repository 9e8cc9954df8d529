"""Expectations: a starter suite of checks from the profile (`starter_expectations`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from components.common.config import ColumnType
from pipelines.scaffold.common import MARGIN, MIN_ROWS, counted, n
from pipelines.scaffold.label import LabelPlan
from pipelines.scaffold.profile import ColumnProfile


@dataclass(frozen=True)
class Expectation:
    comment: str
    spec: dict[str, Any]


def _step(span: float) -> float:
    return float(10 ** math.floor(math.log10(span))) if span > 0 else 1.0


def widened_range(p: ColumnProfile) -> tuple[float, float]:
    """The observed [min, max] widened by MARGIN of the range on each side, rounded
    outward; a column never below zero keeps zero as its floor."""
    lo, hi = float(p.minimum), float(p.maximum)
    margin = MARGIN * (hi - lo) or MARGIN * max(abs(hi), 1.0)
    step = 1.0 if p.kind == "int" else _step(margin)
    low = math.floor((lo - margin) / step) * step
    high = math.ceil((hi + margin) / step) * step
    if lo >= 0:
        low = max(0.0, low)
    digits = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return round(low, digits), round(high, digits)


def _number(value: float, kind: ColumnType) -> int | float:
    return int(value) if kind == "int" or float(value).is_integer() else float(value)


def null_budget(p: ColumnProfile) -> float | None:
    """`mostly` for a not-null check: the observed share of values, less some slack."""
    share = p.nulls / p.rows if p.rows else 0.0
    allowed = min(1.0, share + max(0.01, share / 2))
    mostly = math.floor((1.0 - allowed) * 1000) / 1000
    return mostly if mostly > 0 else None


def starter_expectations(
    table: str,
    profiles: dict[str, ColumnProfile],
    features: list[str],
    label: LabelPlan,
    rows: int,
) -> list[Expectation]:
    """Checks from the profile: what must hold is critical, the rest warnings."""

    def spec(kind: str, kwargs: dict[str, Any], severity: str = "warning") -> dict[str, Any]:
        return {"table": table, "type": kind, "kwargs": kwargs, "severity": severity}

    out = [
        Expectation(
            f"must hold: enough rows to train and evaluate (the profile had {n(rows)})",
            spec(
                "expect_table_row_count_to_be_between",
                {"min_value": min(rows, MIN_ROWS)},
                "critical",
            ),
        )
    ]
    both = [label.positive, *label.negatives[:1]]
    out.append(
        Expectation(
            "must hold: the positive class and the main negative class both occur",
            spec(
                "expect_column_distinct_values_to_contain_set",
                {"column": label.column, "value_set": both},
                "critical",
            ),
        )
    )
    for col in features:
        p = profiles[col]
        if p.kind in ("int", "float") and p.minimum is not None:
            low, high = widened_range(p)
            out.append(
                Expectation(
                    f"{col}: observed {_plain_number(p.minimum)} to {_plain_number(p.maximum)}, "
                    f"widened by {MARGIN:.0%} of the range",
                    spec(
                        "expect_column_values_to_be_between",
                        {
                            "column": col,
                            "min_value": _number(low, p.kind),
                            "max_value": _number(high, p.kind),
                        },
                    ),
                )
            )
        if p.kind == "string" and p.top and p.distinct < p.parsed:
            out.append(
                Expectation(
                    f"{col}: the {counted(p.distinct, 'value')} seen",
                    spec(
                        "expect_column_values_to_be_in_set",
                        {"column": col, "value_set": sorted(v for v, _ in p.top)},
                    ),
                )
            )
        mostly = null_budget(p)
        if mostly is not None:
            out.append(
                Expectation(
                    f"{col}: "
                    + (f"{p.nulls / p.rows:.1%} null" if p.nulls else "never null")
                    + " in the profile",
                    spec("expect_column_values_to_not_be_null", {"column": col, "mostly": mostly}),
                )
            )
    return out


def _plain_number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6g}"
    return f"{value:,}" if isinstance(value, int | float) else str(value)
