"""The stores the dashboard reads, found as every stage finds them (the environment), and
the little it caches.

- MLflow: `MLFLOW_TRACKING_URI`, else the workspace's SQLite store. A local store that
  does not exist yet is reported as absent rather than opened (opening it would create
  it: the dashboard writes nothing).
- Audit trail: `audit.audit_log()` (`SEAMLESS_AUDIT_URL` or `<workspace>/audit`). Its
  parsed entries and its chain check are kept; when the file changes (size, mtime) or,
  for PostgreSQL, after `audit_ttl_s`, only the appended lines are read and checked. The
  whole trail is read again every `audit_full_read_s` (and when it was cut or replaced).
- Prediction log: `SEAMLESS_SERVE_LOG_URL` (PostgreSQL) or `<workspace>/predictions`.
- Snapshots, deployments: `governance.snapshots`, `common.env.deployments_dir()`.
- Local runs: `<workspace>/logs` and `<workspace>/kfp` (embedded mode only).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from components.common.env import mlflow_tracking_uri, workspace
from components.common.errors import SeamlessError
from components.governance import audit
from components.governance.audit_chain import ChainReader, VerifyResult

T = TypeVar("T")


class Unavailable(SeamlessError):
    """A store that cannot be read right now; the sentence goes on the page."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


@dataclass
class _AuditState:
    """The trail as last read: appended lines are read and checked on top of it."""

    key: Any
    where: str
    reader: ChainReader
    cursor: Any
    full_at: float
    """When the trail was last read (and checked) from its start (monotonic)."""


class Stores:
    """One per app: store handles from the environment, and the audit cache."""

    def __init__(self, audit_ttl_s: float = 5.0, audit_full_read_s: float = 600.0) -> None:
        self.audit_ttl_s = audit_ttl_s
        self.audit_full_read_s = audit_full_read_s
        self._audit: _AuditState | None = None
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_uri: str | None = None

    # ------------------------------------------------------------- locations

    def workspace(self) -> Path:
        return workspace()

    def logs_dir(self) -> Path:
        return workspace() / "logs"

    def kfp_root(self) -> Path:
        return workspace() / "kfp"

    def predictions_source(self) -> Path | str:
        url = os.environ.get("SEAMLESS_SERVE_LOG_URL", "").strip()
        return url or workspace() / "predictions"

    # ------------------------------------------------------------- MLflow

    def tracking_uri(self) -> str:
        return mlflow_tracking_uri()

    def mlflow(self) -> Any | None:
        """An MLflow client, or None when the local store does not exist yet."""
        uri = mlflow_tracking_uri()
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            return None
        with self._lock:
            if self._client is None or self._client_uri != uri:
                from components.common.tracking import mlflow_client

                self._client = mlflow_client()
                self._client_uri = uri
            return self._client

    def mlflow_call(self, what: str, call: Callable[[Any], T], default: T) -> T:
        """`call(client)`, `default` without a store; Unavailable when MLflow fails (a bad
        MLFLOW_TRACKING_SERVER_CERT_PATH included: the page says it)."""
        try:
            client = self.mlflow()
            if client is None:
                return default
            return call(client)
        except Exception as exc:  # MlflowException, connection errors: one sentence
            raise Unavailable(
                f"MLflow at {_redact(self.tracking_uri())} could not be read ({what}): "
                f"{first_line(exc)}"
            ) from None

    # ------------------------------------------------------------- audit

    def audit_log(self) -> audit.AuditLog:
        return audit.audit_log()

    def _audit_key(self, log: audit.AuditLog) -> Any:
        if isinstance(log, audit.FileAuditLog):
            try:
                st = log.path.stat()
            except FileNotFoundError:
                return (log.describe(), None)
            return (log.describe(), st.st_size, st.st_mtime_ns)
        return (log.describe(), int(time.monotonic() // max(self.audit_ttl_s, 0.001)))

    def _audit_state(self) -> _AuditState:
        """Read what was appended since the last call (only when the trail changed), and
        the whole trail again every `audit_full_read_s` or when it no longer extends what
        was read: a rewrite of old lines then shows in the verification."""
        log = self.audit_log()
        try:
            key = self._audit_key(log)
            with self._lock:
                state = self._audit
                whole = (
                    state is None
                    or state.where != log.describe()
                    or time.monotonic() - state.full_at > self.audit_full_read_s
                )
                if state is not None and state.key == key and not whole:
                    return state
                if whole:
                    state = self._audit_from_start(key, log)
                assert state is not None
                chunk = log.read_after(state.cursor)
                if chunk.restarted:
                    state = self._audit_from_start(key, log)
                state.reader.feed(chunk)
                state.key, state.cursor = key, chunk.cursor
                self._audit = state
                return state
        except (SeamlessError, OSError) as exc:
            raise Unavailable(
                f"The audit trail at {log.describe()} could not be read: {first_line(exc)}"
            ) from None

    @staticmethod
    def _audit_from_start(key: Any, log: audit.AuditLog) -> _AuditState:
        where = log.describe()
        return _AuditState(key, where, ChainReader(where), None, time.monotonic())

    def audit_entries(self) -> list[dict[str, Any]]:
        """Every entry in chain order (appended ones read as the trail grows)."""
        return self._audit_state().reader.entries

    def audit_verify(self) -> VerifyResult:
        return self._audit_state().reader.result()


def _redact(uri: str) -> str:
    """A tracking URI without credentials."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password or parts.username:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return uri
