"""Turn a raw table into the normalized form every later stage relies on.

Declared columns get one dtype each, whatever the source produced, so the Parquet schema
(and the content hash) never depends on the data of the day:

=========  ==========================  =====================================
declared   pandas dtype                Parquet
=========  ==========================  =====================================
int        ``Int64`` (nullable)        int64, nulls as nulls
float      ``float64``                 double, nulls as NaN
bool       ``boolean`` (nullable)      boolean
string     ``object`` (str or None)    string
timestamp  ``datetime64[ns, UTC]``     timestamp(ns, UTC)
=========  ==========================  =====================================

Text written another way (US dates, `1,234.5`) is read by the column's `ColumnFormat`
(`convert`). Columns not declared pass through as read. Rows are numbered from 1 in
messages (header not counted), in source order.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from components.common.config import (
    CASE_BLIND,
    INGESTED_AT,
    ROW_ID,
    UNIT_NS,
    ColumnFormat,
    ColumnType,
    FileSource,
    LabelsConfig,
    TableConfig,
    case_clash,
)
from components.common.errors import SeamlessError
from components.common.pii import WITHHELD, withheld
from components.ingest.json_records import is_nested, json_text

log = logging.getLogger(__name__)

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
# An explicit UTC offset after a time of day; a bare date's "-01" must not count.
_HAS_OFFSET = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")
_INT_TEXT = re.compile(r"[+-]?\d{1,18}")
_ONE = {
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "timestamp": "an ISO 8601 timestamp",
}
_WHAT = {
    "int": "integers",
    "float": "numbers",
    "bool": "booleans (true/false, yes/no, 1/0)",
    "timestamp": "ISO 8601 timestamps",
}


@dataclass
class NormalizeReport:
    """What normalization did beyond type conversion."""

    invalid_values: dict[str, int] = field(default_factory=dict)
    """Column -> count of tolerated non-parseable values that became null."""
    invalid_examples: dict[str, list[str]] = field(default_factory=dict)
    """Column -> the first few of those values as they were in the source (text)."""
    generated_columns: list[str] = field(default_factory=list)
    """Columns added by ingestion (`row_id`, `ingested_at`)."""


# ---------------------------------------------------------------- helpers


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or isinstance(s.dtype, pd.StringDtype)


def _clean_text(raw: pd.Series) -> pd.Series:
    """Strings stripped and blank ones null; other values untouched (object dtype)."""
    s = raw.astype(object)
    kind = ptypes.infer_dtype(s, skipna=True)
    if kind == "empty":
        return s
    if kind == "string":
        stripped = s.str.strip()
        return stripped.where(stripped != "", None)

    def clean(v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            return v or None
        return v

    # Not Series.map: it would infer float64 for integers and None, rounding past 2**53.
    return pd.Series([clean(v) for v in s], index=s.index, dtype=object)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .\-]{0,63}")
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def looks_like_data(columns: list[Any]) -> bool:
    """Whether a header holds a number: likely the first data line of a file that has no
    header row."""
    return any(_NUMBER.fullmatch(str(c)) for c in columns)


def _headerless_hint(columns: list[str], table_cfg: TableConfig) -> str:
    """For a CSV read with its first line as the header, when that line holds numbers:
    how to name the columns of a file without a header row."""
    source = table_cfg.source
    if not isinstance(source, FileSource) or source.column_names is not None:
        return ""
    if not looks_like_data(columns):
        return ""
    return (
        "; its first line holds numbers, so it looks like data rather than column names: "
        "for a CSV file without a header row, list its columns in the source's column_names"
    )


def _fits_int64(value: object) -> bool:
    return (
        isinstance(value, str)
        and _INT_TEXT.fullmatch(value) is not None
        and -(2**63) <= int(value) < 2**63
    )


def _int_text(v: Any) -> str | None:
    """Text to re-read exactly: a string, or a Python integer (JSON values)."""
    if isinstance(v, str):
        return v
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
        return str(v)
    return None


# Kinds of object column that hold no Python bool, or only bools.
_NOT_MIXED_WITH_BOOLS = (
    "string", "integer", "floating", "mixed-integer-float", "decimal", "empty", "boolean",
)  # fmt: skip


def _numbers_only(s: pd.Series) -> pd.Series:
    """An object column with the true/false values among its numbers (JSON's) made null,
    so they are counted as values that are no number: pd.to_numeric would read them as 1
    and 0. A column of only true/false declared a number (a flag kept as 1/0, from JSON
    or Parquet) is the user's choice and converts."""
    if ptypes.infer_dtype(s, skipna=True) in _NOT_MIXED_WITH_BOOLS:
        return s
    flags = np.fromiter((isinstance(v, bool | np.bool_) for v in s), bool, len(s))
    return s.where(~flags, None) if flags.any() else s


def _to_int(raw: pd.Series) -> pd.Series:
    if ptypes.is_bool_dtype(raw) or ptypes.is_integer_dtype(raw):
        return raw.astype("Int64")
    s = _numbers_only(_clean_text(raw)) if _is_text(raw) else raw
    num = pd.to_numeric(s, errors="coerce")
    if ptypes.is_unsigned_integer_dtype(num):
        # Values past int64 parse as uint64: leave them to the tolerance check as invalid.
        num = num.astype("float64").where(num <= np.iinfo("int64").max)
    elif ptypes.is_integer_dtype(num):
        return num.astype("Int64")
    floats = num.astype("float64").to_numpy()
    ok = np.isfinite(floats)
    ok[ok] = (floats[ok] % 1 == 0) & (np.abs(floats[ok]) < 2**63)
    values = np.zeros(len(floats), dtype="int64")
    values[ok] = floats[ok].astype("int64")
    if _is_text(raw):
        # Floats lose digits past 2**53: re-read integer-looking text exactly (long ids),
        # which only values that did not parse or reached 2**53 as floats can be...
        suspect = np.isnan(floats) | (np.abs(np.nan_to_num(floats)) >= 2**53)
        if suspect.any():
            where = np.flatnonzero(suspect)
            text = s.iloc[where].map(_int_text)
            # ...and only what fits in int64; longer digit strings stay invalid values.
            exact = text.map(_fits_int64).to_numpy(bool)
            if exact.any():
                values[where[exact]] = text[exact].astype("int64").to_numpy()
                ok[where[exact]] = True
    # Built from arrays: masked assignment into an Int64 Series goes through float64.
    return pd.Series(pd.arrays.IntegerArray(values, ~ok), index=raw.index)


def _to_float(raw: pd.Series) -> pd.Series:
    s = _numbers_only(_clean_text(raw)) if _is_text(raw) else raw
    out = pd.to_numeric(s, errors="coerce").astype("float64")
    if _is_text(raw):
        out = _exact_floats(s, out)
    # "inf" (text, or a Parquet double) is no amount a model or a range check can use: it
    # does not parse, so it is counted and shown like any other unparseable value.
    return out.where(~np.isinf(out.to_numpy()))


def _exact_floats(s: pd.Series, parsed: pd.Series) -> pd.Series:
    """`parsed` with the text values it holds read again exactly.

    pandas' fast text parser is one unit in the last place off on about a third of the
    17-digit decimals Python and pandas write (0.7096640290187283 and the like), so a
    CSV round trip changed them; numpy reads text exactly, and quickly. pandas still
    decides what parses, so "1_000" stays invalid."""
    values = parsed.to_numpy(dtype="float64", copy=True)
    again = ~np.isnan(values)
    if again.any() and ptypes.infer_dtype(s, skipna=True) != "string":
        again &= _text_mask(s)
    # A text pandas reads and numpy does not (none known) keeps pandas' value.
    with contextlib.suppress(ValueError, TypeError):
        if again.any():
            values[again] = s.to_numpy(dtype=object)[again].astype("float64")
    return pd.Series(values, index=parsed.index)


def _to_bool(raw: pd.Series) -> pd.Series:
    if ptypes.is_bool_dtype(raw):
        return raw.astype("boolean")
    s = _clean_text(raw) if _is_text(raw) else raw

    def parse(v: Any) -> bool | None:
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, str):
            low = v.lower()
            return True if low in _TRUE else False if low in _FALSE else None
        if isinstance(v, int | float | np.number) and v in (0, 1):
            return bool(v)
        return None

    try:
        mapping = {v: parse(v) for v in s.dropna().unique()}
    except TypeError:  # unhashable values (nested JSON): one at a time
        return pd.Series([parse(v) for v in s], index=s.index, dtype="boolean")
    return s.map(mapping).astype("boolean")


def _as_text(v: Any) -> Any:
    if isinstance(v, str):
        return v
    if is_nested(v):  # nested JSON or Parquet: its canonical text, as ingest keeps it
        return json_text(v)
    return None if pd.isna(v) else str(v)


def _to_string(raw: pd.Series) -> pd.Series:
    s = raw.astype(object)
    if ptypes.infer_dtype(s, skipna=True) not in ("string", "empty"):
        s = s.map(_as_text)
    # One null marker (None) so CSV's NaN and Parquet's None hash the same.
    return s.where(s.notna() & (s != ""), None)


def _utc(values: pd.Series) -> pd.Series:
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _local_to_utc(naive: pd.Series, zone: str) -> pd.Series:
    """Naive times as `zone`'s local time, in UTC; one the clocks skip or repeat is NaT."""
    local = naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    return local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _to_timestamp(raw: pd.Series, zone: str | None = None) -> pd.Series:
    """ISO 8601 text (naive values in UTC, or in `zone`) and typed timestamps, in UTC."""
    if ptypes.is_datetime64_any_dtype(raw):
        return _utc(raw)
    s = _clean_text(raw) if _is_text(raw) else raw
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    kind = ptypes.infer_dtype(s, skipna=True)
    if kind == "string":
        # pandas applies an earlier value's offset to later naive values when both
        # are mixed in one call, so naive (= UTC) and offset strings parse apart.
        text = s.dropna()
        aware = text.str.contains(_HAS_OFFSET)
        for part, naive in ((text[aware], False), (text[~aware], True)):
            if not len(part):
                continue
            if naive and zone:
                parsed = pd.to_datetime(part, errors="coerce", format="ISO8601")
                out[part.index] = _local_to_utc(parsed.astype("datetime64[ns]"), zone)
            else:
                out[part.index] = pd.to_datetime(part, utc=True, errors="coerce", format="ISO8601")
        return out
    if zone:  # text mixed with other values: the text alone is in the zone
        text_mask = _text_mask(s)
        out = _to_timestamp(s.where(~text_mask, None))
        if text_mask.any():
            out[text_mask] = _to_timestamp(s[text_mask].astype(object), zone)
        return out
    if kind in ("datetime", "datetime64", "date"):
        return _utc(pd.to_datetime(s, errors="coerce", utc=False).astype("datetime64[ns]"))

    def one(v: Any) -> Any:
        if isinstance(v, str):
            aware = bool(_HAS_OFFSET.search(v))
            ts = pd.to_datetime(v, errors="coerce", format="ISO8601", utc=aware)
            return ts if pd.isna(ts) or aware else pd.Timestamp(ts).tz_localize("UTC")
        if isinstance(v, datetime | date):
            ts = pd.Timestamp(v)
            return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return pd.NaT  # numbers are ambiguous (seconds? ms?) and are rejected

    return pd.to_datetime(s.map(one), utc=True, errors="coerce").astype("datetime64[ns, UTC]")


CONVERTERS = {  # declared type -> converter (raw column -> typed column, unparseable -> null)
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "string": _to_string,
    "timestamp": _to_timestamp,
}


def _text_mask(s: pd.Series) -> np.ndarray:
    return s.map(lambda v: isinstance(v, str)).to_numpy(bool)


def _timestamp_in_format(raw: pd.Series, pattern: str, zone: str | None = None) -> pd.Series:
    """Text parsed by a strptime pattern (naive times are UTC, or in `zone`); typed values
    as usual."""
    s = _clean_text(raw)
    text = _text_mask(s)
    if text.all():  # a text source: nothing for the typed path
        out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    else:
        out = _to_timestamp(s.where(~text, None))
    if text.any():
        part = s[text]
        if zone and "%z" not in pattern:
            naive = pd.to_datetime(part, format=pattern, errors="coerce")
            out[part.index] = _local_to_utc(naive.astype("datetime64[ns]"), zone)
        else:
            parsed = pd.to_datetime(part, format=pattern, errors="coerce", utc=True)
            out[part.index] = parsed.astype("datetime64[ns, UTC]")
    return out


_SPACES = " \u00a0\u202f"  # a space, the no-break space and the narrow one


def _number_pattern(thousands: str | None, decimal: str) -> re.Pattern[str]:
    mark = re.escape(decimal)
    whole = r"\d+"
    if thousands:
        sep = f"[{_SPACES}]" if thousands == " " else re.escape(thousands)
        whole = rf"(?:\d{{1,3}}(?:{sep}\d{{3}})+|\d+)"
    return re.compile(rf"[+-]?(?:{whole}(?:{mark}\d*)?|{mark}\d+)")


def _without_affixes(part: pd.Series, prefix: str, suffix: str) -> pd.Series:
    """`$1,234.50` -> `1,234.50` and `-$5` or `$-5` -> `-5` (one sign, before or after
    the prefix); text without the prefix and suffix becomes null."""
    pre = rf"{re.escape(prefix)}[{_SPACES}]*" if prefix else ""
    post = rf"[{_SPACES}]*{re.escape(suffix)}" if suffix else ""
    pattern = rf"^(?P<a>[+-]?)[{_SPACES}]*{pre}(?P<b>[+-]?)(?P<n>[^+-].*?){post}$"
    found = part.str.extract(pattern)
    one_sign = (found["a"] == "") | (found["b"] == "")
    return (found["a"] + found["b"] + found["n"]).where(one_sign & found["n"].notna(), None)


def _without_parentheses(part: pd.Series, prefix: str, suffix: str) -> tuple[pd.Series, np.ndarray]:
    """`(1,234.50)` -> `1,234.50`, `($5)` or `$ (5)` -> `$5`, `(18%)` -> `18%`, and where
    a value was in parentheses (negative)."""
    pre = rf"(?P<pre>{re.escape(prefix)}[{_SPACES}]*)?" if prefix else "(?P<pre>)"
    post = rf"(?P<post>[{_SPACES}]*{re.escape(suffix)})?" if suffix else "(?P<post>)"
    pattern = rf"^{pre}\([{_SPACES}]*(?P<inner>.*?)[{_SPACES}]*\){post}$"
    found = part.str.extract(pattern)
    wrapped = found["inner"].notna().to_numpy(bool)
    if not wrapped.any():
        return part, wrapped
    inner = found["pre"].fillna("") + found["inner"] + found["post"].fillna("")
    return part.where(~wrapped, inner), wrapped


def _plain_numbers(raw: pd.Series, fmt: ColumnFormat) -> pd.Series:
    """Text numbers with their prefix, suffix and separators taken out (`$1,234.5` ->
    `1234.5`); text that is not written that way becomes null, so it counts as
    unparseable."""
    thousands, decimal = fmt.thousands, fmt.decimal or "."
    s = _clean_text(raw)
    text = _text_mask(s)
    if not text.any():
        return s
    part = s[text].astype(str)
    negative = np.zeros(len(part), dtype=bool)
    if fmt.negative_parentheses:
        part, negative = _without_parentheses(part, fmt.prefix or "", fmt.suffix or "")
    if fmt.prefix or fmt.suffix:
        part = _without_affixes(part, fmt.prefix or "", fmt.suffix or "").fillna("")
    written = part.str.fullmatch(_number_pattern(thousands, decimal))
    if negative.any():  # "(-5)" says minus twice: not a way of writing a number
        written &= ~(negative & part.str.startswith(("-", "+")).to_numpy(bool))
        part = part.where(~negative, "-" + part)
    if thousands:
        spaces = thousands == " "
        part = part.str.replace(f"[{_SPACES}]" if spaces else thousands, "", regex=spaces)
    if decimal != ".":
        part = part.str.replace(decimal, ".", regex=False)
    out = s.copy()
    out[part.index] = part.where(written, None)
    return out


_UNIX_TEXT = re.compile(r"([+-]?\d{1,19})(?:\.(\d*))?")


def _exact_counts(digits: pd.Series, limit: int) -> pd.Series:
    """Integer text as exact int64 counts, those past +-`limit` dropped (to_numeric gives
    float64 or uint64 past int64: Python integers then, exact at any length)."""
    counts = pd.to_numeric(digits)
    if counts.dtype != np.int64:
        counts = pd.Series([int(v) for v in digits], index=digits.index, dtype=object)
    return counts[(counts.abs() <= limit).to_numpy(bool)].astype("int64")


def _timestamp_from_unix(raw: pd.Series, unit: str) -> pd.Series:
    """Unix time in `unit` (text or numbers) as UTC timestamps; a value past what
    nanoseconds since 1970 can hold (years 1677 to 2262), or with digits below a
    nanosecond, is not parseable."""
    scale = UNIT_NS[unit]
    limit = (2**63 - 1) // scale - 1
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")

    def place(counts: pd.Series, below: np.ndarray | int = 0) -> None:
        """Whole `unit` counts within the limit (`below`: nanoseconds under one) into `out`."""
        out[counts.index] = pd.to_datetime(counts.to_numpy() * scale + below, unit="ns", utc=True)

    if ptypes.is_bool_dtype(raw):
        return out
    if ptypes.is_integer_dtype(raw):
        counts = raw.dropna().astype("int64")
        place(counts[(counts.abs() <= limit).to_numpy(bool)])
        return out
    if ptypes.is_float_dtype(raw):
        # A float has no exact digits to keep: nanoseconds rounded.
        ns = raw.astype("float64") * scale
        fits = ns.notna() & (ns.abs() < 2**63 - 1024)
        out[fits] = pd.to_datetime(ns[fits].round().astype("int64"), unit="ns", utc=True)
        return out
    s = _clean_text(raw) if _is_text(raw) else raw
    text = s[s.notna()].astype(str)  # a JSON float's repr keeps its digits
    # Whole counts (most Unix time) in one go; the regular expression for the rest.
    plain = text.str.fullmatch(r"[+-]?\d{1,19}").to_numpy(bool)
    if plain.any():
        place(_exact_counts(text[plain], limit))
    rest = text[~plain]
    if rest.empty:
        return out
    parts = rest.str.extract(f"^{_UNIX_TEXT.pattern}$")
    digits = len(str(scale)) - 1  # fraction digits a nanosecond holds in this unit
    fraction = parts[1].fillna("")
    ok = parts[0].notna() & (fraction.str.rstrip("0").str.len() <= digits)
    counts = _exact_counts(parts[0][ok], limit)
    if counts.empty:
        return out
    sub = fraction[counts.index].str.ljust(max(digits, 1), "0").str[:digits]
    below = pd.to_numeric(sub, errors="coerce").fillna(0).astype("int64").to_numpy()
    negative = rest[counts.index].str.startswith("-").to_numpy()
    place(counts, np.where(negative, -below, below))
    return out


def convert(kind: ColumnType, raw: pd.Series, fmt: ColumnFormat | None = None) -> pd.Series:
    """`raw` as `kind`, unparseable values null; `fmt` is how its text is written."""
    if fmt is not None and kind == "timestamp" and fmt.unit:
        return _timestamp_from_unix(raw, fmt.unit)
    if fmt is not None and _is_text(raw):
        if kind == "timestamp" and fmt.format:
            return _timestamp_in_format(raw, fmt.format, fmt.timezone)
        if kind == "timestamp" and fmt.timezone:
            return _to_timestamp(raw, fmt.timezone)
        if kind in ("int", "float") and fmt.given:
            raw = _plain_numbers(raw, fmt)
    return CONVERTERS[kind](raw)


def nonblank(raw: pd.Series) -> pd.Series:
    """Where the raw value is present (not null, not blank text)."""
    return (_clean_text(raw) if _is_text(raw) else raw).notna()


def unparsed(raw: pd.Series, converted: pd.Series) -> pd.Series:
    """Where a present value did not convert (`nonblank(raw) & converted.isna()`), looking
    at the raw text only where the conversion gave null."""
    null = converted.isna().to_numpy(bool)
    bad = np.zeros(len(raw), dtype=bool)
    if null.any():
        bad[null] = nonblank(raw[null]).to_numpy(bool)
    return pd.Series(bad, index=raw.index)


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def example_text(value: Any) -> str:
    """An offending value as text, cut to a readable length."""
    text = str(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def examples_of(values: pd.Series, limit: int = 5) -> list[str]:
    """The first distinct offending values, as text, cut to a readable length."""
    out: list[str] = []
    for v in values:
        text = example_text(v)
        if text not in out:
            out.append(text)
        if len(out) == limit:
            break
    return out


def show_value(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return repr(value.item() if isinstance(value, np.generic) else value)


# ---------------------------------------------------------------- shared with the Spark engine


def check_columns(columns: list[str], table_cfg: TableConfig, where: str) -> None:
    """Fail when a declared column is missing or a generated one already exists."""
    entity, ts_col = table_cfg.entity_column, table_cfg.timestamp_column
    required = list(table_cfg.columns)
    required += [c for c in (entity, ts_col) if c and c not in required]
    missing = [c for c in required if c not in columns]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        # Names only, and only ones that look like names: a wrong file's "header" is any
        # line of its content (a password file, say), which must not reach the logs.
        seen = [str(c) if _NAME.fullmatch(str(c)) else "<not a name>" for c in columns[:10]]
        found = ", ".join(seen) + (", ..." if len(columns) > 10 else "")
        if len(columns) == 1 and seen == ["<not a name>"]:
            found = "one column whose header is not a column name; is this the right file?"
        noun = "column" if len(missing) == 1 else "columns"
        verb = "is" if len(missing) == 1 else "are"
        hint = _headerless_hint([str(c) for c in columns], table_cfg)
        raise SeamlessError(
            f"{where}: required {noun} {names} {verb} missing (found: {found}){hint}."
        )
    clash = case_clash([str(c) for c in columns])
    if clash:
        raise SeamlessError(
            f"{where}: columns '{clash[0]}' and '{clash[1]}' differ only in case, and "
            f"{CASE_BLIND}; rename one in the source."
        )
    for generated, key, setting in (
        (ROW_ID, entity, "entity_column"),
        (INGESTED_AT, ts_col, "timestamp_column"),
    ):
        if key is None and generated in columns:
            raise SeamlessError(
                f"{where}: column '{generated}' is generated by ingestion but already exists; "
                f"declare it as the table's {setting}."
            )


def declared_types(table_cfg: TableConfig) -> dict[str, ColumnType]:
    """Column -> type to convert to; the event time is a timestamp whatever is declared.

    Columns tagged `pii: drop` are left out: they are removed unparsed, so none of their
    values can fail the table or reach a message."""
    types: dict[str, ColumnType] = table_cfg.stored_columns()
    if table_cfg.timestamp_column:
        types[table_cfg.timestamp_column] = "timestamp"
    return types


def declared_columns(table_cfg: TableConfig, labels: LabelsConfig | None = None) -> list[str]:
    """The columns a table names: typed ones, its keys, and (labels table) the label."""
    names = list(table_cfg.columns)
    names += [c for c in key_columns(table_cfg) if c not in names]
    if labels is not None and labels.label_column not in names:
        names.append(labels.label_column)
    return names


def key_columns(table_cfg: TableConfig) -> list[str]:
    return [c for c in (table_cfg.entity_column, table_cfg.timestamp_column) if c]


def _one(kind: ColumnType, fmt: ColumnFormat | None) -> str:
    if fmt is not None and fmt.given:
        what = "a timestamp" if kind == "timestamp" else _ONE[kind]
        return f"{what} written like {fmt.example(kind)}"
    return _ONE[kind]


def _what(kind: ColumnType, fmt: ColumnFormat | None) -> str:
    if fmt is not None and fmt.given:
        what = "timestamps" if kind == "timestamp" else _WHAT[kind]
        return f"{what} written like {fmt.example(kind)}"
    return _WHAT[kind]


def invalid_values_problem(
    where: str,
    col: str,
    kind: ColumnType,
    count: int,
    n: int,
    first_row: int,
    shown: str,
    table_cfg: TableConfig,
    strict: bool,
) -> str | None:
    """The sentence refusing `count` unparseable values in `col`, or None if tolerated.

    `first_row` counts from 1; `shown` is the first such value as `show_value` gives it.
    """
    fmt = table_cfg.formats.get(col)
    if col in key_columns(table_cfg) or strict:
        role = "key column" if col in key_columns(table_cfg) else "column"
        return (
            f"{where}: {role} '{col}' has a value in row {first_row} that is not "
            f"{_one(kind, fmt)}: {shown} ({_rows(count)} like this in all); it tolerates none."
        )
    if count > table_cfg.max_invalid_fraction * n:
        return (
            f"{where}: column '{col}' has {count} of {n} values that are not "
            f"{_what(kind, fmt)} "
            f"({count / n:.1%}, over the tolerated {table_cfg.max_invalid_fraction:.1%}); "
            f"the first is in row {first_row}: {shown}."
        )
    return None


def empty_key_problem(where: str, col: str, count: int, first_row: int) -> str:
    return (
        f"{where}: key column '{col}' is empty in {_rows(count)}, the first being row "
        f"{first_row}; every row needs its key."
    )


def duplicate_key_problem(
    where: str,
    key: dict[str, Any],
    first_row: int,
    second_row: int,
    total: int,
    withheld: Collection[str] = (),
) -> str:
    """`withheld`: key columns tagged pii, whose values the sentence does not show."""
    shown = ", ".join(f"{c}={WITHHELD if c in withheld else show_value(v)}" for c, v in key.items())
    return (
        f"{where}: duplicate key {shown} in rows {first_row} and {second_row} "
        f"({total} rows share their key with another row), but each "
        f"({', '.join(key)}) must be unique."
    )


def warn_invalid(where: str, col: str, kind: str, count: int, examples: list[str]) -> None:
    log.warning(
        "%s: %d non-%s values in '%s' set to null (e.g. %s)",
        where,
        count,
        kind,
        col,
        ", ".join(examples),
    )


# ---------------------------------------------------------------- public


def normalize_with_report(
    df: pd.DataFrame,
    table_cfg: TableConfig,
    table_name: str,
    origin: str,
    ingested_at: datetime,
    strict_columns: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, NormalizeReport]:
    """`normalize_table`, also returning what was tolerated and generated.

    `strict_columns` (e.g. the label column) tolerate no invalid value, like the keys.
    """
    where = f"Table '{table_name}' ({origin})"
    df = df.reset_index(drop=True).copy()
    df.columns = [str(c) for c in df.columns]
    entity, ts_col = table_cfg.entity_column, table_cfg.timestamp_column
    report = NormalizeReport()
    check_columns(list(df.columns), table_cfg, where)

    n = len(df)
    for col, kind in declared_types(table_cfg).items():
        raw = df[col]
        converted = convert(kind, raw, table_cfg.formats.get(col))
        bad = unparsed(raw, converted)
        count = int(bad.sum())
        if count:
            first = int(np.flatnonzero(bad.to_numpy())[0])
            hide = withheld(table_cfg, col)
            problem = invalid_values_problem(
                where,
                col,
                kind,
                count,
                n,
                first + 1,
                WITHHELD if hide else show_value(raw.iloc[first]),
                table_cfg,
                col in strict_columns,
            )
            if problem:
                raise SeamlessError(problem)
            report.invalid_values[col] = count
            report.invalid_examples[col] = [WITHHELD] if hide else examples_of(raw[bad])
            warn_invalid(where, col, kind, count, report.invalid_examples[col])
        df[col] = converted

    for key_col in key_columns(table_cfg):
        nulls = df[key_col].isna().to_numpy()
        if nulls.any():
            first_row = int(np.flatnonzero(nulls)[0]) + 1
            raise SeamlessError(empty_key_problem(where, key_col, int(nulls.sum()), first_row))

    if entity:
        key_cols = key_columns(table_cfg)
        dup = df.duplicated(key_cols, keep=False).to_numpy()
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            key_vals = df.loc[first, key_cols]
            same = (df[key_cols] == key_vals).all(axis=1).to_numpy()
            second = int(np.flatnonzero(same)[1])
            key = {c: key_vals[c] for c in key_cols}
            hidden = [c for c in key_cols if withheld(table_cfg, c)]
            raise SeamlessError(
                duplicate_key_problem(where, key, first + 1, second + 1, int(dup.sum()), hidden)
            )

    generated: dict[str, Any] = {}
    if entity is None:
        generated[ROW_ID] = np.arange(n, dtype="int64")  # position in the source
    if ts_col is None:
        stamp = pd.Timestamp(ingested_at)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        generated[INGESTED_AT] = pd.Series([stamp] * n, index=df.index, dtype="datetime64[ns, UTC]")
    if generated:
        # One concat: inserting columns one by one into a wide frame whose columns were
        # just replaced makes pandas warn (and copy) about fragmentation.
        df = pd.concat([df, pd.DataFrame(generated, index=df.index)], axis=1)
        report.generated_columns += list(generated)
    return df, report


def normalize_table(
    df: pd.DataFrame,
    table_cfg: TableConfig,
    table_name: str,
    origin: str,
    ingested_at: datetime | None = None,
) -> pd.DataFrame:
    """Check and convert one raw table (see the module docstring for the dtypes).

    Fails with a `SeamlessError` naming the table, `origin` (where it came from), the
    column and the first row at fault: missing columns, non-parseable values beyond
    `max_invalid_fraction` (tolerated ones become null), bad or empty keys, duplicate
    (entity, timestamp) keys. Adds `row_id` (no entity column) and `ingested_at`
    (no timestamp column; `ingested_at`, default now, naive meaning UTC).
    """
    out, _ = normalize_with_report(
        df, table_cfg, table_name, origin, ingested_at or datetime.now(UTC)
    )
    return out
