"""The event format of the feature stream, and its check: one sentence per bad event.

An event is one Redis Streams entry whose field `event` holds a JSON object:

    {"event_id": "txn-81723", "view": "transaction_aggregates", "customer_id": 42,
     "event_timestamp": "2026-12-06T10:15:00Z", "txn_count_30d": 3, ...}

- `event_id`: the producer's id, unique per event; a second event with the same id is a
  duplicate (a producer retry), never counted twice.
- `view`: a feature view of the config; the event carries every feature of that view
  (a row of the view is whole: a missing feature would otherwise become a null online).
- the entity key under its own name (the config's entity column), of the declared type.
- `event_timestamp`: ISO 8601 with a time zone, or seconds since the epoch (UTC); not
  more than `max_future_s` ahead of the consumer's clock (a future value would shadow
  every real one until then).
Feature values have their declared types (an int feature takes a JSON integer, a float
one a number, a string one a string, a bool one true/false); null is a missing value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from components.common.config import ColumnType, SeamlessConfig

OUTCOMES = ("written", "late", "duplicate", "malformed")
"""What happens to an event (the consumer's counters, its Prometheus label values)."""

EVENT_FIELD = "event"
"""The stream entry's field holding the event's JSON."""
EVENT_ID = "event_id"
VIEW = "view"
EVENT_TIME = "event_timestamp"
MAX_EVENT_BYTES = 64 * 1024
"""An event is one entity's row of one view; anything larger is refused unread."""


class BadEvent(ValueError):
    """An event that cannot be pushed; its message is one sentence naming the field."""


@dataclass(frozen=True)
class Event:
    """A checked event, ready to push."""

    stream_id: str
    event_id: str
    view: str
    entity: Any
    event_time: datetime
    values: dict[str, Any]


@dataclass(frozen=True)
class Schema:
    """What the config says an event may hold, taken from it once."""

    key: str
    key_type: ColumnType
    views: dict[str, dict[str, ColumnType]]  # view -> feature -> declared type

    @classmethod
    def of(cls, config: SeamlessConfig) -> Schema:
        views = {
            v.name: {f: config.tables[v.table].columns[f] for f in v.features}
            for v in config.features.views
        }
        return cls(key=config.entity_key(), key_type=config.entity_type(), views=views)


def parse(
    stream_id: str, fields: dict[str, str], schema: Schema, now: datetime, max_future_s: float
) -> Event:
    """The entry as an Event, or BadEvent naming the field at fault."""
    raw = fields.get(EVENT_FIELD)
    if raw is None:
        raise BadEvent(f"entry {stream_id} has no field '{EVENT_FIELD}' holding the event JSON")
    if len(raw) > MAX_EVENT_BYTES:
        raise BadEvent(f"field '{EVENT_FIELD}' is {len(raw)} bytes, over {MAX_EVENT_BYTES}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"field '{EVENT_FIELD}' is not JSON ({exc.msg} at {exc.pos})") from None
    except ValueError:  # e.g. a number too long to convert
        raise BadEvent(f"field '{EVENT_FIELD}' is not usable JSON") from None
    if not isinstance(data, dict):
        raise BadEvent(f"field '{EVENT_FIELD}' is JSON but not an object")
    event_id = data.get(EVENT_ID)
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 200:
        raise BadEvent(f"'{EVENT_ID}' must be a non-empty string of at most 200 characters")
    view = data.get(VIEW)
    if view not in schema.views:
        raise BadEvent(f"'{VIEW}' {_show(view)} is not a feature view ({sorted(schema.views)})")
    features = schema.views[view]
    if schema.key not in data or data[schema.key] is None:
        raise BadEvent(f"the entity key '{schema.key}' is missing")
    entity = _typed(schema.key, data[schema.key], schema.key_type)
    event_time = _timestamp(data.get(EVENT_TIME), now, max_future_s)
    known = {EVENT_ID, VIEW, EVENT_TIME, schema.key, *features}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise BadEvent(f"'{unknown[0]}' is not a feature of view '{view}' ({list(features)})")
    missing = [f for f in features if f not in data]
    if missing:
        raise BadEvent(f"feature '{missing[0]}' of view '{view}' is missing (null is allowed)")
    values = {f: _typed(f, data[f], t) for f, t in features.items()}
    return Event(stream_id, event_id, view, entity, event_time, values)


def _show(value: Any) -> str:
    return repr(value)[:60]


def _typed(name: str, value: Any, kind: ColumnType) -> Any:
    """The value if it has the declared type (null passes for features), else BadEvent."""
    if value is None:
        return None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value),
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "timestamp": isinstance(value, str),
    }[kind]
    if kind == "int" and ok and not -(2**63) <= value < 2**63:
        ok = False
    if not ok:
        raise BadEvent(f"'{name}' must be {kind}, got {type(value).__name__} {_show(value)}")
    if kind == "float":
        return float(value)
    if kind == "timestamp":
        return _timestamp(value, None, 0, name)
    return value


def _timestamp(
    value: Any, now: datetime | None, max_future_s: float, name: str = EVENT_TIME
) -> datetime:
    """UTC datetime from ISO 8601 with a zone or epoch seconds; BadEvent otherwise."""
    if value is None:
        raise BadEvent(f"'{name}' is missing")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 <= value < 32503680000:  # before year 3000
            raise BadEvent(f"'{name}' {_show(value)} is not a time in seconds since 1970")
        ts = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadEvent(f"'{name}' {_show(value)} is not an ISO 8601 time") from None
        if ts.tzinfo is None:
            raise BadEvent(f"'{name}' {_show(value)} has no time zone (write Z or +00:00)")
        ts = ts.astimezone(UTC)
    else:
        raise BadEvent(f"'{name}' must be an ISO 8601 string or epoch seconds, got {_show(value)}")
    if now is not None and (ts - now).total_seconds() > max_future_s:
        raise BadEvent(
            f"'{name}' {ts.isoformat()} is more than {max_future_s:g} s after the "
            f"consumer's clock ({now.isoformat(timespec='seconds')})"
        )
    return ts


def encode(event: dict[str, Any]) -> dict[str, str]:
    """The stream entry fields for an event dict (what producers XADD)."""
    return {EVENT_FIELD: json.dumps(event, separators=(",", ":"), default=str)}
