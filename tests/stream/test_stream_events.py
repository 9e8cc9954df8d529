"""The event check: each malformed event is refused with one sentence naming its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from components.stream.events import BadEvent, Schema, encode, parse
from tests.stream.world import STREAM_CONFIG, event

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WHEN = "2026-12-06T11:59:00Z"


def check(raw: dict | str) -> object:
    fields = {"event": raw if isinstance(raw, str) else json.dumps(raw)}
    return parse("5-0", fields, Schema.of(STREAM_CONFIG()), NOW, 300)


def test_a_good_event_is_typed() -> None:
    e = check(event("e1", 7, "2026-12-06T12:00:00+01:00", score=3, tier=None))
    assert e.entity == 7 and e.values == {"score": 3.0, "tier": None}  # type: ignore[attr-defined]
    assert e.event_time == datetime(2026, 12, 6, 11, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert check(event("e2", 7, NOW.timestamp())).event_time == NOW  # type: ignore[attr-defined]
    assert json.loads(encode({"a": 1})["event"]) == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("not json", "'event' is not JSON"),
        ("[1]", "not an object"),
        ({k: v for k, v in event("e", 1, WHEN).items() if k != "customer_id"}, "'customer_id'"),
        (event("e", "seven", WHEN), "'customer_id' must be int"),
        (event("e", True, WHEN), "'customer_id' must be int"),
        (event("e", 1, WHEN, score="high"), "'score' must be float"),
        (event("e", 1, WHEN, score=float("nan")), "'score' must be float"),
        (event("e", 1, WHEN, tier=3), "'tier' must be string"),
        (event("e", 1, WHEN, colour="red"), "'colour' is not a feature of view 'facts_view'"),
        ({**event("e", 1, WHEN), "view": "nope"}, "'view' 'nope' is not a feature view"),
        ({k: v for k, v in event("e", 1, WHEN).items() if k != "tier"}, "feature 'tier'"),
        (event("", 1, WHEN), "'event_id'"),
        (event("e", 1, "yesterday"), "'event_timestamp' 'yesterday' is not an ISO 8601 time"),
        (event("e", 1, "2026-12-06T11:00:00"), "has no time zone"),
        (event("e", 1, "2026-12-06T13:00:00Z"), "more than 300 s after the consumer's clock"),
        (event("e", 1, -5), "not a time in seconds since 1970"),
        ({k: v for k, v in event("e", 1, WHEN).items() if k != "event_timestamp"},
         "'event_timestamp' is missing"),
    ],
)  # fmt: skip
def test_malformed_events_name_the_field(raw: dict | str, names: str) -> None:
    with pytest.raises(BadEvent) as err:
        check(raw)
    message = str(err.value)
    assert names in message, message
    assert "\n" not in message and len(message) < 300


def test_an_entry_without_the_event_field() -> None:
    with pytest.raises(BadEvent, match="no field 'event'"):
        parse("5-0", {"data": "{}"}, Schema.of(STREAM_CONFIG()), NOW, 300)
