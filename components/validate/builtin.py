"""Checks the config already implies, run on every snapshot before the user's expectations.

The declared schema says which columns exist and their types, the entity and time
keys say what may never be empty, the labels section says which values a label may
take, and each table's `max_invalid_fraction` bounds what ingest turned into null.
Users' own expectations add to these; they never have to restate them.

They are judged here with pandas rather than through Great Expectations: each GE
expectation costs a metric round of its own (47 built-in checks nearly doubled the
validate step at 1M rows), and labels must be compared exactly as training compares
them (components/common/labels.py). They report as GE-named outcomes all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd
from pandas.api import types as ptypes

from components.common.config import ColumnType, SeamlessConfig
from components.common.labels import canonical_series, check_label_counts
from components.validate.results import ExpectationOutcome, jsonable


@dataclass(frozen=True)
class TableFacts:
    """What the built-in checks read of a table; gathered by pandas or by Spark."""

    rows: int
    dtypes: dict[str, Any]
    """Column -> its pandas dtype, in table order (Spark: the snapshot file's dtypes)."""
    type_ok: dict[str, bool]
    """Declared column -> whether its values have the declared type."""
    nulls: dict[str, int]
    """Key column -> rows where it is empty."""
    label_counts: dict[str | None, int] | None = None
    """Labels table: rows per canonical label text (None: no label)."""


def frame_facts(config: SeamlessConfig, name: str, df: pd.DataFrame) -> TableFacts:
    """The facts of a pandas table."""
    keys = {config.entity_key(), config.timestamp_key(name)}
    labels = config.labels
    label_counts = None
    if name == labels.table and labels.label_column in df.columns:
        text = canonical_series(df[labels.label_column])
        label_counts = {(None if pd.isna(k) else str(k)): int(n) for k, n in _counts(text)}
    return TableFacts(
        rows=len(df),
        dtypes={str(c): df[c].dtype for c in df.columns},
        type_ok={
            c: has_declared_type(kind, df[c])
            for c, kind in config.tables[name].columns.items()
            if c in df.columns
        },
        nulls={c: int(df[c].isna().sum()) for c in keys if c in df.columns},
        label_counts=label_counts,
    )


def _counts(text: pd.Series) -> list[tuple[Any, int]]:
    return list(text.value_counts(dropna=False, sort=False).items())


def builtin_outcomes(
    config: SeamlessConfig,
    tables: dict[str, pd.DataFrame] | None,
    manifest: dict[str, Any] | None,
    facts: dict[str, TableFacts] | None = None,
) -> list[ExpectationOutcome]:
    """Every built-in check of the tables present, numbered in order.

    `facts` (e.g. gathered by Spark) stand in for `tables`, which are then not read.
    """
    if facts is None:
        facts = {n: frame_facts(config, n, df) for n, df in (tables or {}).items()}
    out: list[ExpectationOutcome] = []
    for name, table_cfg in config.tables.items():
        if name not in facts:
            continue
        fact = facts[name]
        for col in declared_columns(config, name):
            out.append(_exists_outcome(name, col, col in fact.dtypes))
        for col, key in (
            (config.entity_key(), "entity_column"),
            (config.timestamp_key(name), "timestamp_column"),
        ):
            if col in fact.dtypes:
                origin = f"tables.{name}.{key}"
                out.append(_not_null_outcome(name, col, fact.nulls.get(col, 0), fact.rows, origin))
        for col, kind in table_cfg.columns.items():
            if col in fact.dtypes:
                out.append(_type_outcome(name, col, kind, fact.type_ok[col], fact.dtypes[col]))
        info = ((manifest or {}).get("tables") or {}).get(name) or {}
        for col, count in (info.get("invalid_values") or {}).items():
            out.append(_budget_outcome(name, col, int(count), fact.rows, info))
    labels = config.labels
    label_fact = facts.get(labels.table)
    if label_fact is not None and label_fact.label_counts is not None:
        out.append(_label_outcome(config, label_fact.label_counts, label_fact.rows))
    return [replace(o, index=i) for i, o in enumerate(out)]


def declared_columns(config: SeamlessConfig, table: str) -> list[str]:
    """Columns the config requires of `table` after ingest (generated keys included;
    columns tagged `pii: drop` left out: ingest removed them)."""
    cols = list(config.tables[table].stored_columns())
    extra = [config.entity_key(), config.timestamp_key(table)]
    if table == config.labels.table:
        extra.append(config.labels.label_column)
    return cols + [c for c in extra if c not in cols]


_DTYPE_OK = {
    "int": ptypes.is_integer_dtype,
    "float": ptypes.is_float_dtype,
    "bool": ptypes.is_bool_dtype,
    "timestamp": lambda d: isinstance(d, pd.DatetimeTZDtype) and str(d.tz) == "UTC",
}


def has_declared_type(kind: ColumnType, values: pd.Series) -> bool:
    if kind == "string":
        if isinstance(values.dtype, pd.StringDtype):
            return True
        return values.dtype == object and ptypes.infer_dtype(values, skipna=True) in (
            "string",
            "empty",
        )
    return bool(_DTYPE_OK[kind](values.dtype))


_TYPE_NAMES = {
    "int": "integer",
    "float": "float",
    "bool": "boolean",
    "string": "string",
    "timestamp": "UTC timestamp",
}


def _column_outcome(
    table: str,
    col: str,
    expectation: str,
    success: bool,
    builtin: str,
    severity: Literal["critical", "warning"] = "critical",
    kwargs: dict[str, Any] | None = None,
    **fields: Any,
) -> ExpectationOutcome:
    """A built-in check of one column: the fields every such outcome fills the same way
    (built-ins have no position in the config, hence index -1)."""
    return ExpectationOutcome(
        index=-1,
        table=table,
        type=expectation,
        column=col,
        kwargs={"column": col, **(kwargs or {})},
        severity=severity,
        success=success,
        builtin=builtin,
        **fields,
    )


def _row_counts(count: int, rows: int) -> dict[str, Any]:
    """Rows checked and rows that broke the check, as GE reports a column-map expectation."""
    return {
        "element_count": rows,
        "unexpected_count": count,
        "unexpected_percent": round(100.0 * count / rows, 4) if rows else None,
    }


def _type_outcome(
    table: str, col: str, kind: ColumnType, ok: bool, dtype: Any
) -> ExpectationOutcome:
    return _column_outcome(
        table,
        col,
        "expect_column_values_to_be_of_type",
        ok,
        f"tables.{table}.columns.{col}",
        kwargs={"type_": _TYPE_NAMES[kind]},
        observed_value=str(dtype),
    )


def _budget_outcome(
    table: str, col: str, count: int, rows: int, info: dict[str, Any]
) -> ExpectationOutcome:
    budget = float(info.get("max_invalid_fraction", 0.0))
    return _column_outcome(
        table,
        col,
        "expect_column_invalid_values_within_budget",
        count <= budget * max(rows, 1),
        f"tables.{table}.max_invalid_fraction",
        # Ingest stops a table past its budget, so this reports what was tolerated.
        severity="warning",
        kwargs={"max_invalid_fraction": budget},
        unexpected_examples=jsonable(list(info.get("invalid_examples", {}).get(col, []))),
        note="values that were not parseable as the declared type and became null at ingest",
        **_row_counts(count, rows),
    )


def _label_outcome(
    config: SeamlessConfig, counts: dict[str | None, int], rows: int
) -> ExpectationOutcome:
    labels = config.labels
    check = check_label_counts(labels, counts)
    left_out = labels.unknown_values == "drop"
    note = check.sentence(labels.table, labels.label_column, config_hint=not left_out)
    if left_out:
        note = f"{note[:-1]}; training leaves them out (labels.unknown_values: drop)."
    return _column_outcome(
        labels.table,
        labels.label_column,
        "expect_column_values_to_be_in_set",
        check.count == 0 or left_out,
        "labels",
        kwargs={"value_set": list(check.classes.all)},
        unexpected_examples=list(check.examples),
        note=note if check.count else None,
        **_row_counts(check.count, rows),
    )


def _exists_outcome(table: str, col: str, present: bool) -> ExpectationOutcome:
    return _column_outcome(
        table,
        col,
        "expect_column_to_exist",
        present,
        f"tables.{table}.columns",
        note=None if present else f"column '{col}' is not in table '{table}'",
    )


def _not_null_outcome(
    table: str, col: str, count: int, rows: int, origin: str
) -> ExpectationOutcome:
    return _column_outcome(
        table,
        col,
        "expect_column_values_to_not_be_null",
        count == 0,
        origin,
        note=f"{count} rows have no value in key column '{col}'" if count else None,
        **_row_counts(count, rows),
    )
