"""A batch run's records into the PostgreSQL log with COPY (`PgLog.append_batch`): they
read back exactly as the row-by-row path writes them, all of them or none."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from components.batch.stage import RECORD_FIELDS
from components.predictions.postgres import LogRefused, PgLog, read_pg_records, table_name
from components.predictions.records import BatchRecords
from tests.helpers.postgres import PostgresServer, pg_server
from tests.serving.pg_control import fresh_database

__all__ = ["pg_server"]
pytestmark = [pytest.mark.serving, pytest.mark.postgres]


def _batch(n: int, request_id: str, texts: list[str | None] | None = None) -> BatchRecords:
    rng = np.random.default_rng(2)
    # 60 features: more than one jsonb_build_object call takes (50 pairs).
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


def test_a_batch_reads_back_as_row_by_row_writes_it(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "batchcopy")
    log = PgLog(url, "predictions")
    log.open()
    copied, rows = _batch(500, "batch-copy"), _batch(500, "batch-rows")
    log.append_batch(copied)
    assert log.commits == 1
    log.append(list(rows.records()))
    log.close()
    want = list(copied.records())
    got = list(read_pg_records(url, "predictions", request_id="batch-copy"))
    assert got == want
    by_rows = list(read_pg_records(url, "predictions", request_id="batch-rows"))
    for a, b in zip(got, by_rows, strict=True):  # same values, same Python types
        assert {k: (v, type(v)) for k, v in a["features"].items()} == {
            k: (v, type(v)) for k, v in b["features"].items()
        }
        assert {k: v for k, v in a.items() if k != "request_id"} == {
            k: v for k, v in b.items() if k != "request_id"
        }
    assert type(got[0]["features"]["f0"]) is float and got[0]["features"]["f1"] is None


def test_a_value_copy_cannot_carry_goes_row_by_row(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "batchnul")
    log = PgLog(url, "predictions")
    log.open()
    batch = _batch(10, "batch-nul", texts=["nul\x00inside", *["x"] * 9])
    log.append_batch(batch)
    log.close()
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
