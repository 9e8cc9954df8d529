"""A batch run's records into the PostgreSQL log with COPY (`PgLog.append_batch`): they
read back exactly as the row-by-row path writes them, hold what the earlier server-side
jsonb building stored, and are written all of them or none."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg2
import pyarrow as pa
import pytest

from components.batch.stage import RECORD_FIELDS
from components.predictions import pg_copy
from components.predictions.pg_copy import jsonb_text
from components.predictions.postgres import (
    LogRefused,
    LogUnavailable,
    PgLog,
    read_pg_records,
    table_name,
)
from components.predictions.records import BatchRecords, LogQuery
from tests.helpers.postgres import PostgresServer, pg_server
from tests.serving.pg_control import fresh_database

__all__ = ["pg_server"]
pytestmark = [pytest.mark.serving, pytest.mark.postgres]


def _batch(n: int, request_id: str, texts: list[str | None] | None = None) -> BatchRecords:
    rng = np.random.default_rng(2)
    # 60 features: wider than the demo model's (the server-side build took 50 a call).
    numbers = {f"f{j}": rng.standard_normal(n) * 10 ** (j % 7) for j in range(58)}
    numbers["f0"] = np.floor(numbers["f0"])  # integral floats must read back as floats
    numbers["f1"][::3] = np.nan
    numbers["f2"] = np.array([0.1, 1e-300, 1234567890123456.0, 1e16, -0.0] * (n // 5))
    named = [pa.array(v, from_pandas=True) for v in numbers.values()]
    texts = texts or ["a", "", None, 'q"uote, comma', "é\nline"] * (n // 5)
    named += [pa.array(texts), pa.array([None] * n, pa.string())]
    columns = pa.table(
        {
            "index": pa.array(np.arange(n)),
            "entity_id": pa.array([f"id-{i}" for i in range(n)]),
            "features": pa.StructArray.from_arrays(named, names=[*numbers, "region", "none"]),
            "score": pa.array(rng.random(n)),
            "decision": pa.array(rng.random(n) > 0.5),
            "as_of": pa.array(["2025-06-30", "2025-07-01T12:30:00.500Z"] * (n // 2)),
        }
    )
    constants = {
        "ts": "2026-01-01T00:00:00+00:00",
        "request_id": request_id,
        "route": "batch",
        "model_name": "credit_risk",
        "model_version": "3",
    }
    return BatchRecords(constants, columns, RECORD_FIELDS)


def test_a_batch_reads_back_as_row_by_row_writes_it(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_copy, "CHUNK_ROWS", 64)  # several chunks, encoded ahead
    url = fresh_database(pg_server, "batchcopy")
    log = PgLog(url, "predictions")
    log.open()
    copied, rows = _batch(500, "batch-copy"), _batch(500, "batch-rows")
    log.append_batch(copied)
    assert log.commits == 1
    log.append(list(rows.records()))
    log.close()
    want = list(copied.records())
    got = list(read_pg_records(url, "predictions", query=LogQuery(request_id="batch-copy")))
    assert got == want
    by_rows = list(read_pg_records(url, "predictions", query=LogQuery(request_id="batch-rows")))
    for a, b in zip(got, by_rows, strict=True):  # same values, same Python types
        assert {k: (v, type(v)) for k, v in a["features"].items()} == {
            k: (v, type(v)) for k, v in b["features"].items()
        }
        assert {k: v for k, v in a.items() if k != "request_id"} == {
            k: v for k, v in b.items() if k != "request_id"
        }
    assert type(got[0]["features"]["f0"]) is float and got[0]["features"]["f1"] is None


def test_a_value_copy_cannot_carry_goes_row_by_row(pg_server: PostgresServer) -> None:
    batch = _batch(10, "batch-nul", texts=["nul\x00inside", *["x"] * 9])
    url = _logged(pg_server, "batchnul", batch)
    assert list(read_pg_records(url, "predictions")) == list(batch.records())


def test_a_refused_batch_leaves_none_of_its_rows(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "batchrefused")
    log = PgLog(url, "predictions")
    log.open()
    pg_server.execute(
        f"ALTER TABLE {table_name('predictions')} ADD CONSTRAINT low CHECK (score < 0.999)",
        database="batchrefused",
    )
    batch = _batch(1000, "batch-refused")
    scores = batch.columns.column("score").to_numpy().copy()
    scores[-1] = 0.9995  # the last row breaks the constraint
    batch.columns = batch.columns.set_column(3, "score", pa.array(scores))
    with pytest.raises(LogRefused, match="refused the predictions batch"):
        log.append_batch(batch)
    log.close()
    assert list(read_pg_records(url, "predictions")) == []


def _logged(pg_server: PostgresServer, database: str, batch: BatchRecords) -> str:
    """`batch` appended to the log table of a fresh database; the database's URL."""
    url = fresh_database(pg_server, database)
    log = PgLog(url, "predictions")
    log.open()
    log.append_batch(batch)
    log.close()
    return url


def _query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


# What `features` and `extra` held when the server built them (the INSERT ... SELECT this
# COPY replaced): a double `x` as this jsonb, `extra` as jsonb_build_object(...)::json.
BEFORE = (
    "CASE WHEN {x} = trunc({x}) AND abs({x}) < 1e16 "
    "THEN ({x}::bigint::text || '.0')::jsonb ELSE to_jsonb({x}) END"
)


def test_numbers_are_stored_as_the_server_built_them(pg_server: PostgresServer) -> None:
    """Every double as jsonb, and in `extra`'s text, as the server-side build stored it
    (PostgreSQL's digits from 1e16 up, where Python's shortest differ; `.0` on integral
    values; NaN and infinities as strings; tiny and huge ones positional in `extra`)."""
    rng = np.random.default_rng(7)
    edge = [0.1, 1e-300, 5e-324, 1234567890123456.0, 1e16, -1e16, 9007199254740993.0]
    edge += [3.2963990608325528e16, -1.6766514759727718e17, 1.7976931348623157e308, -0.0]
    edge += [1.5e-5, 2.5e20, 1e22, 0.30000000000000004, -7.0, np.nan, np.inf, -np.inf]
    n = 4000
    values = np.concatenate([edge, rng.standard_normal(n) * 10.0 ** rng.integers(-40, 40, n)])
    values[len(edge) + 1000 :] = np.floor(values[len(edge) + 1000 :])  # integral, any size
    n = len(values)
    batch = _batch(10 * (n // 10), "batch-numbers")
    values = values[: len(batch)]
    features = batch.columns.column("features").combine_chunks()
    named = {f.name: features.field(f.name) for f in features.type}
    named["x"] = pa.array(values)  # NaN kept (not null): to_jsonb's strings
    batch.columns = (
        batch.columns.set_column(
            2, "features", pa.StructArray.from_arrays(list(named.values()), names=list(named))
        )
        .set_column(3, "score", pa.array(values))
        .append_column("x", pa.array(values))
    )
    batch.order = [*batch.order, "x"]
    url = _logged(pg_server, "batchnumbers", batch)
    before = BEFORE.format(x="score")
    differ = _query(
        url,
        f"SELECT idx, score, features->'x', extra::text FROM {table_name('predictions')} "
        f"WHERE (features->'x')::text IS DISTINCT FROM ({before})::text OR extra::text "
        f"IS DISTINCT FROM jsonb_build_object('x', {before}, 'as_of', extra->'as_of')::json::text",
    )  # fmt: skip
    assert differ == []
    assert _query(url, f"SELECT count(*) FROM {table_name('predictions')}") == [(len(batch),)]


def test_extra_is_printed_as_jsonb_prints_it(pg_server: PostgresServer) -> None:
    """`jsonb_text` (the constant part of `extra`) against PostgreSQL's own printing."""
    url = fresh_database(pg_server, "jsonbtext")
    values = [
        {"b": [1.0, 1e-7, 2, None, "é", True, {}], "aa": 1e16, "a": {"z": -0.0, "y": []}},
        {'key "q"\n': "tab\tback\\slash\x01\x1f日本", "": 0.30000000000000004},
        [1e22, -1.5e-05, 123456789.125, 5e-324, 1.7976931348623157e308],
        "plain",
        12,
        -3.0,
        False,
        None,
    ]
    for value in values:
        [(printed,)] = _query(url, "SELECT %s::jsonb::text", (json.dumps(value),))
        assert jsonb_text(value) == printed


def test_constant_fields_without_a_column_go_to_extra(pg_server: PostgresServer) -> None:
    """A constant that does not fit its column (a non-canonical `ts`, an int version) or
    has none goes to `extra` beside the per-row `as_of` (the server-side build refused
    this mix and fell back to row by row)."""
    batch = _batch(50, "batch-constants")
    batch.constants |= {"ts": "2026-01-01 00:00:00Z", "model_version": 3, "run": {"n": [1.5]}}
    batch.order = [*batch.order, "run"]
    url = _logged(pg_server, "batchconstants", batch)
    assert list(read_pg_records(url, "predictions")) == list(batch.records())
    table = table_name("predictions")
    assert _query(url, f"SELECT count(*) FROM {table} WHERE extra::text <> extra::jsonb::text") == [
        (0,)
    ]


def test_a_failed_encoding_leaves_none_of_its_rows(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while the later chunks are encoded abandons the COPY: the chunks already
    sent are not kept, the error is raised as it is, and the log takes the next batch."""
    monkeypatch.setattr(pg_copy, "CHUNK_ROWS", 100)
    encode = pg_copy.Plan.encode

    def fail_third(plan: pg_copy.Plan, start: int, stop: int) -> bytes:
        if start >= 200:
            raise MemoryError("out of memory while encoding")
        return encode(plan, start, stop)

    url = fresh_database(pg_server, "batchencoding")
    log = PgLog(url, "predictions")
    log.open()
    monkeypatch.setattr(pg_copy.Plan, "encode", fail_third)
    with pytest.raises(MemoryError):
        log.append_batch(_batch(500, "batch-fails"))
    assert list(read_pg_records(url, "predictions")) == []
    monkeypatch.setattr(pg_copy.Plan, "encode", encode)
    batch = _batch(500, "batch-after")
    log.append_batch(batch)
    log.close()
    assert list(read_pg_records(url, "predictions")) == list(batch.records())


def test_a_connection_lost_mid_copy_leaves_none_of_its_rows(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's end of the COPY killed after some chunks arrived: LogUnavailable
    (the batch run fails and says so), nothing of the batch in the table."""
    monkeypatch.setattr(pg_copy, "CHUNK_ROWS", 100)
    encode = pg_copy.Plan.encode
    url = fresh_database(pg_server, "batchkilled")

    def kill_at_third(plan: pg_copy.Plan, start: int, stop: int) -> bytes:
        if start == 300:
            pg_server.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = 'batchkilled' AND query LIKE 'COPY%'"
            )
        return encode(plan, start, stop)

    log = PgLog(url, "predictions")
    log.open()
    monkeypatch.setattr(pg_copy.Plan, "encode", kill_at_third)
    with pytest.raises(LogUnavailable, match=r"write to .* failed"):
        log.append_batch(_batch(1000, "batch-killed"))
    log.close()
    assert list(read_pg_records(url, "predictions")) == []
