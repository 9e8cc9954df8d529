"""The PostgreSQL audit backend against a real server started from Debian's binaries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.common.errors import SeamlessError
from components.governance.audit import audit_log, model_subject
from components.governance.audit_postgres import PostgresAuditLog
from tests.helpers.late_relay import late_port
from tests.helpers.postgres import PostgresServer, free_port, pg_server

pytestmark = pytest.mark.postgres
__all__ = ["pg_server"]
ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from components.governance.audit_postgres import PostgresAuditLog
log = PostgresAuditLog(sys.argv[1])
for i in range(int(sys.argv[3])):
    log.append("data_access", "dataset:x", {"i": i}, actor=sys.argv[2])
"""


def _fresh(server: PostgresServer, name: str) -> str:
    server.execute(f"CREATE DATABASE {name}")
    return server.url(name)


def test_chain_concurrency_and_tampering(pg_server: PostgresServer) -> None:
    url = _fresh(pg_server, "audit_a")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, f"w{k}", "50"], env=env, cwd=ROOT)
        for k in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    log = PostgresAuditLog(url)
    res = log.verify()
    assert res.ok and res.entries == 200, res.message()
    assert [e["seq"] for e in log.entries()] == list(range(1, 201))

    # The trigger refuses edits...
    with pytest.raises(Exception, match="append-only"):
        pg_server.execute(
            "UPDATE seamless_audit SET actor = 'mallory' WHERE seq = 7", database="audit_a"
        )
    # ...and an owner who switches it off is still caught by the chain.
    pg_server.execute(
        "ALTER TABLE seamless_audit DISABLE TRIGGER seamless_audit_no_change",
        "UPDATE seamless_audit SET entry = replace(entry, '\"i\":', '\"i\":1') WHERE seq = 7",
        "DELETE FROM seamless_audit WHERE seq = 150",
        database="audit_a",
    )
    bad = log.verify()
    assert bad.status == "tampered" and bad.bad_seq == 7
    assert "entry seq 7 (line 7) was edited" in bad.message()
    assert "s3cret" not in bad.message()  # the URL's password never shows


def test_selected_by_env_and_unreachable(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _fresh(pg_server, "audit_b")
    monkeypatch.setenv("SEAMLESS_AUDIT_URL", url)
    log = audit_log()
    assert isinstance(log, PostgresAuditLog)
    assert log.verify().ok and log.verify().entries == 0
    log.append("promotion", model_subject("m", 1), {"to_version": "1"}, actor="alice")
    assert [e["actor"] for e in log.entries()] == ["alice"]

    monkeypatch.setenv("SEAMLESS_CONNECT_RETRY_S", "1")
    down = PostgresAuditLog(
        f"postgresql+psycopg2://u:pw@127.0.0.1:{free_port()}/x", connect_timeout_s=2
    )
    with pytest.raises(SeamlessError, match=r"Cannot reach the audit database .* attempts over"):
        down.append("x", "y", actor="a")


def test_first_connection_waits_for_a_database_that_is_not_reachable_yet(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #14 A.1: a fresh pod's first connection is refused for a few seconds."""
    url = _fresh(pg_server, "audit_late")
    monkeypatch.setenv("SEAMLESS_CONNECT_RETRY_S", "20")
    with late_port(pg_server.port) as port:
        late = url.replace(f":{pg_server.port}/", f":{port}/")
        started = time.monotonic()
        PostgresAuditLog(late).append("promotion", "model:m:1", actor="job")
        assert time.monotonic() - started >= 1.5  # it was refused, then waited
    assert [e["actor"] for e in PostgresAuditLog(url).entries()] == ["job"]
