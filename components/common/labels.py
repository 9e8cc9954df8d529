"""Label values and their classes: one definition shared by ingest, validate and train.

Labels are compared as canonical text, so an integer label read back as a float
(`1.0`), a boolean, or a string all meet the configured classes the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import LabelsConfig

MAX_EXAMPLES = 5


def canonical(value: Any) -> str | None:
    """The text a label value is compared by: `1`, `1.0` and `np.int64(1)` are all "1"."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def mapped_onto_positive(value_map: Mapping[str, Any], positive: Any) -> list[str]:
    """The label values (as text) that `value_map` turns into the positive class."""
    target = canonical(positive)
    return [k for k, v in value_map.items() if canonical(v) == target]


def canonical_series(values: pd.Series) -> pd.Series:
    """`canonical` over a column (computed once per distinct value)."""
    uniques = values.dropna().unique()
    mapping = {v: canonical(v) for v in uniques}
    return values.map(mapping).astype(object).where(values.notna(), None)


@dataclass(frozen=True)
class LabelClasses:
    """The valid label values (as canonical text), positive first."""

    positive: str
    negatives: tuple[str, ...]
    inferred: bool
    """True when `negative_classes` is absent and the negative class came from the data."""

    @property
    def all(self) -> tuple[str, ...]:
        return (self.positive, *self.negatives)

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.all)
        return f"[{shown}]" + (" (negative class inferred from the data)" if self.inferred else "")


def label_classes(labels: LabelsConfig, observed: pd.Series) -> LabelClasses:
    """The classes a label column may hold; `observed` is its canonical text.

    Without `negative_classes`, the most frequent value other than the positive class
    is the negative class, so a rare stray value ("Churned" beside "churned") is what
    gets reported, not the common one.
    """
    return label_classes_from_counts(labels, observed.value_counts().to_dict())


def label_classes_from_counts(labels: LabelsConfig, counts: Mapping[Any, int]) -> LabelClasses:
    """`label_classes` from the rows per canonical label text (nulls left out)."""
    positive = str(canonical(labels.positive_class))
    if labels.negative_classes is not None:
        negatives = tuple(str(canonical(v)) for v in labels.negative_classes)
        return LabelClasses(positive, negatives, inferred=False)
    others = [(k, n) for k, n in counts.items() if k is not None and k != positive and n]
    if not others:
        return LabelClasses(positive, (), inferred=True)
    # Ties are broken by the text, so the choice does not depend on row order.
    top = sorted(others, key=lambda kv: (-kv[1], str(kv[0])))[0][0]
    return LabelClasses(positive, (top,), inferred=True)


@dataclass(frozen=True)
class LabelCheck:
    """Label values that are null or none of the classes."""

    classes: LabelClasses
    unknown: np.ndarray
    """Boolean mask of the rows at fault."""
    examples: list[str]
    value_counts: dict[str, int]
    """Every offending value (text; "null" for a missing label) and its row count."""

    @property
    def count(self) -> int:
        return sum(self.value_counts.values())

    def sentence(self, table: str, column: str, config_hint: bool = True) -> str:
        shown = ", ".join(
            f"{v if v == 'null' else repr(v)} ({n} row{'' if n == 1 else 's'})"
            for v, n in list(self.value_counts.items())[:MAX_EXAMPLES]
        )
        more = (
            f" and {len(self.value_counts) - MAX_EXAMPLES} more values"
            if len(self.value_counts) > MAX_EXAMPLES
            else ""
        )
        hint = (
            "; map them with labels.value_map, drop them with labels.unknown_values: drop, "
            "or list every negative value in labels.negative_classes"
            if config_hint
            else ""
        )
        return (
            f"Table '{table}': label column '{column}' has {self.count} rows whose value is "
            f"not one of the classes {self.classes.describe()}: {shown}{more}{hint}."
        )


def counts_by_text(found: Iterable[tuple[Any, int]]) -> dict[str | None, int]:
    """Rows per canonical label text (None: no label) from (stored value, rows) pairs,
    e.g. a Spark group-by of the label column: a handful of values, made exact here."""
    counts: dict[str | None, int] = {}
    for value, rows in found:
        text = canonical(value)
        counts[text] = counts.get(text, 0) + int(rows)
    return counts


def check_labels(labels: LabelsConfig, values: pd.Series) -> LabelCheck:
    """Which rows of a label column are null or outside the classes."""
    text = canonical_series(values)
    classes = label_classes(labels, text)
    unknown = (~text.isin(classes.all) | text.isna()).to_numpy(bool)
    bad = text[unknown].map(lambda v: "null" if v is None else v)
    counts = {str(k): int(n) for k, n in bad.value_counts(sort=True).items()}
    return LabelCheck(classes, unknown, list(counts)[:MAX_EXAMPLES], counts)


def check_label_counts(labels: LabelsConfig, counts: Mapping[str | None, int]) -> LabelCheck:
    """`check_labels` from the rows per canonical label text (None: null), for engines
    that count in place of handing over the column; `unknown` is then empty."""
    classes = label_classes_from_counts(labels, counts)
    bad = {("null" if k is None else str(k)): int(n) for k, n in counts.items()}
    bad = {k: n for k, n in bad.items() if n and (k == "null" or k not in classes.all)}
    ordered = dict(sorted(bad.items(), key=lambda kv: -kv[1]))
    return LabelCheck(classes, np.zeros(0, bool), list(ordered)[:MAX_EXAMPLES], ordered)


def positive_mask(labels: LabelsConfig, values: pd.Series) -> np.ndarray:
    """True where the label is the positive class (values outside the classes are False:
    check them with `check_labels` first)."""
    positive = canonical(labels.positive_class)
    return (canonical_series(values) == positive).to_numpy(bool)


def apply_value_map(labels: LabelsConfig, values: pd.Series) -> tuple[pd.Series, dict[str, int]]:
    """Replace mapped label values (keys are the values' text); returns counts per key."""
    if not labels.value_map:
        return values, {}
    text = canonical_series(values)
    counts = {k: int(n) for k, n in text.value_counts().items() if k in labels.value_map}
    if not counts:
        return values, {}
    out = values.astype(object).copy()
    for key in counts:
        out[text == key] = labels.value_map[key]
    return out, counts
