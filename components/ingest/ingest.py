"""The ingest stage: read every configured table, normalize it, write one dataset snapshot.

Hashes in the manifest (see README.md):
- per table `sha256`: the stored content (what `write_dataset` computes);
- per table `source_sha256`: the normalized content *before* generated columns
  (`row_id`, `ingested_at`), so the same source data gives the same value on every run
  and in any row order;
- top level `sha256` over the stored tables and `source_sha256` over the tables'
  `source_sha256`: the latter identifies the snapshot's data across runs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.config import (
    FileSource,
    LabelsConfig,
    SeamlessConfig,
    SqlSource,
    TableConfig,
)
from components.common.errors import SeamlessError
from components.common.labels import LabelCheck, apply_value_map, check_labels
from components.common.pii import (
    Pseudonymizer,
    config_key,
    log_pii,
    table_key,
    transform_frame,
    without_dropped,
)
from components.common.tables import (
    content_hash,
    write_dataset,
)
from components.ingest.json_records import is_nested, json_text
from components.ingest.normalize import declared_columns, normalize_with_report
from components.ingest.snapshot import finish_manifest, utc_stamp
from components.ingest.sources import describe_source, marker_text, read_source, short_reason

log = logging.getLogger(__name__)


def _storable(df: pd.DataFrame, declared: set[str], where: str) -> pd.DataFrame:
    """Make undeclared object columns Parquet-writable and hashable, or say which is not."""
    import pyarrow as pa

    for col in df.columns:
        if col in declared or df[col].dtype != object:
            continue
        values = df[col]
        if values.map(is_nested).any():
            df[col] = values.map(json_text)  # nested JSON or Parquet values
        try:
            pa.array(df[col], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise SeamlessError(
                f"{where}: column '{col}' mixes value types Parquet cannot store "
                f"({short_reason(exc)}); declare it in the table's columns with a type."
            ) from None
    return df


def _label_policy(
    df: pd.DataFrame, labels: LabelsConfig, info: dict[str, Any], table: str, where: str
) -> dict[str, Any]:
    """Count the rows whose label is null or none of the classes; `label_decision` says
    what becomes of them. The rows stay in the table either way."""
    check = check_labels(labels, df[labels.label_column])
    return label_decision(check, labels, info, table, where, len(df))


def label_decision(
    check: LabelCheck, labels: LabelsConfig, info: dict[str, Any], table: str, where: str, rows: int
) -> dict[str, Any]:
    """The manifest's label info. With `labels.unknown_values: drop`, the rows without a
    class label are counted as left out of the training set, and are kept in the table:
    where the labels table is also a feature table, those rows' features are what
    serving looks up (the rows to predict are the unlabelled ones). Refuses to leave out
    every row. With `fail`, validation judges them. Shared by both engines."""
    info = {**info, "classes": list(check.classes.all), "left_out": 0, "left_out_values": {}}
    if labels.unknown_values != "drop" or not check.count:
        return info
    if check.count == rows:
        sentence = check.sentence(table, labels.label_column, config_hint=False)
        raise SeamlessError(f"{sentence[:-1]}; leaving them out would leave no training rows.")
    info["left_out"] = check.count
    info["left_out_values"] = check.value_counts
    log.warning(
        "%s: %d rows whose label is not one of %s are left out of the training set "
        "(labels.unknown_values: drop); their other columns are kept",
        where,
        check.count,
        check.classes.describe(),
    )
    return info


def count_missing_markers(
    raw: pd.DataFrame, columns: list[str], markers: list[str]
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The declared columns' `missing_values` markers as missing, and column -> marker ->
    count of them (CSV reading leaves markers as text there, so they are counted here).
    Spaces around a marker do not hide it (`, ?` in the UCI data sets)."""
    counts: dict[str, dict[str, int]] = {}
    if not markers:
        return raw, counts
    out = raw
    for col in columns:
        if col not in raw.columns or raw[col].dtype != object:
            continue
        text = marker_text(raw[col])
        hit = text.isin(markers)
        if not hit.any():
            continue
        found = text[hit].value_counts()
        counts[col] = {str(m): int(n) for m, n in found.items()}
        out = raw.copy() if out is raw else out
        out[col] = out[col].mask(hit)
    return out, counts


def warn_missing_markers(where: str, missing: dict[str, dict[str, int]]) -> None:
    for col, found in missing.items():
        shown = ", ".join(f"{m!r} x{n}" for m, n in found.items())
        log.warning("%s: column '%s' read %s as missing (missing_values)", where, col, shown)


def ingest_table(
    name: str,
    table_cfg: TableConfig,
    data_dir: str | Path | None,
    ingested_at: datetime | None = None,
    labels: LabelsConfig | None = None,
    pii_key: Pseudonymizer | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read and normalize one table; returns it and its manifest info.

    `labels` is given for the labels table: its label column is required, mapped with
    `value_map`, tolerates no invalid value, and with `unknown_values: drop` counts the
    rows whose label is null or none of the classes (the info's `left_out`: the
    training set leaves them out, the table keeps them). Columns tagged
    `pii` are dropped or pseudonymized last (`pii_key`, default: read from the
    environment when the table needs it), so hashes and everything stored see the result.
    """
    stamp = utc_stamp(ingested_at)
    key = pii_key if pii_key is not None else table_key(name, table_cfg)
    source = table_cfg.source
    shown = describe_source(source, data_dir)
    origin = f"{source.kind} {shown}"
    where = f"Table '{name}' ({origin})"
    expected = declared_columns(table_cfg, labels)
    raw = read_source(source, data_dir, name, expected)
    if len(raw) == 0:
        raise SeamlessError(f"{where} has no rows.")
    markers = source.missing_values if isinstance(source, FileSource) else []
    raw, missing = count_missing_markers(raw, expected, markers)
    warn_missing_markers(where, missing)
    label_info: dict[str, Any] = {}
    strict: frozenset[str] = frozenset()
    if labels is not None:
        if labels.label_column not in raw.columns:
            raise SeamlessError(
                f"{where}: the label column '{labels.label_column}' (labels.label_column) "
                "is missing."
            )
        raw = raw.copy()
        raw[labels.label_column], mapped = apply_value_map(labels, raw[labels.label_column])
        label_info = {"column": labels.label_column, "mapped": mapped}
        if labels.unknown_values == "fail":
            strict = frozenset({labels.label_column})
    df, report = normalize_with_report(raw, table_cfg, name, origin, stamp, strict)
    if labels is not None:
        label_info = _label_policy(df, labels, label_info, name, where)
    df = _storable(df, set(expected), where)
    df, pii_info = transform_frame(df, table_cfg, where, key)
    info: dict[str, Any] = {
        "source": shown,
        "source_kind": source.kind,
        "source_sha256": content_hash(df.drop(columns=report.generated_columns)),
        "rows": len(df),
        "generated_columns": report.generated_columns,
        "invalid_values": report.invalid_values,
        "invalid_examples": report.invalid_examples,
        "max_invalid_fraction": table_cfg.max_invalid_fraction,
        "ingested_at": stamp.isoformat(),
    }
    if markers:
        info["missing_values"] = list(markers)
        info["missing_markers"] = missing
    if label_info:
        info["labels"] = label_info
    if isinstance(source, SqlSource):
        info["query"] = source.query
    if pii_info:
        info["pii"] = pii_info
        log_pii(where, pii_info)
    log.info("Table '%s': %d rows x %d columns from %s", name, len(df), df.shape[1], origin)
    return df, without_dropped(info, table_cfg)


def ingest_tables_local(
    config: SeamlessConfig,
    data_dir: str | Path | None,
    out_folder: str | Path,
    ingested_at: datetime | None = None,
) -> dict[str, Any]:
    """`stage.ingest_tables` on the local engine (pandas and Arrow in this process)."""
    stamp = utc_stamp(ingested_at)
    key = config_key(config)  # a missing key fails before any source is read
    tables: dict[str, pd.DataFrame] = {}
    info: dict[str, dict[str, Any]] = {}
    for name, table_cfg in config.tables.items():
        labels = config.labels if name == config.labels.table else None
        tables[name], info[name] = ingest_table(name, table_cfg, data_dir, stamp, labels, key)
    return finish_manifest(config, out_folder, write_dataset(out_folder, tables, info), stamp)
