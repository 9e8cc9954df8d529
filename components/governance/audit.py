"""The audit trail: `record()` appends to the configured backend (`audit_log()`).

PostgreSQL (`audit_postgres.PostgresAuditLog`) when `SEAMLESS_AUDIT_URL` is set, else the
JSON-lines file (`audit_file.FileAuditLog`). The entry format, hashing, verification and
the backend interface are in `audit_chain`, which no backend module reaches past: the
backends import the chain, this module picks one of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from components.governance.audit_chain import (
    ACCESS_DENIED,
    AUDIT_RECOVERED,
    BATCH_SCORING,
    DATA_ACCESS,
    DEPLOYMENT,
    GENESIS,
    MODEL_RELOAD,
    MONITORING_DECISION,
    PROMOTION,
    REGISTRY_CHANGE,
    ROLLBACK,
    AuditLog,
    current_actor,
    dataset_subject,
    entry_hash,
    model_subject,
)
from components.governance.audit_file import FileAuditLog

__all__ = [
    "ACCESS_DENIED",
    "AUDIT_RECOVERED",
    "BATCH_SCORING",
    "DATA_ACCESS",
    "DEPLOYMENT",
    "GENESIS",
    "MODEL_RELOAD",
    "MONITORING_DECISION",
    "PROMOTION",
    "REGISTRY_CHANGE",
    "ROLLBACK",
    "AuditLog",
    "FileAuditLog",
    "audit_log",
    "current_actor",
    "dataset_subject",
    "entry_hash",
    "model_subject",
    "record",
]


def audit_log() -> AuditLog:
    """The configured backend: PostgreSQL when `SEAMLESS_AUDIT_URL` is set, else the file."""
    url = os.environ.get("SEAMLESS_AUDIT_URL", "").strip()
    if url:
        from components.governance.audit_postgres import PostgresAuditLog

        return PostgresAuditLog(url)
    return FileAuditLog()


def record(
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Append one event to the configured audit log (the hook the stages call)."""
    return audit_log().append(action, subject, details, actor)
