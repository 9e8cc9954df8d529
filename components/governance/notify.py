"""Seamless' own events reach people: webhooks for promotions, gate rejections, rollbacks,
drift verdicts and failed validations (config `notifications:`,
common/notifications_config.py).

The stage hooks (hooks.py) call `emit` after the audit entry is written, so an event is
only sent for something that is on the record. Delivery never fails the step that
caused the event: each receiver gets `retries` + 1 attempts with doubling backoff, and an
event no attempt delivered is appended to the dead-letter file, from which
`seamless notifications replay` sends it again. The receiver URLs come from environment
variables (a Secret on the cluster) and are never printed or stored: messages name the
receiver and the host only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from components.common.durable import append_lines
from components.common.env import workspace
from components.common.notifications_config import (
    NOTIFICATIONS_DIR_ENV,
    EventKind,
    NotificationsConfig,
    ReceiverConfig,
)

DEAD_LETTER = Path("notifications") / "dead-letter.jsonl"
# A receiver that refused the payload itself will refuse it again; these two may not.
_RETRIED_4XX = {408, 429}


@dataclass(frozen=True)
class Event:
    """One thing that happened, in the words and numbers a person needs to act on it."""

    kind: EventKind | Literal["test"]
    summary: str
    """One sentence: what happened to what."""
    reason: str = ""
    model: str | None = None
    version: str | None = None
    dataset_sha256: str | None = None
    numbers: Mapping[str, float | int | str | None] = field(default_factory=dict)
    """The figures behind the decision (metric values, thresholds, counts)."""


@dataclass
class Outcome:
    """What `emit` did, for the console summary and the tests."""

    delivered: list[str] = field(default_factory=list)
    dead_lettered: list[tuple[str, str]] = field(default_factory=list)
    dead_letter_path: Path | None = None


def payload(event: Event, dashboard_url: str | None) -> dict[str, Any]:
    """The JSON a generic webhook receives."""
    return {
        "source": "seamless",
        "event": event.kind,
        "summary": event.summary,
        "reason": event.reason,
        "model": event.model,
        "version": event.version,
        "dataset_sha256": event.dataset_sha256,
        "numbers": dict(event.numbers),
        "link": link(event, dashboard_url),
        "ts": datetime.now(UTC).isoformat(),
    }


def link(event: Event, dashboard_url: str | None) -> str | None:
    """The event's page on the dashboard: its model version, else its dataset."""
    if not dashboard_url:
        return None
    base = dashboard_url.rstrip("/")
    if event.model and event.version:
        return f"{base}/models/{quote(event.model)}/{quote(event.version)}"
    if event.model:
        return f"{base}/models/{quote(event.model)}"
    if event.dataset_sha256:
        return f"{base}/data/{event.dataset_sha256}"
    return base


def slack_text(body: Mapping[str, Any]) -> dict[str, str]:
    """A Slack-compatible incoming webhook's body: one line, the numbers, the link."""
    numbers = ", ".join(f"{k} {_shown(v)}" for k, v in body["numbers"].items() if v is not None)
    parts = [f"*[seamless] {body['event']}*: {body['summary']}"]
    if body["reason"] and body["reason"] not in body["summary"]:
        parts.append(body["reason"])
    if numbers:
        parts.append(f"({numbers})")
    if body["link"]:
        parts.append(f"<{body['link']}|open>")
    return {"text": " ".join(parts)}


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def emit(config: NotificationsConfig | None, event: Event) -> Outcome:
    """Send `event` to every receiver that takes its kind; never raises."""
    outcome = Outcome()
    if config is None or not config.receivers:
        return outcome
    try:
        body = payload(event, config.dashboard_url)
        for receiver in config.receivers:
            if event.kind not in receiver.events:
                continue
            error, attempts = deliver(receiver, body, config)
            if error is None:
                outcome.delivered.append(receiver.name)
                continue
            outcome.dead_lettered.append((receiver.name, error))
            outcome.dead_letter_path = dead_letter_path(config)
            _dead_letter(outcome.dead_letter_path, receiver.name, body, error, attempts)
    except Exception as exc:  # a notification must never fail the step that caused it
        print(f"notifications: {event.kind} not sent: {exc}", file=sys.stderr, flush=True)
        return outcome
    _report(event, outcome)
    return outcome


def deliver(
    receiver: ReceiverConfig, body: Mapping[str, Any], config: NotificationsConfig
) -> tuple[str | None, int]:
    """POST `body` (reshaped for Slack) to the receiver: (None, attempts) once one
    answers 2xx, else (why the last attempt failed, attempts)."""
    import requests

    url = receiver_url(receiver)
    if not url:
        folder = os.environ.get(NOTIFICATIONS_DIR_ENV, "").strip()
        nor = f", nor is {Path(folder) / receiver.url_env}" if folder else ""
        return f"environment variable {receiver.url_env} (its URL) is not set{nor}", 0
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"environment variable {receiver.url_env} does not hold an http(s) URL", 0
    where = parts.hostname
    data = slack_text(body) if receiver.kind == "slack" else body
    error = ""
    attempts = 0
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff_s * 2 ** (attempt - 1))
        attempts += 1
        try:
            answer = requests.post(url, json=data, timeout=config.timeout_s, allow_redirects=False)
        except requests.RequestException as exc:
            # The exception's text holds the URL (a token in its path): name the host only.
            error = f"cannot reach {where}: {type(exc).__name__}"
            continue
        if 200 <= answer.status_code < 300:
            return None, attempts
        error = f"{where} answered HTTP {answer.status_code}"
        if 400 <= answer.status_code < 500 and answer.status_code not in _RETRIED_4XX:
            break
    return error, attempts


def receiver_url(receiver: ReceiverConfig) -> str:
    """The URL from the environment variable `url_env`, else from the file of that name
    in `$SEAMLESS_NOTIFICATIONS_DIR` (a Secret mounted by the cluster pipelines)."""
    url = os.environ.get(receiver.url_env, "").strip()
    folder = os.environ.get(NOTIFICATIONS_DIR_ENV, "").strip()
    if not url and folder:
        with contextlib.suppress(OSError):
            url = (Path(folder) / receiver.url_env).read_text(encoding="utf-8").strip()
    return url


def dead_letter_path(config: NotificationsConfig, ws: Path | None = None) -> Path:
    """`dead_letter` if set, else under the workspace (`ws`, default the current one)."""
    if config.dead_letter:
        return Path(config.dead_letter)
    return (ws if ws is not None else workspace()) / DEAD_LETTER


def dead_lettered(path: Path) -> list[str]:
    """One line per event in the dead-letter file, oldest first: `<event> to <receiver>:
    <why>` (lines that are not events are skipped)."""
    out = []
    if path.exists():
        for line in _lines(path):
            try:
                entry = json.loads(line)
                out.append(f"{entry['payload']['event']} to {entry['receiver']}: {entry['error']}")
            except (ValueError, KeyError, TypeError):
                continue
    return out


def _dead_letter(
    path: Path, receiver: str, body: Mapping[str, Any], error: str, attempts: int
) -> None:
    """Keep an undelivered event: one JSON line."""
    record = {
        "ts": datetime.now(UTC).isoformat(),
        "receiver": receiver,
        "error": error,
        "attempts": attempts,
        "payload": dict(body),
    }
    append_lines(path, [json.dumps(record, default=str)])


def _report(event: Event, outcome: Outcome) -> None:
    if not outcome.delivered and not outcome.dead_lettered:
        return
    parts = []
    if outcome.delivered:
        parts.append(f"sent to {', '.join(outcome.delivered)}")
    for name, error in outcome.dead_lettered:
        parts.append(f"NOT sent to {name} ({error}; kept in {outcome.dead_letter_path})")
    print(f"notifications: {event.kind}: {'; '.join(parts)}", file=sys.stderr, flush=True)


def send_test(config: NotificationsConfig) -> dict[str, str | None]:
    """A `test` event to every receiver, whatever its `events`: receiver -> None when it
    answered 2xx, else why not. Nothing is dead-lettered."""
    event = Event("test", "Test notification from `seamless notifications test`.")
    body = payload(event, config.dashboard_url)
    return {r.name: deliver(r, body, config)[0] for r in config.receivers}


# ---------------------------------------------------------------- replay


@dataclass
class Replay:
    sent: int = 0
    kept: int = 0
    unknown_receivers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def replay(config: NotificationsConfig, path: Path | None = None) -> Replay:
    """Send the dead-letter file's events again; the ones that still fail (or whose
    receiver is no longer configured) stay in it. Events dead-lettered while this runs
    are kept too: the file being replayed is moved aside first."""
    path = path or dead_letter_path(config)
    result = Replay()
    aside = path.with_name(path.name + ".replaying")
    if path.exists():
        os.replace(path, aside)  # an earlier replay's leftovers, if any, are merged below
    if not aside.exists():
        return result
    receivers = {r.name: r for r in config.receivers}
    kept: list[str] = []
    for line in _lines(aside):
        try:
            record = json.loads(line)
            name, body = record["receiver"], record["payload"]
        except (ValueError, KeyError, TypeError):
            kept.append(line)  # not ours to judge: left for a person to read
            continue
        receiver = receivers.get(name)
        if receiver is None:
            if name not in result.unknown_receivers:
                result.unknown_receivers.append(name)
            kept.append(line)
            continue
        error, attempts = deliver(receiver, body, config)
        if error is None:
            result.sent += 1
            continue
        result.errors.append(f"{name}: {error}")
        kept.append(json.dumps({**record, "error": error, "attempts": attempts}))
    result.kept = len(kept)
    if kept:
        append_lines(path, kept)
    aside.unlink()
    return result


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip("\n")
