"""Keys: the entity and event-time columns (`plan_keys`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from components.common.config import INGESTED_AT, ROW_ID, ColumnType
from components.common.errors import SeamlessError

# Ingest's converters and blank test: the inference must parse exactly as ingest does.
from components.ingest.normalize import CONVERTERS, convert, nonblank
from pipelines.scaffold.common import INT_TEXT, LEADING_ZERO, plain, rows, show
from pipelines.scaffold.profile import EVENT_NAME, ColumnProfile

_ID_LOWER = re.compile(r"^(id|uuid|guid|key)$|[_\-\s](id|key)$|^(id|key)[_\-\s]")
_ID_CAMEL = re.compile(r"[a-z0-9](ID|Id)$")
# All lowercase and run together (passengerid, customerid): only after a word that names
# who or what a row is about, so that paid, valid or grid are not taken for ids.
_ID_JOINED = re.compile(
    r"^(customer|client|user|account|member|passenger|patient|person|employee|student|"
    r"subscriber|household|applicant|application|order|transaction|tx|txn|session|device|"
    r"product|item|loan|policy|claim|contract|invoice|booking|ticket|case|record|sample|"
    r"subject|sensor|machine|store|shop|merchant|vendor|company|player|visitor|host)(id|key)$"
)


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
            f"{where}: entity column '{name}' is empty in {rows(int(missing.sum()))} (the "
            f"first is row {int(np.flatnonzero(missing)[0]) + 1}); every row needs its key."
        )
    if ptypes.is_integer_dtype(raw.dtype):
        return "int"
    text = raw.map(str).str.strip()
    if text.str.fullmatch(INT_TEXT).all() and not text.str.fullmatch(LEADING_ZERO).any():
        return "int" if not CONVERTERS["int"](raw).isna().any() else "string"
    return "string"


def _times(df: pd.DataFrame, profiles: dict[str, ColumnProfile], column: str) -> pd.Series:
    """The column's event times as ingest reads them, with the format init found."""
    profile = profiles.get(column)
    fmt = profile.fmt if profile is not None and profile.kind == "timestamp" else None
    return convert("timestamp", df[column], fmt)


def _repeating_ids(
    profiles: dict[str, ColumnProfile], df: pd.DataFrame, label: str, timestamp: str | None
) -> list[str]:
    """Id-named columns passed over as the entity because they repeat: an event table's id
    (one row per event). With an event time, only ids whose (id, time) pairs are all
    distinct, so passing one as --entity does not end in a duplicate-key error."""
    times = _times(df, profiles, timestamp) if timestamp else None
    return [
        p.name
        for p in profiles.values()
        if p.name not in (label, timestamp)
        and p.kind in ("int", "string")
        and p.parsed == p.rows
        and not p.unique
        and _id_like(p.name)
        and (times is None or not pd.DataFrame({"id": df[p.name], "t": times}).duplicated().any())
    ]


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
                f"(columns: {show(list(df.columns), 12)})."
            )
        if col is not None and col == label:
            raise SeamlessError(f"{flag} '{col}' is the label column; choose another column.")
    if entity is not None and entity == timestamp:
        raise SeamlessError(f"--entity and --timestamp both name '{entity}'; they must differ.")

    if timestamp is not None:
        raw = df[timestamp]
        converted = _times(df, profiles, timestamp)
        bad = (~nonblank(raw) | converted.isna()).to_numpy(bool)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            profile = profiles.get(timestamp)
            fmt = profile.fmt if profile is not None else None
            what = (
                f'timestamps written like {fmt.example("timestamp")} (format: "{fmt.format}")'
                if fmt is not None and fmt.format
                else "timestamps init reads (ISO 8601, or dates such as 01/31/2024)"
            )
            raise SeamlessError(
                f"{where}: timestamp column '{timestamp}' has {rows(int(bad.sum()))} that are "
                f"empty or not {what}, the first being row {first + 1} "
                f"({plain(raw.iloc[first])!r}); the event time tolerates none."
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
                f"time ('{INGESTED_AT}'), and the holdout is a random sample of the rows, "
                "stratified by class (model.holdout_split)."
            )
        others = [
            p.name
            for p in profiles.values()
            if p.kind == "timestamp" and p.name not in (timestamp, label, entity)
        ]
        if others:
            notes.append(
                f"{show(others)} also hold{'s' if len(others) == 1 else ''} timestamps; "
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
            repeated = _repeating_ids(profiles, df, label, timestamp)
            if repeated:
                also = "" if timestamp else " and --timestamp COLUMN"
                notes.append(
                    f"'{repeated[0]}' is named like an id but repeats; if rows are its events "
                    f"over time, pass --entity {repeated[0]}{also}."
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
            frame[timestamp] = _times(df, profiles, timestamp)
        dup = frame.duplicated(keep=False).to_numpy(bool)
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            what = f"({', '.join(keys)})" if timestamp else f"'{entity}'"
            raise SeamlessError(
                f"{where}: {rows(int(dup.sum()))} share their {what} with another row (the first "
                f"is row {first + 1}, {entity}={plain(df[entity].iloc[first])!r}); each row "
                f"needs its own key{'' if timestamp else ': pass --timestamp if rows are events'}."
            )
    oldest = None
    if timestamp is not None:
        oldest = pd.Timestamp(_times(df, profiles, timestamp).min()).to_pydatetime()
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
        and EVENT_NAME.search(p.name)
    ]
    return fits[0] if len(fits) == 1 else None


def _id_like(name: str) -> bool:
    """Named like an identifier: id, customer_id, customerID, passengerid, key, uuid."""
    lower = name.lower()
    return bool(_ID_LOWER.search(lower) or _ID_CAMEL.search(name) or _ID_JOINED.match(lower))


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
