"""Label: the label column's type and classes (`plan_label`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
from pandas.api import types as ptypes

from components.common.config import ColumnType, LabelValue
from components.common.errors import SeamlessError
from components.common.labels import canonical

# Ingest's converters and blank test: the inference must parse exactly as ingest does.
from components.ingest.normalize import looks_like_data, nonblank
from pipelines.scaffold.common import INT_TEXT, LEADING_ZERO, rows, show

# pandas writes a 0/1 column with gaps as 1.0/0.0; ingest's int parser reads them as 1/0.
_WHOLE_DECIMAL = re.compile(r"[+-]?\d+\.0+")


@dataclass(frozen=True)
class LabelPlan:
    """The label column's type and classes."""

    column: str
    kind: ColumnType
    positive: LabelValue
    negatives: tuple[LabelValue, ...]
    counts: dict[str, int]
    """Rows per class (text of the value, after `value_map`)."""
    value_map: dict[str, LabelValue] = field(default_factory=dict)
    missing: int = 0
    """Rows without a label (left out of training: `unknown_values: drop`)."""
    notes: tuple[str, ...] = ()


def _label_kind(raw: pd.Series) -> ColumnType:
    if ptypes.is_bool_dtype(raw.dtype):
        return "bool"
    values = raw[nonblank(raw)]
    if ptypes.is_integer_dtype(raw.dtype):
        return "int"
    if ptypes.is_float_dtype(raw.dtype):
        return "int" if bool((values % 1 == 0).all()) else "string"
    text = values.map(str).str.strip()
    whole = text.str.fullmatch(INT_TEXT) | text.str.fullmatch(_WHOLE_DECIMAL)
    if whole.all() and not text.str.fullmatch(LEADING_ZERO).any():
        return "int"
    return "string"


_MANY_NUMBERS = 20
"""More distinct numeric label values than this read as a quantity to regress on."""


def _all_numbers(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values.map(str).str.strip(), errors="coerce").notna().all())


def _int_text(text: str) -> str:
    """'1', ' 1' or '1.0' as '1'."""
    return str(int(text.strip().split(".")[0]))


def _typed(text: str, kind: ColumnType) -> LabelValue:
    if kind == "int":
        return int(text)
    if kind == "bool":
        return text == "true"
    return text


_USUAL_PAIRS = {
    frozenset({"0", "1"}): "1",
    frozenset({"true", "false"}): "true",
    frozenset({"yes", "no"}): "yes",
    frozenset({"y", "n"}): "y",
}
"""Two-valued labels whose positive is conventional (scikit-learn's pos_label=1, the
event that happened), whichever class is rarer."""


def _usual_positive(classes: dict[str, int]) -> str | None:
    """The class that is conventionally positive, as spelled in `classes`, if any."""
    by_lower = {k.strip().lower(): k for k in classes}
    wanted = _USUAL_PAIRS.get(frozenset(by_lower))
    return by_lower[wanted] if wanted is not None and len(by_lower) == 2 else None


def plan_label(df: pd.DataFrame, label: str, shown: str, positive: str | None = None) -> LabelPlan:
    """Classes of the label column: `positive` (or, for a two-valued label, the usual
    positive of 0/1, true/false, yes/no, else the minority class), and every other value as
    an explicit negative class. Spellings of one value
    that differ only in case or surrounding spaces are mapped onto the commonest one."""
    if label not in df.columns:
        hint = (
            "; its first line holds numbers, so it looks like data: for a CSV file without a "
            "header row, name its columns with --column-names (a,b,c,...)"
            if looks_like_data(list(df.columns))
            else ""
        )
        raise SeamlessError(
            f"--label '{label}' is not a column of {shown} (columns: "
            f"{show(list(df.columns), 12)}){hint}."
        )
    raw = df[label]
    kind = _label_kind(raw)
    present = nonblank(raw)
    missing = int((~present).sum())
    if not present.any():
        raise SeamlessError(f"Label column '{label}' of {shown} is empty in every row.")
    values = raw[present]
    if kind == "int":
        text = values.map(lambda v: _int_text(v) if isinstance(v, str) else str(canonical(v)))
    else:
        text = values.map(lambda v: v if isinstance(v, str) else str(canonical(v)))
    counts = text.value_counts(sort=True)
    notes: list[str] = []
    value_map: dict[str, LabelValue] = {}
    if kind == "string":
        counts, value_map, mapped_notes = _merge_spellings(counts, positive)
        notes += mapped_notes
    classes = {str(k): int(v) for k, v in counts.items()}
    listing = ", ".join(f"{k!r} ({rows(v)})" for k, v in list(classes.items())[:10])
    listing += f" and {len(classes) - 10} more" if len(classes) > 10 else ""
    if positive is not None:
        column = f"label column '{label}' in {shown}"
        chosen = _positive_classes(positive, kind, classes, value_map, notes, column, listing)
    elif len(classes) == 1:
        raise SeamlessError(
            f"Label column '{label}' of {shown} holds one value only ({listing}); a model "
            "needs two classes."
        )
    elif len(classes) == 2 and _usual_positive(classes) is not None:
        chosen = str(_usual_positive(classes))
        (other,) = (k for k in classes if k != chosen)
        notes.append(
            f"Positive class {chosen!r}: the usual positive of {chosen!r}/{other!r}, "
            f"{rows(classes[chosen])} against {rows(classes[other])} of {other!r}; pass "
            "--positive to choose the other."
        )
    elif len(classes) == 2:
        (a, na), (b, nb) = sorted(classes.items(), key=lambda kv: (kv[1], kv[0]))
        chosen = a
        tie = " (a tie: the first in sort order)" if na == nb else ""
        notes.append(
            f"Positive class {chosen!r}: the minority class{tie}, {rows(na)} against "
            f"{rows(nb)} of {b!r}; pass --positive to choose the other."
        )
    elif len(classes) > _MANY_NUMBERS and _all_numbers(values):
        raise SeamlessError(
            f"Label column '{label}' of {shown} holds numbers with {len(classes):,} distinct "
            f"values, a quantity rather than classes, and Seamless trains binary classifiers: "
            f"add a column saying which rows to predict (say, '{label}' over a threshold) and "
            "pass that as --label."
        )
    else:
        raise SeamlessError(
            f"Label column '{label}' of {shown} has {len(classes)} values ({listing}); pass "
            "--positive with the one to predict (the others become negative classes)."
        )
    negatives = [k for k in classes if k != chosen]
    notes.append(
        "Negative class"
        + ("es " if len(negatives) > 1 else " ")
        + ", ".join(f"{k!r} ({rows(classes[k])})" for k in negatives)
        + ("." if missing else ": any other value stops the run.")
    )
    if missing:
        notes.append(
            f"{rows(missing)} have no label: training leaves them out (unknown_values: drop), "
            "counted in the run summary; their features are kept, so serving can score them. "
            "Drop also leaves out any other value outside the classes: set unknown_values: "
            "fail once every row has a label."
        )
    return LabelPlan(
        column=label,
        kind=kind,
        positive=_typed(chosen, kind),
        negatives=tuple(_typed(k, kind) for k in negatives),
        counts=classes,
        value_map=value_map,
        missing=missing,
        notes=tuple(notes),
    )


def _class_named(text: str, kind: ColumnType, classes: dict[str, int]) -> str | None:
    """The class `text` names: as typed, as an int written '7.0', or written with spaces
    around it in the file (the UCI files write ", " between values: ' >50K')."""
    wanted = text.lower() if kind == "bool" else text
    if kind == "int" and (
        INT_TEXT.fullmatch(text.strip()) or _WHOLE_DECIMAL.fullmatch(text.strip())
    ):
        wanted = _int_text(text)
    if wanted in classes:
        return wanted
    spaced = [k for k in classes if k.strip(" ") == wanted.strip(" ")]
    return spaced[0] if len(spaced) == 1 else None


def _positive_classes(
    positive: str,
    kind: ColumnType,
    classes: dict[str, int],
    value_map: dict[str, LabelValue],
    notes: list[str],
    column: str,
    listing: str,
) -> str:
    """The class --positive names; with several (`7,8`: wine quality 7 or better), the
    others are mapped onto the first (value_map) and their rows counted with it."""
    whole = _class_named(positive, kind, classes)
    parts = [positive] if whole is not None or "," not in positive else positive.split(",")
    named: list[str] = []
    for part in parts:
        key = _class_named(part.strip(" ") if len(parts) > 1 else part, kind, classes)
        if key is None:
            raise SeamlessError(
                f"--positive {part!r} is not a value of {column}; its values are {listing}."
            )
        if key not in named:
            named.append(key)
    chosen, *others = named
    if len(named) == len(classes):
        raise SeamlessError(
            f"--positive {positive!r} names every value of {column}; a model needs a "
            "negative class too."
        )
    typed_as = positive if len(parts) == 1 else parts[0].strip(" ")
    if chosen != chosen.strip(" ") and typed_as != chosen:
        notes.append(f"--positive {typed_as!r} is written {chosen!r} in the file.")
    for other in others:
        value_map[other] = _typed(chosen, kind)
        classes[chosen] += classes.pop(other)
    if others:
        notes.append(
            f"Positive classes {', '.join(repr(k) for k in named)} (--positive): "
            f"{rows(classes[chosen])}; value_map maps "
            f"{', '.join(repr(k) for k in others)} to {chosen!r}, counted in the run summary."
        )
    else:
        notes.append(f"Positive class {chosen!r} (--positive): {rows(classes[chosen])}.")
    return chosen


def _merge_spellings(
    counts: pd.Series, positive: str | None
) -> tuple[pd.Series, dict[str, LabelValue], list[str]]:
    groups: dict[str, list[str]] = {}
    for value in counts.index:  # most frequent first
        groups.setdefault(str(value).strip().casefold(), []).append(str(value))
    value_map: dict[str, LabelValue] = {}
    notes: list[str] = []
    merged: dict[str, int] = {}
    for spellings in groups.values():
        main = positive if positive in spellings else spellings[0]
        merged[main] = int(sum(int(counts[s]) for s in spellings))
        for other in spellings:
            if other != main:
                value_map[other] = main
                notes.append(
                    f"{other!r} ({rows(int(counts[other]))}) is mapped to {main!r} "
                    "(value_map): they differ only in case or spaces."
                )
    out = pd.Series(merged).sort_values(ascending=False, kind="stable")
    return out, value_map, notes
