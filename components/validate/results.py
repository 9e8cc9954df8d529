"""The validate stage's result model: plain dataclasses that round-trip through JSON.

Kept free of Great Expectations imports so the report, the KFP adapter and later
stages can read a stored result without paying GE's ~3 s import.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

Decision = Literal["pass", "warn", "fail"]

# Observed values and unexpected examples come from user data and can be huge
# (e.g. every distinct value of a column); KFP metadata and MLflow params are not
# the place for that, so they are cut to a readable size.
MAX_ITEMS = 20
MAX_STR = 200


def jsonable(value: Any, truncate: bool = True) -> Any:
    """`value` as plain JSON types (numpy, pandas and datetime values included).

    NaN becomes null and infinities the strings "inf"/"-inf", so the output also
    passes strict JSON encoders (`allow_nan=False`, protobuf Struct).
    """
    # Exact builtin types out: numpy's float64/str_ subclass float/str and must not leak.
    if value is None or isinstance(value, bool):
        return None if value is None else bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    if isinstance(value, str):
        text = str(value)
        return text[:MAX_STR] + "…" if truncate and len(text) > MAX_STR else text
    if isinstance(value, dict):
        items = list(value.items())
        if truncate:
            items = items[:MAX_ITEMS]
        return {str(k): jsonable(v, truncate) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        if truncate:
            seq = seq[:MAX_ITEMS]
        return [jsonable(v, truncate) for v in seq]
    if isinstance(value, Decimal):
        return jsonable(float(value), truncate)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    # numpy / pandas values, without importing either here.
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return jsonable(value.tolist(), truncate)
    if hasattr(value, "isoformat"):  # pandas Timestamp (NaT's isoformat is "NaT")
        text = value.isoformat()
        return None if text == "NaT" else text
    if type(value).__name__ in {"NaTType", "NAType"}:
        return None
    return jsonable(str(value), truncate)


@dataclass(frozen=True)
class ExpectationOutcome:
    """What happened to one configured expectation."""

    index: int
    """Position in `validation.expectations` of the config."""
    table: str
    type: str
    """GE expectation name, e.g. `expect_column_values_to_be_between`."""
    column: str | None
    """The checked column(s), when the expectation has any."""
    kwargs: dict[str, Any]
    severity: Literal["critical", "warning"]
    success: bool
    observed_value: Any = None
    """Aggregate expectations (mean, row count ...): the value GE measured."""
    element_count: int | None = None
    unexpected_count: int | None = None
    """Column-map expectations: rows that broke the expectation."""
    unexpected_percent: float | None = None
    """Percent of non-null rows that broke it (GE's definition)."""
    unexpected_examples: list[Any] = field(default_factory=list)
    """A few of the offending values."""
    exception: str | None = None
    """Message of the error GE raised for this expectation (it then counts as failed)."""
    builtin: str | None = None
    """For a built-in check: the config key it derives from (`tables.labels.columns`)."""
    note: str | None = None
    """A sentence explaining the outcome, when the numbers alone do not."""

    @property
    def where(self) -> str:
        """Names the expectation the way the config does, for messages."""
        target = f"{self.table}.{self.column}" if self.column else self.table
        if self.builtin:
            return f"built-in check {self.type} on {target} (from {self.builtin})"
        return f"validation.expectations[{self.index}] {self.type} on {target}"


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of every configured expectation plus the stage's decision."""

    expectations: list[ExpectationOutcome]
    """The config's `validation.expectations`, in config order."""
    ge_version: str
    table_rows: dict[str, int] = field(default_factory=dict)
    """Rows of each validated table."""
    duration_s: float = 0.0
    builtin: list[ExpectationOutcome] = field(default_factory=list)
    """Checks implied by the config's schema, labels and budgets (see builtin.py)."""

    @property
    def checks(self) -> list[ExpectationOutcome]:
        """Built-in checks first, then the user's expectations: everything the decision counts."""
        return [*self.builtin, *self.expectations]

    @property
    def evaluated(self) -> int:
        return len(self.checks)

    @property
    def failed(self) -> int:
        return sum(1 for e in self.checks if not e.success)

    @property
    def failed_critical(self) -> int:
        return sum(1 for e in self.checks if not e.success and e.severity == "critical")

    @property
    def failed_warning(self) -> int:
        return sum(1 for e in self.checks if not e.success and e.severity == "warning")

    @property
    def success_percent(self) -> float:
        # An empty suite has nothing failing: 100 %, decision "pass".
        if not self.checks:
            return 100.0
        return round(100.0 * (self.evaluated - self.failed) / self.evaluated, 2)

    @property
    def decision(self) -> Decision:
        """`fail` if a critical expectation failed, else `warn` if a warning did, else `pass`."""
        if self.failed_critical:
            return "fail"
        if self.failed_warning:
            return "warn"
        return "pass"

    def summary_metrics(self) -> dict[str, float]:
        """The counts as numbers, for a KFP `Metrics` artifact (which holds numbers only)."""
        return {
            "evaluated": float(self.evaluated),
            "builtin": float(len(self.builtin)),
            "failed": float(self.failed),
            "failed_critical": float(self.failed_critical),
            "failed_warning": float(self.failed_warning),
            "success_percent": self.success_percent,
        }

    def failures(self, severity: str | None = None) -> list[ExpectationOutcome]:
        return [
            e for e in self.checks if not e.success and (severity is None or e.severity == severity)
        ]

    def failure_sentences(self, limit: int = 10) -> list[str]:
        """One sentence per failed check, critical ones first (for the console and `--json`)."""
        failed = self.failures("critical") + self.failures("warning")
        return [f"{e.severity}: {describe(e)}" for e in failed[:limit]]

    def message(self) -> str:
        """One sentence for logs and for the error raised when the decision is `fail`."""
        if self.decision == "pass":
            return f"All {self.evaluated} expectations passed."
        severity = "critical" if self.decision == "fail" else "warning"
        failed = self.failures(severity)
        named = "; ".join(describe(e) for e in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        return (
            f"{len(failed)} of {self.evaluated} expectations with severity {severity} "
            f"failed: {named}{more}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; the summary fields are included for readers of metadata."""
        return {
            "decision": self.decision,
            "evaluated": self.evaluated,
            "failed": self.failed,
            "failed_critical": self.failed_critical,
            "failed_warning": self.failed_warning,
            "success_percent": self.success_percent,
            "ge_version": self.ge_version,
            "table_rows": dict(self.table_rows),
            "duration_s": self.duration_s,
            "expectations": [jsonable(asdict(e), truncate=False) for e in self.expectations],
            "builtin": [jsonable(asdict(e), truncate=False) for e in self.builtin],
            "failures": self.failure_sentences(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationResult:
        """Inverse of `to_dict` (the derived summary fields are recomputed)."""
        return cls(
            expectations=[ExpectationOutcome(**e) for e in data["expectations"]],
            ge_version=data["ge_version"],
            table_rows=dict(data.get("table_rows", {})),
            duration_s=float(data.get("duration_s", 0.0)),
            builtin=[ExpectationOutcome(**e) for e in data.get("builtin", [])],
        )


def _shown(value: Any, limit: int | None = 80) -> str:
    """A value as JSON (strings quoted, so blanks and case show), shortened; floats to 6
    significant digits (an observed mean of 25.750666666666667 reads 25.7507)."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def describe(e: ExpectationOutcome) -> str:
    """What failed, where, how much and on which values: one plain-text sentence (not
    escaped), for the console, `--json` and the HTML report alike."""
    note = getattr(e, "note", None)
    if note:
        return f"{e.where}: {note}"
    if e.exception:
        return f"{e.where} could not be evaluated: {e.exception}"
    if e.unexpected_count is not None:
        of = f" of {e.element_count:,} rows" if e.element_count is not None else ""
        pct = (
            ""
            if e.unexpected_percent is None
            else f" ({e.unexpected_percent:.3g} % of non-null values)"
        )
        examples = ", ".join(_shown(v) for v in e.unexpected_examples[:5])
        eg = f", e.g. {examples}" if examples else ""
        return f"{e.where}: {e.unexpected_count:,} unexpected values{of}{pct}{eg}"
    expected = {k: v for k, v in e.kwargs.items() if k not in {"column", "column_A", "column_B"}}
    want = f", expected {_shown(expected, 200)}" if expected else ""
    return f"{e.where}: observed {_shown(e.observed_value)}{want}"
