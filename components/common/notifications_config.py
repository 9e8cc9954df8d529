"""`NotificationsConfig`: who hears about Seamless' own events (config schema, shared: the
config loader in common/config.py and governance/notify.py both read it).

Meant to sit under an optional `notifications:` key of the use-case config; like every
Seamless config model it forbids unknown keys and uses strict types.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.common.strict import StrictModel as _Strict

EventKind = Literal["promotion", "rejection", "rollback", "drift", "validation_failure"]
EVENT_KINDS: tuple[EventKind, ...] = (
    "promotion",
    "rejection",
    "rollback",
    "drift",
    "validation_failure",
)
NOTIFICATIONS_DIR_ENV = "SEAMLESS_NOTIFICATIONS_DIR"
"""A folder of files named after `url_env` (a mounted Secret): where a URL not in the
environment is read."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ReceiverConfig(_Strict):
    """One place events are sent: a generic JSON webhook or a Slack-compatible incoming
    webhook (Slack, Mattermost, Rocket.Chat, Teams' Slack connector)."""

    name: str = Field(min_length=1)
    """Shown in the console summary and the dead-letter file."""
    kind: Literal["webhook", "slack"] = "webhook"
    """`webhook`: the event as JSON; `slack`: `{"text": ...}`, one line per event."""
    url_env: str
    """Environment variable holding the URL (on the cluster, a key of a Secret): the URL
    carries the receiver's credentials, so it never sits in the config file."""
    events: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS))
    """Events this receiver gets; default all: promotion, rejection, rollback, drift,
    validation_failure."""

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: list[EventKind]) -> list[EventKind]:
        if not value:
            raise ValueError("a receiver needs at least one event (or leave `events` out)")
        return value


class NotificationsConfig(_Strict):
    """Webhooks for promotions, gate rejections, rollbacks, drift verdicts and failed
    validations. Delivery never fails a pipeline step: each event is tried `retries` + 1
    times with doubling backoff, then appended to the dead-letter file
    (`seamless notifications replay` sends it again)."""

    receivers: list[ReceiverConfig] = Field(default_factory=list)
    """Where events go; empty: nothing is sent."""
    dashboard_url: str | None = None
    """Base URL of the dashboard (`seamless ui`); events then carry a link to their model
    version or dataset under it. null: no link."""
    timeout_s: float = Field(5.0, gt=0, le=60)
    """Per attempt: connect and read."""
    retries: int = Field(2, ge=0, le=10)
    """Attempts after the first; a 4xx other than 408/429 is not retried (the receiver
    refused this payload)."""
    backoff_s: float = Field(0.5, ge=0, le=30)
    """Wait before the first retry; doubled each time."""
    dead_letter: str | None = None
    """JSON-lines file for events no attempt delivered; default
    `<workspace>/notifications/dead-letter.jsonl`."""

    @field_validator("dashboard_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        names = [r.name for r in self.receivers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"receiver names must be unique; repeated: {', '.join(twice)}")
        return self
