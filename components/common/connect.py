"""The first connection of a fresh process, retried with bounded backoff.

A pod's NetworkPolicies (and its DNS name, and the server it talks to) may be applied a
few seconds after the pod starts: a Job that connects at once sees "Connection
refused". The first connection to each target is therefore retried on errors that
say "not reachable yet" (refused, timed out, unknown host) for at most
`SEAMLESS_CONNECT_RETRY_S` seconds (default 30), doubling the pause from 0.25 s to 4 s.
Errors that waiting cannot fix (a wrong password, a missing database) fail at once, and
later connections fail at once too: once a target answered, an outage is news.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from components.common.errors import SeamlessError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = (
    "connection refused",
    "timeout expired",
    "timed out",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "network is unreachable",
    "the database system is starting up",
)
"""Text of errors that a moment's wait can cure (libpq, redis-py and requests alike)."""

_reached: set[str] = set()
_lock = threading.Lock()


def retry_budget_s() -> float:
    """Seconds the first connection may keep retrying (`SEAMLESS_CONNECT_RETRY_S`)."""
    raw = os.environ.get("SEAMLESS_CONNECT_RETRY_S", "30")
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise SeamlessError(
            f"SEAMLESS_CONNECT_RETRY_S must be a number of seconds, got {raw!r}."
        ) from None


def is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, ConnectionRefusedError | TimeoutError) or any(
        t in text for t in TRANSIENT
    )


def first_connection(
    target: str,
    connect: Callable[[], T],
    describe_failure: Callable[[BaseException, int, float], SeamlessError],
    budget_s: float | None = None,
) -> T:
    """`connect()`, retried while `target` has never answered in this process.

    `describe_failure(error, attempts, seconds)` makes the final one-sentence error.
    """
    budget = retry_budget_s() if budget_s is None else budget_s
    with _lock:
        retry = target not in _reached
    started = time.monotonic()
    attempts, pause = 0, 0.25
    while True:
        attempts += 1
        try:
            result = connect()
        except Exception as exc:
            waited = time.monotonic() - started
            if not (retry and is_transient(exc)) or waited + pause > budget:
                raise describe_failure(exc, attempts, waited) from None
            log.warning("%s not reachable yet (%s); retrying in %.2f s", target, exc, pause)
            time.sleep(pause)
            pause = min(pause * 2, 4.0)
            continue
        with _lock:
            _reached.add(target)
        return result


def wait_for_tcp(host: str, port: int, what: str, budget_s: float | None = None) -> bool:
    """Wait (bounded, as `first_connection`) until `host:port` accepts a TCP connection.

    For clients whose library connects deep inside (Feast's registry and online store):
    probing the socket first spares a fresh pod the refused first attempt. Never raises:
    if the budget runs out, the library's own error follows with its own sentence.
    """
    import socket

    def connect() -> None:
        socket.create_connection((host, port), timeout=3).close()

    def failed(exc: BaseException, attempts: int, seconds: float) -> SeamlessError:
        return SeamlessError(f"{what} at {host}:{port} not reachable ({exc})")

    try:
        first_connection(f"tcp://{host}:{port}", connect, failed, budget_s)
    except SeamlessError as exc:
        log.warning("%s; going on, the client will say what fails.", exc)
        return False
    return True
