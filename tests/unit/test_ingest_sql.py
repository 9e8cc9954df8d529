"""Ingest from SQL: a real SQLite file and a real PostgreSQL server started by the tests."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from components.common.config import TableConfig
from components.common.errors import SeamlessError
from components.ingest.ingest import ingest_table
from components.ingest.stage import ingest_tables
from tests.helpers.configs import assert_one_sentence, config_for, table
from tests.helpers.postgres import PostgresServer, free_port, pg_server  # noqa: F401

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, tzinfo=UTC)
QUERY = "SELECT id, ts, score, label FROM events ORDER BY id"
COLUMNS = {"id": "int", "ts": "timestamp", "score": "float", "label": "string"}


def sql_table(url: str, query: str = QUERY, **source: object) -> TableConfig:
    return table(
        {"kind": "sql", "url": url, "query": query, **source},
        entity_column="id",
        timestamp_column="ts",
        columns=COLUMNS,
    )


def ingest_error(cfg: TableConfig, data_dir: Path | None = None) -> str:
    with pytest.raises(SeamlessError) as info:
        ingest_table("events", cfg, data_dir, T0)
    return str(info.value)


@pytest.fixture()
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER, ts TEXT, score REAL, label TEXT)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            [
                (1, "2024-01-01 00:00:00", 0.5, "a"),
                (2, "2024-01-01T03:00:00+01:00", None, "b"),
                (3, "2024-01-02", 2.0, None),
            ],
        )
    conn.close()
    return path


# ---------------------------------------------------------------- SQLite


def test_sqlite_file_relative_to_data_dir(sqlite_db: Path) -> None:
    df, info = ingest_table("events", sql_table("sqlite:///events.db"), sqlite_db.parent, T0)
    assert df["id"].tolist() == [1, 2, 3] and str(df["id"].dtype) == "Int64"
    assert [t.isoformat() for t in df["ts"]] == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T02:00:00+00:00",
        "2024-01-02T00:00:00+00:00",
    ]
    assert info["source_kind"] == "sql" and info["query"] == QUERY


def test_sqlite_absolute_path(sqlite_db: Path) -> None:
    df, _ = ingest_table("events", sql_table(f"sqlite:///{sqlite_db}"), None, T0)
    assert len(df) == 3


def test_sqlite_missing_database_file(tmp_path: Path) -> None:
    msg = ingest_error(sql_table("sqlite:///absent.db"), tmp_path)
    assert_one_sentence(msg, "Table 'events'", str(tmp_path / "absent.db"), "does not exist")
    assert not (tmp_path / "absent.db").exists()  # not created as a side effect


def test_sql_error(sqlite_db: Path) -> None:
    msg = ingest_error(sql_table(f"sqlite:///{sqlite_db}", "SELECT * FROM nope"))
    assert_one_sentence(msg, "Table 'events'", "SQL query failed", "no such table: nope")


def test_query_without_rows(sqlite_db: Path) -> None:
    msg = ingest_error(sql_table(f"sqlite:///{sqlite_db}", QUERY.replace("ORDER", "WHERE 0 ORDER")))
    assert_one_sentence(msg, "Table 'events'", "has no rows")


def test_unreachable_database_masks_password(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first connection of a process is retried while refused (issue #14 A.1): 1 s here.
    monkeypatch.setenv("SEAMLESS_CONNECT_RETRY_S", "1")
    url = f"postgresql+psycopg2://reader:topsecret@127.0.0.1:{free_port()}/warehouse"
    msg = ingest_error(sql_table(url, connect_timeout_s=3))
    assert_one_sentence(
        msg, "cannot connect to database", "reader:***@127.0.0.1", "/warehouse", "attempts"
    )
    assert "topsecret" not in msg


def test_missing_driver_is_named() -> None:
    msg = ingest_error(sql_table("nosuchdb+nodriver://u:pw@localhost/db"))
    assert_one_sentence(msg, "no database driver", "u:***@localhost")


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_events(pg_server: PostgresServer) -> Iterator[str]:  # noqa: F811
    pg_server.execute("CREATE DATABASE shop")
    pg_server.execute(
        "CREATE TABLE events (id bigint, ts timestamptz, score numeric(6,2), label text, "
        "flag boolean)",
        "INSERT INTO events VALUES "
        "(1, '2024-01-01 00:00:00+00', 0.50, 'a', true), "
        "(2, '2024-01-01 03:00:00+01', NULL, 'b', false), "
        "(9007199254740993, '2024-01-02 00:00:00+00', 2.25, NULL, NULL)",
        database="shop",
    )
    pg_server.execute(  # a mixed-case name, for `seamless init --table`
        'CREATE TABLE "Customers" AS SELECT g AS customer_id, g % 7 AS visits, '
        "CASE WHEN g % 3 = 0 THEN 'yes' ELSE 'no' END AS churned "
        "FROM generate_series(1, 150) AS g",
        database="shop",
    )
    yield pg_server.url("shop")


@pytest.mark.postgres
def test_postgres_query(pg_events: str, tmp_path: Path) -> None:
    cfg = sql_table(pg_events, "SELECT * FROM events ORDER BY id")
    manifest = ingest_tables(config_for({"events": cfg}), None, tmp_path / "out", T0)
    entry = manifest["tables"]["events"]
    assert entry["rows"] == 3 and entry["source_kind"] == "sql"
    assert ":***@127.0.0.1" in entry["source"]
    text = (tmp_path / "out" / "manifest.json").read_text()
    assert "s3cret-pg-pw" not in text and "s3cret-pg-pw" not in json.dumps(manifest)

    df, _ = ingest_table("events", cfg, None, T0)
    assert df["id"].tolist() == [1, 2, 9007199254740993]  # bigint beyond 2**53 stays exact
    assert df["ts"].iloc[1].isoformat() == "2024-01-01T02:00:00+00:00"
    assert str(df["score"].dtype) == "float64" and df["score"].iloc[2] == 2.25
    assert df["label"].tolist() == ["a", "b", None]


@pytest.mark.postgres
def test_postgres_sql_error(pg_events: str) -> None:
    msg = ingest_error(sql_table(pg_events, "SELECT * FROM missing_table"))
    assert_one_sentence(msg, "SQL query failed", ":***@127.0.0.1", "missing_table")


@pytest.mark.postgres
def test_postgres_wrong_password(pg_server: PostgresServer) -> None:  # noqa: F811
    url = pg_server.url("shop").replace(pg_server.password, "wrong-pw")
    msg = ingest_error(sql_table(url))
    assert_one_sentence(msg, "cannot connect to database", "password authentication failed")
    assert "wrong-pw" not in msg and pg_server.password not in msg


@pytest.mark.postgres
def test_init_from_a_url_with_a_password(
    pg_events: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `seamless init` writes the password as ${SEAMLESS_DB_PASSWORD}; its own check of the
    # written config read that variable, unset, and refused every URL with a password.
    from pipelines.scaffold import PASSWORD_VAR, build_scaffold

    monkeypatch.delenv(PASSWORD_VAR, raising=False)
    plan = build_scaffold(pg_events, "churned", table="Customers", name="shop", data_dir=tmp_path)
    assert "${" + PASSWORD_VAR + "}@127.0.0.1" in plan.text
    assert "s3cret-pg-pw" not in plan.text and PASSWORD_VAR not in os.environ
    assert plan.source.config.query == 'SELECT * FROM "Customers"'  # type: ignore[union-attr]
