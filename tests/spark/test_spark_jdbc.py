"""SQL sources on Spark: PostgreSQL through Spark's JDBC source (Debian's JDBC driver)
against the local engine on a real server started by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import SeamlessConfig, TableConfig
from components.common.errors import SeamlessError
from components.common.spark import SYSTEM_JDBC_JARS
from components.common.tables import read_dataset
from components.ingest.stage import ingest_tables
from tests.helpers.configs import assert_one_sentence, table
from tests.helpers.postgres import PostgresServer, pg_server  # noqa: F401 (fixture)
from tests.helpers.require import unavailable

pytestmark = [pytest.mark.spark, pytest.mark.postgres, pytest.mark.slow]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COLUMNS = {"id": "int", "ts": "timestamp", "score": "float", "label": "string", "flag": "bool"}


@pytest.fixture(scope="module")
def shop(pg_server: PostgresServer) -> Iterator[str]:  # noqa: F811
    if not any(Path(j).is_file() for j in SYSTEM_JDBC_JARS):
        unavailable("no PostgreSQL JDBC driver: apt-get install libpostgresql-jdbc-java")
    pg_server.execute("CREATE DATABASE shop")
    pg_server.execute(
        "CREATE TABLE events (id bigint, ts timestamptz, score numeric(6,2), label text, "
        "flag boolean)",
        "INSERT INTO events SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval "
        "'1 minute', CASE WHEN g % 7 = 0 THEN NULL ELSE (g % 1000) / 10.0 END, "
        "'l' || (g % 3), g % 2 = 0 FROM generate_series(1, 5000) AS g",
        "INSERT INTO events VALUES (9007199254740993, '2024-03-01 03:00:00+01', 2.25, NULL, NULL)",
        database="shop",
    )
    yield pg_server.url("shop")


def _config(url: str, query: str, engine: str) -> SeamlessConfig:
    tables: dict[str, TableConfig] = {
        "events": table(
            {"kind": "sql", "url": url, "query": query},
            entity_column="id",
            timestamp_column="ts",
            columns=COLUMNS,
        )
    }
    return SeamlessConfig.model_validate(
        {
            "name": "jdbc",
            "tables": tables,
            "labels": {"table": "events", "label_column": "id"},
            "features": {"views": [], "service": "svc"},
            "model": {"name": "m"},
            "engine": engine,
            "spark": {"master": "local[2]"},
        }
    )


def test_postgres_through_jdbc_equals_the_local_engine(
    spark: Any, shop: str, tmp_path: Path
) -> None:
    query = "SELECT * FROM events"
    local = ingest_tables(_config(shop, query, "local"), None, tmp_path / "local", T0)
    remote = ingest_tables(_config(shop, query, "spark"), None, tmp_path / "spark", T0)
    a, b = local["tables"]["events"], remote["tables"]["events"]
    assert b["engine"] == "spark" and b["rows"] == 5001
    assert b["sha256"] == a["sha256"] and b["source_sha256"] == a["source_sha256"]
    assert b["query"] == query and ":***@127.0.0.1" in b["source"]
    assert "s3cret-pg-pw" not in json.dumps(remote)
    df = read_dataset(tmp_path / "spark")["events"]
    pd.testing.assert_frame_equal(df, read_dataset(tmp_path / "local")["events"])
    assert 9007199254740993 in df["id"].tolist()  # bigint beyond 2**53 stays exact


def test_a_failing_query_is_one_sentence(spark: Any, shop: str, tmp_path: Path) -> None:
    config = _config(shop, "SELECT * FROM no_such_table", "spark")
    with pytest.raises(SeamlessError) as info:
        ingest_tables(config, None, tmp_path / "out", T0)
    assert_one_sentence(str(info.value), "Table 'events'", "SQL query failed", ":***@127.0.0.1")
    assert "s3cret-pg-pw" not in str(info.value)
    assert not (tmp_path / "out").exists()
