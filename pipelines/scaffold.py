"""`seamless init`: profile one table and write a commented use-case config for it.

Plain functions, each unit-testable on a DataFrame: `read_table` (the same readers as
ingest), `profile_table` (a type per column, inferred conservatively), `plan_keys` and
`plan_label` (entity, event time, label classes), `starter_expectations` (a suite from
the profile), `render_config` (YAML text with a comment on every inferred choice) and
`dry_validate` (ingest + validate with the written config in a temporary folder).

Types are judged with ingest's own converters (components/ingest/normalize.py), so
"9,981 of 10,000 values parse as integers" is exactly what ingest will keep.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

import numpy as np
import pandas as pd
import yaml
from pandas.api import types as ptypes

from components.common.config import (
    INGESTED_AT,
    ROW_ID,
    ColumnType,
    FileSource,
    LabelValue,
    SeamlessConfig,
    SqlSource,
    TableConfig,
    load_config,
    parse_config,
)
from components.common.errors import SeamlessError
from components.common.labels import canonical

# Ingest's converters and blank test: the inference must parse exactly as ingest does.
from components.ingest.normalize import CONVERTERS, nonblank
from components.ingest.sources import read_source

BUDGET = float(TableConfig.model_fields["max_invalid_fraction"].default)
"""Share of a column's values that may fail to parse for its type to be inferred
(ingest's default `max_invalid_fraction`; those values become null at ingest)."""
MAX_SET = 20
"""A string column with at most this many distinct values gets an allowed-set check."""
MAX_CATEGORIES = 100
"""A string column with more distinct values is left out of the features."""
MARGIN = 0.1
"""Numeric ranges are widened by this share of the observed range on each side."""
MIN_ROWS = 100
"""The critical row-count floor (or the profiled row count, if smaller)."""
PASSWORD_VAR = "SEAMLESS_DB_PASSWORD"
"""Environment variable the written config reads a database password from."""

_INT_TEXT = re.compile(r"[+-]?\d+")
_LEADING_ZERO = re.compile(r"[+-]?0\d+")
_DATE_HINT = re.compile(r"\d[-/:T]\d|\d{4}-\d")
_ID_LOWER = re.compile(r"^(id|uuid|guid|key)$|[_\-\s](id|key)$|^(id|key)[_\-\s]")
_ID_CAMEL = re.compile(r"[a-z0-9](ID|Id)$")
_EVENT_NAME = re.compile(
    r"(?i)(timestamp|event_?time|event_?date|datetime|as_?of|^ts$|_ts$|_at$|^date$|^time$)"
)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_TYPE_WORDS = {
    "int": "integers",
    "float": "numbers",
    "bool": "true/false values",
    "timestamp": "ISO 8601 timestamps",
}


def _n(count: int) -> str:
    return f"{count:,}"


def _rows(count: int) -> str:
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


def _show(values: list[Any] | tuple[Any, ...], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class SourcePlan:
    """Where the table is read from now, and how the config names it."""

    read: FileSource | SqlSource
    """The source as `init` reads it (absolute paths, the password as given)."""
    config: FileSource | SqlSource
    """The source written into the config (paths relative to the data dir if possible,
    the password as `${SEAMLESS_DB_PASSWORD}`)."""
    shown: str
    """The source for messages (passwords masked)."""
    table: str
    """Table name in the config."""
    notes: tuple[str, ...] = ()
    password: str | None = None
    """The database password (URL-encoded), when the config reads it from PASSWORD_VAR."""


def _identifier(text: str, fallback: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_").lower()
    if not name:
        return fallback
    return f"t_{name}" if name[0].isdigit() else name


def is_database_url(text: str) -> bool:
    """A SQLAlchemy URL (`dialect[+driver]://...`), not a file path or http(s)/file URI."""
    scheme = urlsplit(text).scheme.lower()
    return "://" in text and len(scheme) > 1 and scheme not in ("http", "https", "file")


def plan_source(
    from_: str,
    data_dir: Path,
    *,
    query: str | None = None,
    table: str | None = None,
    cwd: Path | None = None,
) -> SourcePlan:
    """The source for `--from` (a CSV/Parquet path or URL, or a SQLAlchemy URL)."""
    cwd = (cwd or Path.cwd()).resolve()
    data_dir = data_dir.resolve()
    if is_database_url(from_):
        return _plan_sql(from_, data_dir, query, table, cwd)
    if query or table:
        flag = "--query" if query else "--table"
        raise SeamlessError(
            f"{flag} applies to a database URL, but --from {from_} is a file; drop {flag}."
        )
    parts = urlsplit(from_)
    if parts.scheme.lower() in ("http", "https"):
        name = Path(parts.path).name or "data"
        src = FileSource(uri=from_)
        return SourcePlan(src, src, from_, _identifier(Path(name).stem.split(".")[0], "data"))
    path = Path(url2pathname(unquote(parts.path))) if parts.scheme == "file" else Path(from_)
    path = path.expanduser()
    path = (path if path.is_absolute() else cwd / path).resolve()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise SeamlessError(f"--from {from_}: {path} {what}.")
    delimiter = _delimiter_of(path)
    notes: tuple[str, ...] = ()
    try:
        uri = path.relative_to(data_dir).as_posix()
    except ValueError:
        uri = str(path)
        notes = (
            f"An absolute path: {path.name} is not inside the data directory {data_dir} "
            "(init --data-dir).",
        )
    read = FileSource(uri=str(path), delimiter=delimiter)
    written = FileSource(uri=uri, delimiter=delimiter)
    stem = path.name.split(".")[0]
    return SourcePlan(read, written, str(path), _identifier(stem, "data"), notes)


def _delimiter_of(path: Path) -> str:
    """`,` unless another delimiter splits the first lines into a constant number of fields."""
    from components.ingest.sources import sample_text, sniff_delimiter  # ingest's sniffer

    if path.name.lower().endswith((".parquet", ".pq", ".parq")):
        return ","
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return ","
    return sniff_delimiter(sample_text(path), ",") or ","


def _plan_sql(
    url_text: str, data_dir: Path, query: str | None, table: str | None, cwd: Path
) -> SourcePlan:
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from components.ingest.fetch import mask_url

    shown = mask_url(url_text)
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise SeamlessError(f"--from {shown} is not a valid SQLAlchemy database URL.") from None
    if bool(query) == bool(table):
        raise SeamlessError(
            f"--from {shown} is a database: name the table with --table NAME or give --query "
            "SQL (one of them)."
        )
    if table:
        try:
            preparer = url.get_dialect()().identifier_preparer
        except (NoSuchModuleError, ImportError) as exc:
            raise SeamlessError(f"--from {shown}: no SQLAlchemy dialect for it ({exc}).") from None
        name = ".".join(preparer.quote(part) for part in table.split("."))
        query = f"SELECT * FROM {name}"  # identifiers quoted by the dialect
    assert query is not None
    notes: list[str] = []
    read_url, config_url = url, url
    db = url.database
    if (
        url.get_backend_name() == "sqlite"
        and db
        and db != ":memory:"
        and not db.startswith("file:")
    ):
        path = Path(db).expanduser()
        path = (path if path.is_absolute() else cwd / path).resolve()
        read_url = url.set(database=str(path))
        try:
            config_url = url.set(database=path.relative_to(data_dir).as_posix())
        except ValueError:
            config_url = read_url
            notes.append(f"An absolute path: the database is not inside {data_dir}.")
    password = None
    config_text = config_url.render_as_string(hide_password=False)
    if url.password:
        password = quote(str(url.password), safe="")
        placeholder = "SEAMLESSPASSWORDPLACEHOLDER"
        config_text = config_url.set(password=placeholder).render_as_string(hide_password=False)
        config_text = config_text.replace(placeholder, "${" + PASSWORD_VAR + "}")
        notes.append(
            f"The password is read from the environment: export {PASSWORD_VAR} (URL-encoded)."
        )
    read = SqlSource(kind="sql", url=read_url.render_as_string(hide_password=False), query=query)
    written = SqlSource(kind="sql", url=config_text, query=query)
    name = _identifier(table.split(".")[-1], "data") if table else "data"
    return SourcePlan(read, written, shown, name, tuple(notes), password)


def read_table(plan: SourcePlan) -> pd.DataFrame:
    """The table's raw rows; a CSV's values all as text, so "007" stays "007"."""
    src = plan.read
    if isinstance(src, SqlSource):
        df = read_source(src, None, plan.table)
    else:
        header = _csv_header(src)
        df = read_source(src, None, plan.table, header)
        if not header and not _is_parquet(src.uri) and df.select_dtypes(exclude=object).shape[1]:
            df = read_source(src, None, plan.table, [str(c) for c in df.columns])  # as text
    if len(df) == 0:
        raise SeamlessError(f"--from {plan.shown} has no rows.")
    df.columns = [str(c) for c in df.columns]
    dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup:
        raise SeamlessError(f"--from {plan.shown} has more than one column named {dup[0]!r}.")
    return df


def _is_parquet(uri: str) -> bool:
    return urlsplit(uri).path.lower().endswith((".parquet", ".pq", ".parq"))


def _csv_header(src: FileSource) -> list[str]:
    """Column names of a local CSV (empty for Parquet, URLs or unreadable files: the
    reader then reports the problem)."""
    path = Path(src.uri)
    if _is_parquet(src.uri) or not path.is_file():
        return []
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return []
    try:
        cols = pd.read_csv(path, sep=src.delimiter, nrows=0, encoding="utf-8-sig").columns
    except Exception:  # the reader says what is wrong, with the file named
        return []
    return [str(c) for c in cols]


# ---------------------------------------------------------------- profiling


@dataclass(frozen=True)
class ColumnProfile:
    """What one column holds and the type inferred for it."""

    name: str
    kind: ColumnType
    rows: int
    present: int
    """Values that are neither null nor blank in the source."""
    parsed: int
    """Present values that parse as `kind` (all of them for string)."""
    invalid_examples: tuple[str, ...]
    """The first values that do not parse (they become null at ingest)."""
    distinct: int
    """Distinct parsed values."""
    top: tuple[tuple[Any, int], ...]
    """(value, rows), most frequent first, when there are at most MAX_SET values."""
    minimum: Any = None
    """Smallest parsed value (numbers and timestamps)."""
    maximum: Any = None
    why: str = ""
    """The sentence the config shows above the column."""

    @property
    def invalid(self) -> int:
        return self.present - self.parsed

    @property
    def nulls(self) -> int:
        """Null after ingest: empty in the source or not parseable."""
        return self.rows - self.parsed

    @property
    def unique(self) -> bool:
        """Every row has a value and no two rows share one."""
        return self.parsed == self.rows and self.distinct == self.rows


def _examples(values: pd.Series, limit: int = 3) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        text = str(v)[:40]
        if text not in out:
            out.append(text)
        if len(out) == limit:
            break
    return tuple(out)


def _trial(raw: pd.Series, present: pd.Series, kind: ColumnType) -> tuple[pd.Series, pd.Series]:
    """(converted values, mask of present values that failed) under ingest's converter."""
    converted = CONVERTERS[kind](raw)
    return converted, present & converted.isna()


def _fits(failed: int, present: int) -> bool:
    return failed <= BUDGET * present


def infer_column(name: str, raw: pd.Series) -> ColumnProfile:
    """The column's type, conservatively: a type is taken when at most 1% of the present
    values fail to parse as it (they become null at ingest, and are listed); digits with
    leading zeros stay text; a column of decimals is never cut to integers."""
    raw = raw.reset_index(drop=True)
    rows = len(raw)
    present_mask = pd.Series(nonblank(raw).to_numpy(bool))
    present = int(present_mask.sum())
    kind: ColumnType = "string"
    failed = pd.Series(False, index=raw.index)
    why = ""
    typed = {
        "bool": ptypes.is_bool_dtype,
        "int": ptypes.is_integer_dtype,
        "float": ptypes.is_float_dtype,
        "timestamp": ptypes.is_datetime64_any_dtype,
    }
    native = next((k for k, test in typed.items() if test(raw.dtype)), None)
    if present == 0:
        why = "string: every value is empty"
    elif native is not None:
        kind = cast(ColumnType, native)
        why = f"{kind}: typed so in the source"
    else:
        kind, failed, why = _infer_objects(raw, present_mask, present)
    converted = CONVERTERS[kind](raw)
    ok = converted[~converted.isna()] if kind != "string" else converted.dropna()
    n_failed = int(failed.sum())
    if n_failed:
        verb = "does not and becomes" if n_failed == 1 else "do not and become"
        why += f"; {_n(n_failed)} {verb} null at ingest (e.g. {_show(_examples(raw[failed]))})"
    empty = rows - present
    if empty:
        why += f"; {_n(empty)} empty"
    distinct = int(ok.nunique())
    top: tuple[tuple[Any, int], ...] = ()
    if distinct <= MAX_SET:
        counts = ok.value_counts(sort=True)
        top = tuple((_plain(v), int(c)) for v, c in counts.items())
    minimum = maximum = None
    if kind in ("int", "float", "timestamp") and len(ok):
        minimum, maximum = _plain(ok.min()), _plain(ok.max())
    if kind == "string" and present:
        why = why.replace("string: text", f"string: {_n(distinct)} distinct values", 1)
        if distinct == present == rows and rows > MAX_SET:
            why += "; every value differs (an identifier or free text?)"
    return ColumnProfile(
        name=name,
        kind=kind,
        rows=rows,
        present=present,
        parsed=len(ok),
        invalid_examples=_examples(raw[failed]),
        distinct=distinct,
        top=top,
        minimum=minimum,
        maximum=maximum,
        why=why,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _infer_objects(
    raw: pd.Series, present_mask: pd.Series, present: int
) -> tuple[ColumnType, pd.Series, str]:
    """Type of an object column (CSV text, or mixed values from a database driver)."""
    values = raw[present_mask]
    all_text = ptypes.infer_dtype(values, skipna=True) == "string"
    text = values.map(str).str.strip()
    lowered = set(text.str.lower().unique()) if text.nunique() <= 4 else set()
    if lowered and lowered <= {"true", "false"}:
        _, failed = _trial(raw, present_mask, "bool")
        return "bool", failed, f"inferred bool: {_n(present)} values are true/false"
    _, float_failed = _trial(raw, present_mask, "float")
    _, int_failed = _trial(raw, present_mask, "int")
    n_float, n_int = int(float_failed.sum()), int(int_failed.sum())
    if n_float < present and _fits(n_float, present):
        zeros = text[text.str.fullmatch(_LEADING_ZERO)] if all_text else text.iloc[:0]
        if len(zeros):
            return (
                "string",
                pd.Series(False, index=raw.index),
                f"kept as string: values such as {zeros.iloc[0]!r} have leading zeros that a "
                "number would drop",
            )
        lost = text[(int_failed & ~float_failed)[text.index]]
        if len(lost) and all_text and lost.str.fullmatch(_INT_TEXT).all():
            return (
                "string",
                pd.Series(False, index=raw.index),
                f"kept as string: values such as {lost.iloc[0]!r} are integers too long for a "
                "64-bit integer (a float would round them)",
            )
        # Integers only if no number would be lost and none is written as a decimal ("40.0"):
        # the next file's "40.5" would then be a coerced value.
        numbers = text[~float_failed[text.index]]
        written_as_int = not all_text or bool(numbers.str.fullmatch(_INT_TEXT).all())
        if n_int == n_float and written_as_int:
            return "int", int_failed, _parse_sentence("int", present - n_int, present)
        return "float", float_failed, _parse_sentence("float", present - n_float, present)
    if text.str.contains(_DATE_HINT).any():
        _, ts_failed = _trial(raw, present_mask, "timestamp")
        n_ts = int(ts_failed.sum())
        if n_ts < present and _fits(n_ts, present):
            return "timestamp", ts_failed, _parse_sentence("timestamp", present - n_ts, present)
    return "string", pd.Series(False, index=raw.index), _string_sentence(n_float, present)


def _parse_sentence(kind: str, parsed: int, present: int) -> str:
    words = _TYPE_WORDS[kind]
    return f"inferred {kind}: {_n(parsed)} of {_n(present)} non-null values parse as {words}"


def _string_sentence(not_numbers: int, present: int) -> str:
    numbers = present - not_numbers
    if numbers and not_numbers:
        return (
            f"string: {_n(numbers)} of {_n(present)} non-null values are numbers, too few "
            f"for a numeric type (at most {BUDGET:.0%} may fail to parse)"
        )
    return "string: text"


def profile_table(df: pd.DataFrame) -> dict[str, ColumnProfile]:
    """A profile per column, in the table's order."""
    return {str(c): infer_column(str(c), df[c]) for c in df.columns}


# ---------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeysPlan:
    """The entity and event-time columns (None: ingest generates row_id / ingested_at)."""

    entity: str | None
    entity_kind: ColumnType | None
    timestamp: str | None
    notes: tuple[str, ...]
    """Sentences for the config's tables section."""
    oldest: datetime | None = None
    """Earliest event time (sizes the feature views' ttl)."""


def _key_kind(name: str, raw: pd.Series, where: str) -> ColumnType:
    """int or string for an entity column, which tolerates no unparseable value."""
    present = nonblank(raw)
    if not present.all():
        missing = ~present.to_numpy(bool)
        raise SeamlessError(
            f"{where}: entity column '{name}' is empty in {_rows(int(missing.sum()))} (the "
            f"first is row {int(np.flatnonzero(missing)[0]) + 1}); every row needs its key."
        )
    if ptypes.is_integer_dtype(raw.dtype):
        return "int"
    text = raw.map(str).str.strip()
    if text.str.fullmatch(_INT_TEXT).all() and not text.str.fullmatch(_LEADING_ZERO).any():
        return "int" if not CONVERTERS["int"](raw).isna().any() else "string"
    return "string"


def plan_keys(
    df: pd.DataFrame,
    profiles: dict[str, ColumnProfile],
    label: str,
    shown: str,
    entity: str | None = None,
    timestamp: str | None = None,
) -> KeysPlan:
    """Given keys are checked (present, parseable, unique); absent ones are proposed when
    one column clearly fits, else left to ingest's generated row_id and ingestion time."""
    where = f"--from {shown}"
    notes: list[str] = []
    for flag, col in (("--entity", entity), ("--timestamp", timestamp)):
        if col is not None and col not in df.columns:
            raise SeamlessError(
                f"{flag} '{col}' is not a column of {shown} "
                f"(columns: {_show(list(df.columns), 12)})."
            )
        if col is not None and col == label:
            raise SeamlessError(f"{flag} '{col}' is the label column; choose another column.")
    if entity is not None and entity == timestamp:
        raise SeamlessError(f"--entity and --timestamp both name '{entity}'; they must differ.")

    if timestamp is not None:
        raw = df[timestamp]
        converted = CONVERTERS["timestamp"](raw)
        bad = (~nonblank(raw) | converted.isna()).to_numpy(bool)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise SeamlessError(
                f"{where}: timestamp column '{timestamp}' has {_rows(int(bad.sum()))} that are "
                f"empty or not ISO 8601 timestamps, the first being row {first + 1} "
                f"({_plain(raw.iloc[first])!r}); the event time tolerates none."
            )
        notes.append(f"Event time: '{timestamp}' (--timestamp).")
    else:
        timestamp = _propose_timestamp(profiles, label, entity)
        if timestamp is not None:
            notes.append(
                f"Event time: '{timestamp}' was proposed (a timestamp in every row, named like "
                "one); pass --timestamp to choose another."
            )
        else:
            notes.append(
                f"No event time given or found: ingest stamps each row with the ingestion "
                f"time ('{INGESTED_AT}'), and the holdout is the last rows of the table."
            )
        others = [
            p.name
            for p in profiles.values()
            if p.kind == "timestamp" and p.name not in (timestamp, label, entity)
        ]
        if others:
            notes.append(
                f"{_show(others)} also hold{'s' if len(others) == 1 else ''} timestamps; "
                "pass --timestamp to use one as the event time."
            )

    kind: ColumnType | None = None
    if entity is not None:
        kind = _key_kind(entity, df[entity], where)
        notes.append(f"Entity: '{entity}' (--entity), {kind}.")
    else:
        entity = _propose_entity(profiles, label, timestamp)
        kind = _key_kind(entity, df[entity], where) if entity else None
        if entity is not None:
            notes.append(
                f"Entity: '{entity}' was proposed (named like an id, a value in every row, no "
                "two rows alike); serving looks features up by it. Pass --entity to choose "
                "another."
            )
        else:
            if ROW_ID in df.columns:
                raise SeamlessError(
                    f"{where}: column '{ROW_ID}' is the name ingest gives its generated row "
                    "number, and it cannot be the entity (it repeats or is empty); pass --entity "
                    "or rename it."
                )
            notes.append(
                f"No entity column given or found: ingest numbers the rows ('{ROW_ID}', 0 for "
                "the first row), and serving looks features up by that number."
            )
    if timestamp is None and INGESTED_AT in df.columns:
        raise SeamlessError(
            f"{where}: column '{INGESTED_AT}' is the name ingest gives its generated ingestion "
            "time; pass --timestamp to use it as the event time or rename it."
        )
    if entity is not None:
        keys = [entity] + ([timestamp] if timestamp else [])
        frame = df[keys].copy()
        if timestamp:
            frame[timestamp] = CONVERTERS["timestamp"](df[timestamp])
        dup = frame.duplicated(keep=False).to_numpy(bool)
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            what = f"({', '.join(keys)})" if timestamp else f"'{entity}'"
            raise SeamlessError(
                f"{where}: {_rows(int(dup.sum()))} share their {what} with another row (the first "
                f"is row {first + 1}, {entity}={_plain(df[entity].iloc[first])!r}); each row "
                f"needs its own key{'' if timestamp else ': pass --timestamp if rows are events'}."
            )
    oldest = None
    if timestamp is not None:
        oldest = pd.Timestamp(CONVERTERS["timestamp"](df[timestamp]).min()).to_pydatetime()
    return KeysPlan(entity, kind, timestamp, tuple(notes), oldest)


def _propose_timestamp(
    profiles: dict[str, ColumnProfile], label: str, entity: str | None
) -> str | None:
    fits = [
        p.name
        for p in profiles.values()
        if p.kind == "timestamp"
        and p.name not in (label, entity)
        and p.parsed == p.rows
        and _EVENT_NAME.search(p.name)
    ]
    return fits[0] if len(fits) == 1 else None


def _id_like(name: str) -> bool:
    """Named like an identifier: id, customer_id, customerID, key, uuid."""
    return bool(_ID_LOWER.search(name.lower()) or _ID_CAMEL.search(name))


def _propose_entity(
    profiles: dict[str, ColumnProfile], label: str, timestamp: str | None
) -> str | None:
    fits = [
        p.name
        for p in profiles.values()
        if p.name not in (label, timestamp)
        and p.kind in ("int", "string")
        and p.unique
        and (_id_like(p.name) or p.name == ROW_ID)
    ]
    return fits[0] if fits else None


# ---------------------------------------------------------------- label


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
    """Rows without a label (dropped: `unknown_values: drop`)."""
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
    if text.str.fullmatch(_INT_TEXT).all() and not text.str.fullmatch(_LEADING_ZERO).any():
        return "int"
    return "string"


def _typed(text: str, kind: ColumnType) -> LabelValue:
    if kind == "int":
        return int(text)
    if kind == "bool":
        return text == "true"
    return text


def plan_label(df: pd.DataFrame, label: str, shown: str, positive: str | None = None) -> LabelPlan:
    """Classes of the label column: `positive` (or, for a two-valued label, the minority
    class), and every other value as an explicit negative class. Spellings of one value
    that differ only in case or surrounding spaces are mapped onto the commonest one."""
    if label not in df.columns:
        raise SeamlessError(
            f"--label '{label}' is not a column of {shown} "
            f"(columns: {_show(list(df.columns), 12)})."
        )
    raw = df[label]
    kind = _label_kind(raw)
    present = nonblank(raw)
    missing = int((~present).sum())
    if not present.any():
        raise SeamlessError(f"Label column '{label}' of {shown} is empty in every row.")
    values = raw[present]
    if kind == "int":
        text = values.map(lambda v: str(int(v)) if isinstance(v, str) else str(canonical(v)))
    else:
        text = values.map(lambda v: v if isinstance(v, str) else str(canonical(v)))
    counts = text.value_counts(sort=True)
    notes: list[str] = []
    value_map: dict[str, LabelValue] = {}
    if kind == "string":
        counts, value_map, mapped_notes = _merge_spellings(counts, positive)
        notes += mapped_notes
    classes = {str(k): int(v) for k, v in counts.items()}
    listing = ", ".join(f"{k!r} ({_rows(v)})" for k, v in list(classes.items())[:10])
    listing += f" and {len(classes) - 10} more" if len(classes) > 10 else ""
    if positive is not None:
        wanted = positive.lower() if kind == "bool" else positive
        if kind == "int" and _INT_TEXT.fullmatch(positive.strip()):
            wanted = str(int(positive))
        if wanted not in classes:
            raise SeamlessError(
                f"--positive {positive!r} is not a value of label column '{label}' in {shown}; "
                f"its values are {listing}."
            )
        chosen = wanted
        notes.append(f"Positive class {chosen!r} (--positive): {_rows(classes[chosen])}.")
    elif len(classes) == 1:
        raise SeamlessError(
            f"Label column '{label}' of {shown} holds one value only ({listing}); a model "
            "needs two classes."
        )
    elif len(classes) == 2:
        (a, na), (b, nb) = sorted(classes.items(), key=lambda kv: (kv[1], kv[0]))
        chosen = a
        tie = " (a tie: the first in sort order)" if na == nb else ""
        notes.append(
            f"Positive class {chosen!r}: the minority class{tie}, {_rows(na)} against "
            f"{_rows(nb)} of {b!r}; pass --positive to choose the other."
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
        + ", ".join(f"{k!r} ({_rows(classes[k])})" for k in negatives)
        + ("." if missing else ": any other value stops the run.")
    )
    if missing:
        notes.append(
            f"{_rows(missing)} have no label: they are dropped before validation "
            "(unknown_values: drop), counted in the run summary. Drop also removes any other "
            "value outside the classes: set unknown_values: fail once every row has a label."
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
                    f"{other!r} ({_rows(int(counts[other]))}) is mapped to {main!r} "
                    "(value_map): they differ only in case or spaces."
                )
    out = pd.Series(merged).sort_values(ascending=False, kind="stable")
    return out, value_map, notes


# ---------------------------------------------------------------- expectations


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
            f"must hold: enough rows to train and evaluate (the profile had {_n(rows)})",
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
                    f"{col}: the {p.distinct} values seen",
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


# ---------------------------------------------------------------- YAML


def _y(value: Any) -> str:
    """One YAML scalar or flow collection, read back as exactly `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
            return value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_y(str(k))}: {_y(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_y(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to YAML")


def _comment(text: str, indent: int = 0, width: int = 96) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(
        text, width=width, initial_indent=f"{pad}# ", subsequent_indent=f"{pad}# "
    ) or [f"{pad}#"]


@dataclass(frozen=True)
class Scaffold:
    """A written-out plan: the config text and what it was inferred from."""

    text: str
    name: str
    table: str
    rows: int
    source: SourcePlan
    profiles: dict[str, ColumnProfile]
    keys: KeysPlan
    label: LabelPlan
    features: list[str]
    left_out: dict[str, str]
    """Columns that are not features (neither keys nor label), and why."""
    expectations: list[Expectation]


def build_scaffold(
    from_: str,
    label: str,
    *,
    name: str,
    data_dir: Path,
    positive: str | None = None,
    entity: str | None = None,
    timestamp: str | None = None,
    query: str | None = None,
    table: str | None = None,
    cwd: Path | None = None,
    now: datetime | None = None,
) -> Scaffold:
    """Read and profile the table, plan keys, label, features and checks, render the YAML."""
    source = plan_source(from_, data_dir, query=query, table=table, cwd=cwd)
    df = read_table(source)
    if label not in df.columns:
        plan_label(df, label, source.shown)  # raises the sentence naming the columns
    profiles = profile_table(df)
    keys = plan_keys(df, profiles, label, source.shown, entity, timestamp)
    label_plan = plan_label(df, label, source.shown, positive)
    features, left_out = choose_features(profiles, (keys.entity, keys.timestamp, label))
    if not features:
        raise SeamlessError(
            f"--from {source.shown} has no column to learn from besides the label "
            f"'{label}' and the keys."
        )
    use_case = _identifier(name, "use_case")
    expectations = starter_expectations(source.table, profiles, features, label_plan, len(df))
    plan = Scaffold(
        text="",
        name=use_case,
        table=source.table,
        rows=len(df),
        source=source,
        profiles=profiles,
        keys=keys,
        label=label_plan,
        features=features,
        left_out=left_out,
        expectations=expectations,
    )
    text = render_config(plan, now or datetime.now(UTC))
    parse_config(text, origin="the scaffolded config")  # a bug here must not reach the user
    return replace(plan, text=text)


def _ttl_days(keys: KeysPlan, now: datetime) -> int:
    if keys.oldest is None:
        return 365
    oldest = keys.oldest if keys.oldest.tzinfo else keys.oldest.replace(tzinfo=UTC)
    return max(365, (now - oldest).days + 30)


def choose_features(
    profiles: dict[str, ColumnProfile], keys_and_label: tuple[str | None, ...]
) -> tuple[list[str], dict[str, str]]:
    """Every column but the keys and the label, except timestamps (the model does not take
    them) and text with more than MAX_CATEGORIES values (each value would become one
    one-hot input, dense: rows x values floats)."""
    features: list[str] = []
    left_out: dict[str, str] = {}
    for col, p in profiles.items():
        if col in keys_and_label:
            continue
        if p.kind == "timestamp":
            left_out[col] = "not a feature: the model takes numbers, text and booleans"
        elif p.kind == "string" and p.distinct > MAX_CATEGORIES:
            left_out[col] = (
                f"not a feature: {_n(p.distinct)} distinct values, each one-hot encoded, cost "
                f"more than they tell (more than {MAX_CATEGORIES}); add it to the view's "
                "features to use it anyway"
            )
        else:
            features.append(col)
    return features, left_out


def render_config(plan: Scaffold, now: datetime) -> str:
    """The config as commented YAML (see `build_scaffold`)."""
    t, src, keys, label = plan.table, plan.source, plan.keys, plan.label
    lines: list[str] = []
    add = lines.append
    ncols = len(plan.profiles)
    lines += _comment(
        f"Seamless use case '{plan.name}', written by `seamless init` on "
        f"{now.strftime('%Y-%m-%d')} from {src.shown} ({_n(plan.rows)} rows x {ncols} columns). "
        "Every inferred choice is explained in a comment: check them, then edit freely."
    )
    add("name: " + _y(plan.name))
    add("")
    lines += _comment(
        "tables: where the data comes from and the type of every column. The one table "
        "holds both the features and the labels. A relative file path resolves against the "
        "--data-dir of `seamless run training`; values of a typed column that do not parse "
        f"become null, up to max_invalid_fraction ({BUDGET:.0%}) of the rows, and are listed "
        "in the run summary."
    )
    add("tables:")
    add(f"  {_y(t)}:")
    for note in src.notes:
        lines += _comment(note, 4)
    add(f"    source: {_y(_source_dict(src.config))}")
    for note in keys.notes:
        lines += _comment(note, 4)
    if keys.entity:
        add(f"    entity_column: {_y(keys.entity)}")
    if keys.timestamp:
        add(f"    timestamp_column: {_y(keys.timestamp)}")
    add("    columns:")
    for col, p in plan.profiles.items():
        kind: ColumnType = p.kind
        why = p.why
        if col == keys.entity and keys.entity_kind:
            kind, why = keys.entity_kind, f"entity key, {keys.entity_kind}"
        elif col == keys.timestamp:
            kind, why = "timestamp", "event time"
        elif col == label.column:
            kind, why = label.kind, f"label, {label.kind}"
        elif col in plan.left_out:
            why += f"; {plan.left_out[col]}"
        lines += _comment(why, 6)
        add(f"      {_y(col)}: {kind}")
    add("")
    lines += _comment(
        "labels: the column to predict and its classes. A value that is none of the classes "
        "stops the run with a sentence naming it (value_map renames values first)."
    )
    add("labels:")
    add(f"  table: {_y(t)}")
    add(f"  label_column: {_y(label.column)}")
    for note in label.notes:
        lines += _comment(note, 2)
    add(f"  positive_class: {_y(label.positive)}")
    add(f"  negative_classes: {_y(list(label.negatives))}")
    if label.value_map:
        add(f"  value_map: {_y(label.value_map)}")
    if label.missing:
        add("  unknown_values: drop")
    add("")
    lines += _comment(
        "validation: a starter suite from the profile. Built-in checks run anyway (every "
        "declared column present and typed, keys never empty, label classes, the invalid-value "
        "budget). Ranges are the observed ones widened by "
        f"{MARGIN:.0%}, allowed sets are the values seen in columns with at most {MAX_SET}, "
        "null budgets (`mostly`) allow the observed share plus slack. Only what training needs "
        "is critical; warnings are reported and never stop a run."
    )
    add("validation:")
    add("  expectations:")
    for exp in plan.expectations:
        lines += _comment(exp.comment, 4)
        add(f"    - {_y(exp.spec)}")
    add("")
    lines += _comment(
        "features: the Feast feature view (every column but the keys and the label) and the "
        "feature service the model is trained and served on."
    )
    if plan.left_out:
        lines += _comment(f"Left out (see their columns): {_show(list(plan.left_out), 10)}.")
    add("features:")
    add(f"  project: {_y(plan.name)}")
    add(f"  entity: {_y(_identifier(keys.entity or 'row', 'row'))}")
    add(f"  service: {_y(plan.name + '_v1')}")
    add("  views:")
    add(f"    - name: {_y(t + '_features')}")
    add(f"      table: {_y(t)}")
    add(f"      features: {_y(plan.features)}")
    ttl = _ttl_days(keys, now)
    lines += _comment(
        "How far back a point-in-time join looks for a value"
        + (f" (covers the data since {keys.oldest:%Y-%m-%d})." if keys.oldest else "."),
        6,
    )
    add(f"      ttl_days: {ttl}")
    add("")
    lines += _comment(
        "model: gradient-boosted trees (missing values and one-hot text handled by the "
        "pipeline) with a small random search; max_train_rows bounds the search's cost, the "
        "final refit uses every training row. The holdout is the latest 20% of label rows."
    )
    add("model:")
    add(f"  name: {_y(plan.name)}")
    add(f"  experiment: {_y(plan.name)}")
    add("  estimator: hist_gradient_boosting")
    add("  params: {early_stopping: false}")
    add("  search:")
    add("    method: random")
    add("    n_iter: 4")
    add("    cv: 3")
    add("    scoring: roc_auc")
    add("    space:")
    add("      learning_rate: [0.05, 0.1]")
    add("      max_depth: [3, null]")
    add("      max_iter: [100, 200]")
    add("  holdout_fraction: 0.2")
    add("  max_train_rows: 50000")
    add("  threshold: 0.5")
    add("  seed: 42")
    add("")
    lines += _comment(
        "promotion: a new model becomes champion when it beats the current one on the "
        "holdout by min_improvement; the first model is promoted as it is. Add min_value "
        "(e.g. 0.7) to require an absolute level. Monitoring thresholds take their defaults "
        "(add a monitoring: section to change them)."
    )
    add("promotion:")
    add("  metric: roc_auc")
    add("  min_improvement: 0.002")
    return "\n".join(lines) + "\n"


def _source_dict(src: FileSource | SqlSource) -> dict[str, Any]:
    if isinstance(src, SqlSource):
        return {"kind": "sql", "url": src.url, "query": src.query}
    out: dict[str, Any] = {"kind": "file", "uri": src.uri}
    if src.delimiter != ",":
        out["delimiter"] = src.delimiter
    return out


def write_config(path: Path, text: str, force: bool = False) -> None:
    """Write the config atomically; an existing file is kept unless `force`."""
    if path.exists() and not force:
        raise SeamlessError(f"--out {path} already exists; pass --force to replace it.")
    if path.exists() and not path.is_file():
        raise SeamlessError(f"--out {path} is not a file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- dry validation


@dataclass(frozen=True)
class DryRun:
    """Ingest + validate with the written config, as the training run's first steps do."""

    config: SeamlessConfig
    manifest: dict[str, Any]
    result: Any
    """components.validate.results.ValidationResult"""

    @property
    def rows(self) -> int:
        return sum(int(t["rows"]) for t in self.manifest["tables"].values())

    def coerced(self) -> list[tuple[str, str, int, list[str]]]:
        """(table, column, values turned null at ingest, examples of their text)."""
        out = []
        for table, info in self.manifest["tables"].items():
            examples = info.get("invalid_examples") or {}
            for col, count in (info.get("invalid_values") or {}).items():
                out.append((table, col, int(count), list(examples.get(col, []))))
        return out

    def label_changes(self) -> dict[str, Any]:
        """Mapped and dropped label values of the labels table (empty when none)."""
        info = self.manifest["tables"][self.config.labels.table].get("labels") or {}
        return {k: info[k] for k in ("mapped", "dropped", "dropped_values") if info.get(k)}


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Ingest's warnings about coerced values are in the DryRun; not on the console too."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@contextmanager
def _password_env(password: str | None) -> Iterator[None]:
    if password is None or PASSWORD_VAR in os.environ:
        yield
        return
    os.environ[PASSWORD_VAR] = password
    try:
        yield
    finally:
        os.environ.pop(PASSWORD_VAR, None)


def dry_validate(config_path: Path, data_dir: Path, password: str | None = None) -> DryRun:
    """Load the config, ingest its tables into a temporary folder and validate them.

    Raises SeamlessError when the config does not load or ingest stops (its sentence).
    `password` fills `${SEAMLESS_DB_PASSWORD}` for this call if the variable is unset.
    """
    from components.common.tables import read_dataset
    from components.ingest.ingest import ingest_tables
    from components.validate.validation import validate_tables

    with _password_env(password), _quiet("components.ingest"):
        config = load_config(config_path)
        with tempfile.TemporaryDirectory(prefix="seamless-init-") as tmp:
            folder = Path(tmp) / "dataset"
            manifest = ingest_tables(config, data_dir, folder)
            result = validate_tables(config, read_dataset(folder), manifest)
    return DryRun(config, manifest, result)
