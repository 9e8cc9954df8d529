"""The dashboard's own PostgreSQL role, as the shipped init script creates it (run here
against a real server from Debian's binaries): it reads the prediction log and the audit
trail the other roles wrote, appends its own entries to the trail, and may change nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest

from components.common.errors import SeamlessError
from components.governance.audit_postgres import TABLE, PostgresAuditLog
from components.predictions.postgres import PgLog, table_name
from components.predictions.summary import summarize
from tests.helpers.postgres import PostgresServer, postgres_server
from tests.helpers.require import unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INIT = Path(__file__).resolve().parents[2] / "manifests/base/postgres/init-databases.sh"
PASSWORDS = {
    "MLFLOW_DB_PASSWORD": "mlflow-pw",
    "FEAST_DB_PASSWORD": "feast-pw",
    "SERVING_DB_PASSWORD": "serving-pw",
    "AUDIT_DB_PASSWORD": "audit-pw",
    "DASHBOARD_DB_PASSWORD": "dash'board-pw",  # a quote: passed as a variable, not SQL
}


def role_url(server: PostgresServer, role: str, database: str) -> str:
    password = PASSWORDS[f"{role.upper()}_DB_PASSWORD"].replace("'", "%27")
    return f"postgresql://{role}:{password}@{server.host}:{server.port}/{database}"


@contextmanager
def initialised_server() -> Iterator[PostgresServer]:
    """A fresh server after the shipped init script (run as the pod's entrypoint would)."""
    if shutil.which("psql") is None:
        unavailable("psql is not installed: apt-get install postgresql-client")
    with postgres_server() as server:
        env = {
            **os.environ,
            **PASSWORDS,
            "POSTGRES_USER": server.user,
            "PGHOST": server.host,
            "PGPORT": str(server.port),
            "PGPASSWORD": server.password,
        }
        done = subprocess.run(
            ["sh", str(INIT)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        yield server


@pytest.fixture(scope="module")
def initialised() -> Iterator[PostgresServer]:
    with initialised_server() as server:
        yield server


def test_the_dashboard_reads_what_serving_and_the_pipeline_wrote(
    initialised: PostgresServer,
) -> None:
    log = PgLog(role_url(initialised, "serving", "predictions"), "predictions")
    log.open()
    log.append(
        [
            {
                "ts": datetime(2026, 1, 1, 12, i, tzinfo=UTC).isoformat(),
                "request_id": f"r{i}",
                "index": 0,
                "entity_id": i,
                "route": "/v1/predict",
                "model_name": "m",
                "model_version": "1",
                "features": {"x": i},
                "score": i / 10,
                "decision": False,
            }
            for i in range(5)
        ]
    )
    log.close()
    PostgresAuditLog(role_url(initialised, "audit", "audit")).append("promote", "model:m/1", {})

    assert summarize(role_url(initialised, "dashboard", "predictions"), "m").records == 5
    trail = PostgresAuditLog(role_url(initialised, "dashboard", "audit"))
    assert trail.verify().ok
    entry = trail.append("access_denied", "ui:/models", {"reason": "viewer role missing"})
    assert entry["seq"] == 2 and trail.verify().ok
    assert [e["action"] for e in trail.entries()] == ["promote", "access_denied"]


@pytest.mark.parametrize(
    ("database", "statement"),
    [
        ("predictions", "INSERT INTO {log} (request_id) VALUES ('x')"),
        ("predictions", "DELETE FROM {log}"),
        ("predictions", "UPDATE {log} SET score = 0"),
        ("predictions", "TRUNCATE {log}"),
        ("predictions", "DROP TABLE {log}"),
        ("predictions", "CREATE TABLE mine (x int)"),
        ("audit", "TRUNCATE {audit}"),
        ("audit", "DROP TABLE {audit}"),
        ("audit", "DROP TRIGGER {audit}_no_change ON {audit}"),
        ("audit", "CREATE TABLE mine (x int)"),
        ("mlflow", "SELECT 1"),
        ("feast_registry", "SELECT 1"),
    ],
)
def test_the_dashboard_role_changes_nothing(
    initialised: PostgresServer, database: str, statement: str
) -> None:
    _tables_exist(initialised)
    sql = statement.format(log=table_name("predictions"), audit=TABLE)
    with pytest.raises(psycopg2.Error, match=r"permission denied|must be owner"):
        conn = psycopg2.connect(role_url(initialised, "dashboard", database))
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()


def test_an_audit_table_the_dashboard_cannot_create_is_one_sentence() -> None:
    with initialised_server() as server:
        trail = PostgresAuditLog(role_url(server, "dashboard", "audit"))
        with pytest.raises(SeamlessError, match=r"may not create them .* the first entry by"):
            trail.append("access_denied", "ui:/", {})


def _tables_exist(server: PostgresServer) -> None:
    """Serving's log table and the audit table, created by their owners (idempotent)."""
    log = PgLog(role_url(server, "serving", "predictions"), "predictions")
    log.open()
    log.close()
    conn = psycopg2.connect(role_url(server, "audit", "audit"))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (TABLE,))
            exists = cur.fetchone()[0] is not None
    finally:
        conn.close()
    if not exists:
        PostgresAuditLog(role_url(server, "audit", "audit")).append("init", "test", {})
