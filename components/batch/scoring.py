"""Batch scoring: a model version scores a table of entities with the features the offline
store held at each row's point in time.

The input names entities (the config's entity key) and when to score them: one instant
for every row (`as_of`) or each row's own timestamp column. Features come from Feast's
offline store through the same point-in-time join as the training set
(`features.training_set.historical_features`), so a row sees only values known at its
time and within each view's ttl. The model is the registered scikit-learn pipeline,
called on whole chunks: the same function MLflow's pyfunc calls, so scores equal
`mlflow models predict` on the same features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import ROW_ID, ColumnFormat, SeamlessConfig
from components.common.errors import SeamlessError
from components.common.pii import entity_key
from components.common.storage import resolve, storage_errors
from components.ingest.json_records import read_json_records
from components.ingest.normalize import convert
from components.ingest.sources import sniff_delimiter

TABLE_SUFFIXES = {
    **dict.fromkeys((".parquet", ".pq"), "parquet"),
    ".csv": "csv",
    **dict.fromkeys((".jsonl", ".ndjson", ".json"), "json"),
}
AS_OF_COLUMN = "as_of"
SCORE_COLUMNS = ("score", "decision", "model_name", "model_version", "batch_id")
_SNIFF_BYTES = 64 * 1024  # of a CSV whose header is one column, to find its delimiter


@dataclass
class Entities:
    """The rows to score: entity key and the UTC instant each is scored at."""

    frame: pd.DataFrame
    """Columns: the entity key, `as_of`; the input's row order."""
    source: str
    timing: dict[str, Any] = field(default_factory=dict)
    """`{"as_of": iso}` or `{"timestamp_column": name}`."""


def _table_format(uri: str, fs: Any, path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    if fs.isdir(path):
        return "parquet"  # a folder of Parquet parts (Spark's and pyarrow's datasets)
    raise SeamlessError(
        f"Input {uri}: unknown table format; use a .parquet, .csv or .jsonl file or a "
        "Parquet folder."
    )


def read_table(uri: str, columns: list[str], rows: bool = True, hint: str = "") -> pd.DataFrame:
    """The `columns` of a CSV, JSON or Parquet table (local or object storage), CSV as
    text and JSON as its values; without `rows`, only check that the table has them
    (reads the header or schema; a JSON file whole). A missing column's error ends with
    `hint`."""
    fs, path = resolve(uri)
    with storage_errors(uri, "read", fs):
        if not fs.exists(path):
            raise SeamlessError(f"Input {uri} does not exist.")
        kind = _table_format(uri, fs, path)
        if kind == "json":
            with fs.open(path, "rb") as fh:
                frame = read_json_records(fh.read(), uri, "Input", "utf-8")
            _require(uri, columns, [str(c) for c in frame.columns], hint)
            return frame[columns] if rows else pd.DataFrame(columns=columns)
        if kind == "csv":
            with fs.open(path, "rb") as fh:
                sep = ","
                header = list(pd.read_csv(fh, nrows=0).columns)
                if len(header) == 1 and any(c not in header for c in columns):
                    # One header column: a ';' (or tab, '|') file, as ingest reads it when
                    # its source says so; batch has no delimiter option, so it sniffs.
                    fh.seek(0)
                    sample = fh.read(_SNIFF_BYTES).decode("utf-8-sig", errors="replace")
                    sep = sniff_delimiter(sample, ",") or ","
                    fh.seek(0)
                    header = list(pd.read_csv(fh, nrows=0, sep=sep).columns)
                _require(uri, columns, header, hint)
                fh.seek(0)
                if not rows:
                    return pd.DataFrame(columns=columns)
                return pd.read_csv(
                    fh,
                    sep=sep,
                    usecols=columns,
                    dtype=str,
                    keep_default_na=False,
                    skip_blank_lines=False,
                )
        import pyarrow.dataset as ds

        dataset = ds.dataset(path, filesystem=fs, format="parquet")
        _require(uri, columns, dataset.schema.names, hint)
        if not rows:
            return pd.DataFrame(columns=columns)
        return dataset.to_table(columns=columns).to_pandas()


def _require(uri: str, columns: list[str], have: list[str], hint: str = "") -> None:
    missing = [c for c in columns if c not in have]
    if not missing:
        return
    more = f" and {len(have) - 20} more" if len(have) > 20 else ""
    raise SeamlessError(
        f"Input {uri} has no column {', '.join(repr(c) for c in missing)} "
        f"(columns: {', '.join(have[:20])}{more}){hint}."
    )


def parse_instant(text: str, what: str) -> pd.Timestamp:
    """An ISO 8601 instant as UTC (naive means UTC, as everywhere in Seamless); `now` is
    the current instant (a scheduled run's), recorded with the result like any other."""
    if text.strip().lower() == "now":
        return pd.Timestamp.now(tz="UTC")
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT or pd.isna(ts):
        raise SeamlessError(
            f"{what} {text!r} is not a timestamp; use ISO 8601, e.g. 2024-06-30T00:00:00Z."
        )
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _declared_format(config: SeamlessConfig, column: str) -> ColumnFormat | None:
    """How the tables write `column` (the labels table first), if one declares it."""
    tables = [config.tables[config.labels.table], *config.tables.values()]
    return next((t.formats[column] for t in tables if column in t.formats), None)


def _first_bad(
    uri: str, column: str, bad: pd.Series, values: pd.Series, what: tuple[str, str]
) -> None:
    """Refuse the input if any row is `bad`; `what` is (singular, plural) of its kind."""
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        count = int(bad.sum())
        raise SeamlessError(
            f"Input {uri}: column '{column}' has {count:,} {what[count != 1]} "
            f"(first at data row {row + 1}: {values.iloc[row]!r})."
        )


def entity_ids(config: SeamlessConfig, uri: str, raw: pd.Series) -> pd.Series:
    """The key column typed as the feature tables have it; nulls and non-integers refused."""
    key = config.entity_key()
    text = raw.astype("string").str.strip()
    _first_bad(uri, key, text.isna() | (text == ""), raw, ("empty entity id", "empty entity ids"))
    if config.tables[config.labels.table].columns.get(key, "int") != "int":
        return text.astype(object)
    numbers = pd.to_numeric(text, errors="coerce")
    whole = numbers.notna() & (numbers == np.floor(numbers.fillna(0)))
    _first_bad(
        uri,
        key,
        ~whole,
        raw,
        ("entity id that is not an integer", "entity ids that are not integers"),
    )
    return numbers.astype("int64")


def read_entities(
    config: SeamlessConfig,
    uri: str,
    as_of: str = "",
    timestamp_column: str = "",
    rows: bool = True,
) -> Entities:
    """The input's entities and instants; every bad value refused with its row. Without
    `rows`, only the arguments and the input's columns are checked (a CLI's early check)."""
    if bool(as_of) == bool(timestamp_column):
        raise SeamlessError(
            "Say when to score: give either --as-of TIMESTAMP (one instant for every row) "
            "or --timestamp-column NAME (each row's own time), not both."
        )
    key = config.entity_key()
    instant = parse_instant(as_of, "--as-of") if as_of else None
    columns = [key] if instant is not None else [key, timestamp_column]
    if timestamp_column == key:
        raise SeamlessError(f"--timestamp-column {key!r} is the entity key.")
    # A key tagged `pii: pseudonymize` is pseudonymized as ingest does it (same key), so
    # the join finds the stored entities and raw ids reach neither the output nor the log.
    pseudonyms = entity_key(config, "Batch scoring")
    # A generated key is no column of the user's table: say what it is and where it comes from.
    hint = ""
    if key == ROW_ID and config.tables[config.labels.table].entity_column is None:
        hint = (
            f"; the config names no entity column, so rows are keyed by '{ROW_ID}', the row "
            "number ingest gave the training table (0 for its first row): add that column"
        )
    raw = read_table(uri, columns, rows, hint)
    if not rows:
        return Entities(raw, uri)
    if raw.empty:
        raise SeamlessError(f"Input {uri} has no rows.")
    ids = entity_ids(config, uri, raw[key])
    if pseudonyms is not None:
        kind = config.entity_type()
        ids, _, _ = pseudonyms.series(ids, kind)
        ids = ids.astype("int64") if kind == "int" else ids  # no nulls: refused above
    out = pd.DataFrame({key: ids})
    if instant is not None:
        out[AS_OF_COLUMN] = pd.Series(instant, index=out.index).astype("datetime64[ns, UTC]")
        timing: dict[str, Any] = {"as_of": instant.isoformat()}
    else:
        values = raw[timestamp_column]
        # As ingest reads timestamps: naive ones are UTC (in one pandas call they would take
        # an earlier value's offset), with the format or unit a table declares the column in.
        parsed = convert("timestamp", values, _declared_format(config, timestamp_column))
        _first_bad(
            uri,
            timestamp_column,
            parsed.isna(),
            values,
            ("value that is not a timestamp", "values that are not timestamps"),
        )
        out[AS_OF_COLUMN] = parsed.astype("datetime64[ns, UTC]")
        timing = {"timestamp_column": timestamp_column}
    return Entities(out, uri, timing)


def chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def predict_scores(model: Any, features: pd.DataFrame, chunk_rows: int = 200_000) -> np.ndarray:
    """Positive-class probabilities, chunk by chunk (bounded memory for large tables)."""
    out = np.empty(len(features), dtype=np.float64)
    for part in chunks(len(features), chunk_rows):
        out[part] = model.predict_proba(features.iloc[part])[:, 1]
    return out
