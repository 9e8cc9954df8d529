"""Profiling: a type per column, inferred conservatively with ingest's own converters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pandas as pd
from pandas.api import types as ptypes

from components.common.config import UNIT_NS, ColumnFormat, ColumnType

# Ingest's converter and blank test: the inference must parse exactly as ingest does.
from components.ingest.normalize import convert, nonblank
from pipelines.scaffold.common import (
    BUDGET,
    INT_TEXT,
    LEADING_ZERO,
    MAX_SET,
    counted,
    n,
    plain,
    show,
)

_DATE_HINT = re.compile(
    r"\d[-/:T]\d|\d{4}-\d|\d{1,2}\.\d{1,2}\.\d{2}"  # ISO, 01/31/2024, 31.01.2024
    r"|\d[- ][A-Z][a-z]{2}[- ]\d|[A-Z][a-z]{2} \d{1,2}, \d"  # 31-Jan-2024, Jan 31, 2024
)
_DATES = (
    *("%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%m/%d/%y", "%d/%m/%y", "%d.%m.%Y", "%d.%m.%y"),
    *("%m-%d-%Y", "%d-%m-%Y", "%d-%b-%Y", "%d-%b-%y", "%d %b %Y", "%b %d, %Y"),
)
_TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
DATE_FORMATS = tuple(d + t for d in _DATES for t in _TIMES)
"""Date patterns init tries on a column that is not ISO 8601, in this order: month/day
first where both fit (US data sets are the most common such files; the note says so)."""
NUMBER_FORMATS = (
    ColumnFormat(thousands=","),
    ColumnFormat(thousands=".", decimal=","),
    ColumnFormat(decimal=","),
    ColumnFormat(thousands=" ", decimal=","),
    ColumnFormat(thousands=" "),
    ColumnFormat(thousands="'"),
)
"""How numbers with separators are written, tried in this order: `1,234.5` first."""
_SEPARATORS = re.compile("[,. '\u00a0\u202f]")
_PARENTHESES = re.compile(r"^\S{0,2}\s*\(.*\d.*\)\S?$")
"""An accounting negative: `(1,234.50)`, `($5)`, `$ (5)`, `(18%)`."""
_CURRENCY = "$€£¥₹"
"""Currency symbols init looks for before or after numbers."""
_SCREEN = 200
_TYPE_WORDS = {
    "int": "integers",
    "float": "numbers",
    "bool": "true/false values",
    "timestamp": "ISO 8601 timestamps",
}


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
    fmt: ColumnFormat | None = None
    """How the column's text is written, if not ISO 8601 or plain numbers."""

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


class _Trials:
    """Ingest's converter on one column, each (type, format) tried once."""

    def __init__(self, raw: pd.Series, present: pd.Series) -> None:
        self.raw, self.present = raw, present
        self._converted: dict[str, pd.Series] = {}

    def converted(self, kind: ColumnType, fmt: ColumnFormat | None = None) -> pd.Series:
        key = f"{kind} {fmt!r}"
        if key not in self._converted:
            self._converted[key] = convert(kind, self.raw, fmt)
        return self._converted[key]

    def failed(self, kind: ColumnType, fmt: ColumnFormat | None = None) -> pd.Series:
        """Present values that do not parse as `kind` written as `fmt` says."""
        return self.present & self.converted(kind, fmt).isna()


def _fits(failed: int, present: int) -> bool:
    return failed <= BUDGET * present


EVENT_NAME = re.compile(
    r"(?i)(timestamp|event_?time|event_?date|datetime|as_?of|^ts$|_ts$|_at$|^date$|^time$"
    r"|epoch|unix|_time$)"
)
"""Column names that say the column holds when each row happened."""
_UNIX_FROM = datetime(1990, 1, 1, tzinfo=UTC).timestamp()
_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _unix_time(ints: pd.Series) -> ColumnFormat | None:
    """The unit in which every value is Unix time from 1990 to a year from now, if one is
    (the units' ranges do not overlap); a duration or an amount does not span that."""
    if not len(ints):
        return None
    low, high = float(ints.min()), float(ints.max())
    until = datetime.now(UTC).timestamp() + 366 * 86400
    for unit, ns in UNIT_NS.items():
        per_second = UNIT_NS["s"] / ns
        if _UNIX_FROM * per_second <= low and high <= until * per_second:
            return ColumnFormat(unit=cast(Any, unit))
    return None


def event_time_why(p: ColumnProfile) -> str:
    """Why the event-time column is typed so: with its unit when it holds Unix time."""
    if p.fmt is not None and p.fmt.unit:
        return f"event time: Unix time in {_UNITS[p.fmt.unit]}"
    return "event time"


def infer_column(name: str, raw: pd.Series, event_time: bool = False) -> ColumnProfile:
    """The column's type, conservatively: a type is taken when at most 1% of the present
    values fail to parse as it (they become null at ingest, and are listed); digits with
    leading zeros stay text; a column of decimals is never cut to integers."""
    raw = raw.reset_index(drop=True)
    rows = len(raw)
    present_mask = pd.Series(nonblank(raw).to_numpy(bool))
    present = int(present_mask.sum())
    trials = _Trials(raw, present_mask)
    kind: ColumnType = "string"
    failed = pd.Series(False, index=raw.index)
    why = ""
    fmt: ColumnFormat | None = None
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
        kind, failed, why, fmt = _infer_objects(trials, present)
    unix = None
    if kind == "int" and (event_time or EVENT_NAME.search(name)):
        unix = _unix_time(trials.converted("int").dropna())
    if unix is not None and unix.unit is not None:
        kind, fmt, failed = "timestamp", unix, trials.failed("timestamp", unix)
        why = (
            f"inferred timestamp: Unix time in {_UNITS[unix.unit]} (named like a time, "
            "every value from 1990 to a year from now)"
        )
    converted = trials.converted(kind, fmt)
    ok = converted[~converted.isna()] if kind != "string" else converted.dropna()
    n_failed = int(failed.sum())
    if n_failed:
        verb = "does not and becomes" if n_failed == 1 else "do not and become"
        why += f"; {n(n_failed)} {verb} null at ingest (e.g. {show(_examples(raw[failed]))})"
    empty = rows - present
    if empty:
        why += f"; {n(empty)} empty"
    distinct = int(ok.nunique())
    top: tuple[tuple[Any, int], ...] = ()
    if distinct <= MAX_SET:
        counts = ok.value_counts(sort=True)
        top = tuple((plain(v), int(c)) for v, c in counts.items())
    minimum = maximum = None
    if kind in ("int", "float", "timestamp") and len(ok):
        minimum, maximum = plain(ok.min()), plain(ok.max())
    if kind in ("int", "float"):
        why += _sentinel_note(ok)
    if kind == "string" and present:
        why = why.replace("string: text", f"string: {counted(distinct, 'distinct value')}", 1)
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
        fmt=fmt,
    )


SENTINELS = (-1, -9, -99, -999, -9999, 99, 999, 9999, 99999, 999999)
"""Numbers data sets use as codes for 'none' or 'unknown' (bank marketing's pdays = -1
or 999, survey codes 99/999)."""
SENTINEL_SHARE = 0.05


def _sentinel_note(values: pd.Series) -> str:
    """A sentence when the smallest or largest value is a typical code for 'none', held by
    at least 5% of the rows and set apart from every other value (a negative code below
    values that are all >= 0, or a 9s code over twice the next largest value). Init only
    says so: whether it means 'none' is the user's to decide."""
    if len(values) < 20:
        return ""
    for code in (values.min(), values.max()):
        if code not in SENTINELS:
            continue
        hits = values == code
        rest = values[~hits]
        if hits.mean() < SENTINEL_SHARE or rest.empty:
            continue
        apart = rest.min() >= 0 if code < 0 else rest.max() * 2 <= code
        if apart:
            share = f"{100 * hits.mean():.0f}%"
            low, high = (f"{float(v):.4g}" for v in (rest.min(), rest.max()))
            return (
                f"; {float(code):g} in {share} of the rows, set apart from the other values "
                f"({low}..{high}): a code for 'none' rather than "
                "a quantity? The model, ranges and drift treat it as a number; map it "
                "upstream (a flag column, or empty) if it is a code"
            )
    return ""


Inferred = tuple[ColumnType, pd.Series, str, ColumnFormat | None]


def _infer_objects(trials: _Trials, present: int) -> Inferred:
    """Type of an object column (CSV text, or mixed values from a database driver)."""
    raw = trials.raw
    values = raw[trials.present]
    all_text = ptypes.infer_dtype(values, skipna=True) == "string"
    text = values.map(str).str.strip()
    lowered = set(text.str.lower().unique()) if text.nunique() <= 4 else set()
    if lowered and lowered <= {"true", "false"}:
        failed = trials.failed("bool")
        return "bool", failed, f"inferred bool: {n(present)} values are true/false", None
    float_failed = trials.failed("float")
    n_float = int(float_failed.sum())
    if n_float < present and _fits(n_float, present):
        int_failed = trials.failed("int")
        n_int = int(int_failed.sum())
        zeros = text[text.str.fullmatch(LEADING_ZERO)] if all_text else text.iloc[:0]
        if len(zeros):
            return (
                "string",
                pd.Series(False, index=raw.index),
                f"kept as string: values such as {zeros.iloc[0]!r} have leading zeros that a "
                "number would drop",
                None,
            )
        lost = text[(int_failed & ~float_failed)[text.index]]
        if len(lost) and all_text and lost.str.fullmatch(INT_TEXT).all():
            return (
                "string",
                pd.Series(False, index=raw.index),
                f"kept as string: values such as {lost.iloc[0]!r} are integers too long for a "
                "64-bit integer (a float would round them)",
                None,
            )
        # Integers only if no number would be lost and none is written as a decimal ("40.0"):
        # the next file's "40.5" would then be a coerced value.
        numbers = text[~float_failed[text.index]]
        written_as_int = not all_text or bool(numbers.str.fullmatch(INT_TEXT).all())
        if n_int == n_float and written_as_int:
            return "int", int_failed, _parse_sentence("int", present - n_int, present), None
        return "float", float_failed, _parse_sentence("float", present - n_float, present), None
    affix = _number_affix(text) if all_text else None
    written_out = all_text and (
        text.str.contains(_SEPARATORS).any() or text.str.contains(_PARENTHESES).any()
    )
    if affix is not None or written_out:
        written = _written_number(trials, present, text, affix)
        if written is not None:
            return written
    if text.str.contains(_DATE_HINT).any():
        ts_failed = trials.failed("timestamp")
        n_ts = int(ts_failed.sum())
        if n_ts < present and _fits(n_ts, present):
            sentence = _parse_sentence("timestamp", present - n_ts, present)
            return "timestamp", ts_failed, sentence, None
        if all_text:
            dated = _written_date(trials, present, text)
            if dated is not None:
                return dated
    return "string", pd.Series(False, index=raw.index), _string_sentence(n_float, present), None


def _number_affix(text: pd.Series) -> ColumnFormat | None:
    """The currency symbol most values start with, or the percent sign or currency
    symbol they end with (`$1,234.50`, `18%`, `12,50 €`), judged on the first values."""
    head = text.head(_SCREEN)
    lead = head.str.extract(rf"^[+-]?\(?\s*([{_CURRENCY}])", expand=False)
    trail = head.str.extract(rf"\d\s*([%{_CURRENCY}])\)?$", expand=False)
    prefix, suffix = (
        str(hits.mode().iloc[0]) if hits.notna().mean() > 0.5 else None for hits in (lead, trail)
    )
    return ColumnFormat(prefix=prefix, suffix=suffix) if prefix or suffix else None


def _written_number(
    trials: _Trials, present: int, text: pd.Series, affix: ColumnFormat | None = None
) -> Inferred | None:
    """Numbers written with separators (`1,234.5`, `1.234,5`, `3,5`) or around a symbol
    (`$1,234.50`, `18%`): the first of NUMBER_FORMATS under which the column parses, as
    int when none has a decimal part."""
    formats: tuple[ColumnFormat, ...] = NUMBER_FORMATS
    around: dict[str, object] = {}
    if affix is not None:
        around = {"prefix": affix.prefix, "suffix": affix.suffix}
    if text.str.contains(_PARENTHESES).any():
        around["negative_parentheses"] = True
    if around:
        formats = tuple(f.model_copy(update=around) for f in NUMBER_FORMATS)
    for fmt in formats:
        failed = trials.failed("float", fmt)
        n_failed = int(failed.sum())
        if n_failed == present or not _fits(n_failed, present):
            continue
        parsed = text[~failed[text.index]]
        grouped = parsed.str.contains(_separator(fmt.thousands)) if fmt.thousands else None
        if grouped is not None and not grouped.any():  # no value has a separator
            fmt = fmt.model_copy(update={"thousands": None})
        if fmt.thousands is not None or affix is not None:
            whole = fmt.model_copy(update={"decimal": None})
            int_failed = trials.failed("int", whole)
            if (
                int(int_failed.sum()) == n_failed
                and not parsed.str.contains(re.escape(fmt.decimal or "."), regex=True).any()
            ):
                why = _format_sentence("int", present, n_failed, whole) + _grouping_note(
                    whole, parsed
                )
                return "int", int_failed, why, whole
        why = _format_sentence("float", present, n_failed, fmt) + _grouping_note(fmt, parsed)
        return "float", failed, why, fmt
    return None


def _separator(thousands: str) -> str:
    return "[ \u00a0\u202f]" if thousands == " " else re.escape(thousands)


def _grouping_note(fmt: ColumnFormat, parsed: pd.Series) -> str:
    """When every value could also be read with the comma as the decimal mark (`1,234`
    only: no `1,234,567` and no `1,234.5`), which reading was taken."""
    if fmt.thousands != "," or fmt.decimal is not None:
        return ""
    if parsed.str.contains(".", regex=False).any() or parsed.str.count(",").max() > 1:
        return ""
    return (
        "; no value shows whether ',' separates thousands or decimals, so thousands is "
        "assumed (1,234 is 1234); if ',' is the decimal mark, write {type: float, decimal: ','}"
    )


def _written_date(trials: _Trials, present: int, text: pd.Series) -> Inferred | None:
    """Dates not in ISO 8601 (`01/31/2024`, `31.01.2024 13:45`): the first of DATE_FORMATS
    under which the column parses. Month and day are told apart by a value over 12; when
    none is, the note says which was assumed."""
    sample = text.head(_SCREEN)
    for pattern in DATE_FORMATS:
        screened = pd.to_datetime(sample, format=pattern, errors="coerce")
        if screened.notna().sum() < 0.9 * len(sample):
            continue
        fmt = ColumnFormat(format=pattern)
        failed = trials.failed("timestamp", fmt)
        n_failed = int(failed.sum())
        if n_failed == present or not _fits(n_failed, present):
            continue
        why = _format_sentence("timestamp", present, n_failed, fmt)
        swapped = _day_first(pattern)
        if swapped is not None:
            other = trials.failed("timestamp", ColumnFormat(format=swapped))
            if int(other.sum()) <= n_failed:
                why += (
                    "; no value tells month from day (none above 12 in either place), so "
                    f'month first is assumed: write format: "{swapped}" if day comes first'
                )
        return "timestamp", failed, why, fmt
    return None


def _day_first(pattern: str) -> str | None:
    """The day-first twin of a month-first pattern (`%m/%d` -> `%d/%m`), else None."""
    for sep in "/-":
        month_first = f"%m{sep}%d"
        if month_first in pattern:
            return pattern.replace(month_first, f"%d{sep}%m")
    return None


def _format_sentence(kind: ColumnType, present: int, failed: int, fmt: ColumnFormat) -> str:
    keys = {k: v for k, v in fmt.model_dump().items() if v is not None and v is not False}
    how = ", ".join(
        f'format: "{v}"' if k == "format" else f"{k}: true" if v is True else f"{k}: {v!r}"
        for k, v in keys.items()
    )
    words = "timestamps" if kind == "timestamp" else _TYPE_WORDS[kind]
    return (
        f"inferred {kind}: {n(present - failed)} of {n(present)} non-null values parse as "
        f"{words} written like {fmt.example(kind)} ({how})"
    )


def _parse_sentence(kind: str, parsed: int, present: int) -> str:
    words = _TYPE_WORDS[kind]
    return f"inferred {kind}: {n(parsed)} of {n(present)} non-null values parse as {words}"


def _string_sentence(not_numbers: int, present: int) -> str:
    numbers = present - not_numbers
    if numbers and not_numbers:
        return (
            f"string: {n(numbers)} of {n(present)} non-null values are numbers, too few "
            f"for a numeric type (at most {BUDGET:.0%} may fail to parse)"
        )
    return "string: text"


def profile_table(df: pd.DataFrame, event_time: str | None = None) -> dict[str, ColumnProfile]:
    """A profile per column, in the table's order; `event_time` (--timestamp) is read as
    Unix time too when its integers fit, whatever its name."""
    return {str(c): infer_column(str(c), df[c], str(c) == event_time) for c in df.columns}
