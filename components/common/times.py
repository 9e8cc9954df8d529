"""Reading timestamps the package wrote or was given as ISO 8601 text."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_utc(value: str | None) -> datetime | None:
    """`value` as an aware datetime (a naive one is read as UTC); None when empty or unreadable."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
