"""The local spool behind the PostgreSQL log (components/predictions/spool.py).

Framing and torn-tail recovery (no services), then against a real PostgreSQL server
stopped and restarted in place: records spooled while it is away are drained in
order, exactly once, the old table gets its key column, and the serving app keeps
answering (ready) through the outage. Kill -9 of a spooling or draining process:
tests/faults/test_prediction_spool.py.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.predictions import spool as prediction_spool
from components.predictions.postgres import PgLog, read_pg_records
from components.predictions.reader import read_log
from components.predictions.spool import (
    Spool,
    SpooledLog,
    SpoolFull,
    decode_frames,
    encode_frame,
    read_segment,
)
from components.serve.settings import ServeSettings
from tests.helpers.postgres import PostgresServer, free_port, pg_server
from tests.serving.conftest import serving_client
from tests.serving.pg_control import PgControl, fresh_database

__all__ = ["pg_server"]
pytestmark = [pytest.mark.serving]


def _rec(i: int) -> dict[str, Any]:
    return {
        "ts": datetime.now(UTC).isoformat(),
        "request_id": f"r{i}",
        "index": 0,
        "entity_id": 1000 + i,
        "route": "/v1/predict",
        "model_name": "m",
        "model_version": "1",
        "features": {"age": 30 + i, "s": "nul\x00inside"},
        "score": i / 1000,
        "decision": i % 2 == 0,
    }


def _write(spool: Spool, recs: list[dict[str, Any]], start: int = 0) -> None:
    with spool.lock:
        spool.append_locked([(f"k{start + i}", r) for i, r in enumerate(recs)])


def _drain_keys(spool: Spool) -> list[str]:
    """Read the spool to its end the way the drainer does (batches, commit)."""
    keys: list[str] = []
    while (batch := spool.next_batch(3)) is not None:
        keys += [k for k, _ in batch.items]
        spool.commit(batch)
    return keys


# ---- framing, torn tails, order (no services) -------------------------------------


@pytest.mark.unit
def test_frames_round_trip_and_every_torn_tail_is_detected(tmp_path: Path) -> None:
    recs = [_rec(i) for i in range(3)]
    frames = [encode_frame(f"k{i}", r) for i, r in enumerate(recs)]
    data = b"".join(frames)
    decoded, end = decode_frames(data)
    assert [(k, r) for k, r, _ in decoded] == [(f"k{i}", r) for i, r in enumerate(recs)]
    assert end == len(data)
    whole = len(data) - len(frames[-1])
    # A kill can cut the last write anywhere: every cut reads as the first two records.
    for cut in range(whole, len(data)):
        got, end = decode_frames(data[:cut])
        assert [k for k, _, _ in got] == ["k0", "k1"] and end == whole, cut
    # A flipped bit anywhere in the last frame (header or payload) fails its checksum.
    for pos in range(whole, len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        got, end = decode_frames(bytes(bad))
        assert [k for k, _, _ in got] == ["k0", "k1"], pos
    # Zeros after the last record (a power cut's unwritten blocks) are no frames either.
    got, end = decode_frames(data + b"\0" * 64)
    assert len(got) == 3 and end == len(data)


@pytest.mark.unit
def test_spool_keeps_order_across_files_and_restarts_and_drops_a_torn_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, "predictions", max_bytes=10 << 20, segment_bytes=600)
    spool.open()
    for i in range(0, 12, 2):  # batches of 2; small files: several of them
        _write(spool, [_rec(i), _rec(i + 1)], start=i)
    spool.close()
    files = sorted(tmp_path.glob("predictions-*.spool"))
    assert len(files) > 2
    # A killed writer: half a frame at the end of its last file.
    with files[-1].open("ab") as f:
        f.write(encode_frame("torn", _rec(99))[:20])
    assert read_segment(files[-1])[1] == 20

    again = Spool(tmp_path, "predictions", max_bytes=10 << 20, segment_bytes=600)
    with caplog.at_level(logging.WARNING):
        again.open()
    assert "torn tail" in caplog.text and again.pending_records == 12
    _write(again, [_rec(12)], start=12)  # a new file: never after the torn tail
    assert len(sorted(tmp_path.glob("predictions-*.spool"))) == len(files) + 1
    assert _drain_keys(again) == [f"k{i}" for i in range(13)]
    with again.lock:
        assert again.finish_locked()
    assert again.pending_records == 0 and not list(tmp_path.glob("*.spool"))
    again.close()


@pytest.mark.unit
def test_one_process_per_folder_and_the_size_bound(tmp_path: Path) -> None:
    first = Spool(tmp_path, "predictions", max_bytes=2000)
    first.open()
    with pytest.raises(SeamlessError, match="in use by another serving process"):
        Spool(tmp_path, "predictions", max_bytes=2000).open()
    other = Spool(tmp_path, "feedback", max_bytes=2000)  # its own lock
    other.open()
    other.close()
    with pytest.raises(SpoolFull, match="spool_max_bytes"):
        for i in range(50):
            _write(first, [_rec(i)], start=i)
    assert first.disk_bytes <= 2000
    first.close()
    with pytest.raises(SeamlessError, match="spool_max_bytes"):
        ServeSettings(spool_max_bytes=-1)


@pytest.mark.unit
def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEAMLESS_SERVE_SPOOL_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("SEAMLESS_SERVE_SPOOL_MAX_BYTES", "12345")
    s = ServeSettings.from_env()
    assert s.spool_path() == tmp_path / "s" and s.spool_max_bytes == 12345
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(tmp_path / "ws"))
    assert ServeSettings().spool_path() == tmp_path / "ws" / "spool"


@pytest.mark.unit
def test_unreachable_database_spools_and_a_full_spool_refuses(tmp_path: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    log = SpooledLog(
        PgLog(url, "predictions"),
        Spool(tmp_path, "predictions", 1500),
        background=False,
        close_drain_s=0,
    )
    log.open()
    try:
        log.append([_rec(0)])  # no server: spooled, acknowledged
        assert log.spooling and log.pending == 1 and log.probe() is None
        assert "cannot connect" in log.database
        with pytest.raises(SpoolFull):
            for i in range(1, 50):
                log.append([_rec(i)])
        problem = log.probe()  # readiness: nothing can take records now
        assert problem is not None and "spool_max_bytes" in problem, problem
    finally:
        log.close()


# ---- against PostgreSQL ------------------------------------------------------------


def _spooled(url: str, folder: Path, **kw: Any) -> SpooledLog:
    log = SpooledLog(PgLog(url, "predictions"), Spool(folder, "predictions", 10 << 20), **kw)
    log.open()
    return log


def _keys_in_table(pg_server: PostgresServer, database: str) -> list[str | None]:
    import psycopg2

    conn = psycopg2.connect(
        host=pg_server.host,
        port=pg_server.port,
        user=pg_server.user,
        password=pg_server.password,
        dbname=database,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT log_key FROM seamless_predictions ORDER BY id")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


@pytest.mark.postgres
def test_outage_spools_then_drains_in_order_exactly_once(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    url = fresh_database(pg_server, "spool_order")
    ctl = PgControl.of(pg_server)
    # No drainer thread: what is spooled and when it drains is up to the test (drain()).
    log = _spooled(url, tmp_path, background=False, close_drain_s=0)
    try:
        log.append([_rec(0)])  # direct
        assert not log.spooling and log.pending == 0
        ctl.stop()
        try:
            log.append([_rec(1), _rec(2)])
            log.append([_rec(3)])
            assert log.spooling and log.pending == 3
        finally:
            ctl.start()
        # Back, but a backlog is waiting: a new record queues behind it, not before.
        log.append([_rec(4)])
        assert log.spooling and log.pending == 4
        log.drain()
        assert not log.spooling and log.pending == 0 and log.database == "ok"
        assert not list(tmp_path.glob("*.spool"))
        log.append([_rec(5)])  # direct again
        assert log.pending == 0
    finally:
        log.close()
    got = [r["request_id"] for r in read_pg_records(url, "predictions")]
    assert got == [f"r{i}" for i in range(6)]
    keys = _keys_in_table(pg_server, "spool_order")
    assert len(set(keys)) == 6 and None not in keys


@pytest.mark.postgres
def test_a_batch_sent_twice_is_in_the_table_once(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool cannot advance past a committed batch (a crash in between): re-sent,
    its keys make it a no-op. (A real kill -9: tests/faults/test_prediction_spool.py.)"""
    url = fresh_database(pg_server, "spool_twice")
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    filler = _spooled(unreachable, tmp_path, background=False, close_drain_s=0)
    for i in range(10):
        filler.append([_rec(i)])
    filler.close()

    def crash(n: int) -> None:
        raise RuntimeError("crash after commit")

    log = _spooled(url, tmp_path, background=False, close_drain_s=0)
    monkeypatch.setattr(prediction_spool, "after_drain_commit", crash)
    with pytest.raises(RuntimeError, match="crash after commit"):
        log._drain_once()
    assert len(list(read_pg_records(url, "predictions"))) == 10  # committed...
    assert log.pending == 10  # ... but not moved past
    monkeypatch.setattr(prediction_spool, "after_drain_commit", None)
    log.drain()
    log.close()
    got = [r["request_id"] for r in read_pg_records(url, "predictions")]
    assert got == [f"r{i}" for i in range(10)]


@pytest.mark.postgres
def test_close_drains_a_backlog_while_the_database_answers(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    url = fresh_database(pg_server, "spool_close")
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    filler = _spooled(unreachable, tmp_path, background=False, close_drain_s=0)
    filler.append([_rec(0), _rec(1)])
    filler.close()  # could not drain: left for the next process
    assert filler.pending == 2
    log = _spooled(url, tmp_path, background=False)  # no drainer: close() drains
    assert log.spooling and log.pending == 2
    log.close()
    assert [r["request_id"] for r in read_pg_records(url, "predictions")] == ["r0", "r1"]


@pytest.mark.postgres
def test_a_table_from_before_the_key_column_gets_it(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "spool_migrate")
    # The table as earlier versions created it (no log_key), with a row in it.
    pg_server.execute(
        "CREATE TABLE seamless_predictions (id bigserial PRIMARY KEY, ts timestamptz, "
        "request_id text, idx bigint, entity_id jsonb, route text, model_name text, "
        "model_version text, features jsonb, score double precision, decision boolean, "
        "extra json, logged_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO seamless_predictions (request_id, idx, score) VALUES ('old', 0, 0.5)",
        database="spool_migrate",
    )
    log = PgLog(url, "predictions")
    log.open()
    log.append([_rec(1)], ["key-1"])
    log.append([_rec(1)], ["key-1"])  # the same key again: skipped
    log.append([_rec(2)])  # no key (null): never conflicts
    log.append([_rec(2)])
    log.close()
    got = [r["request_id"] for r in read_pg_records(url, "predictions")]
    assert got == ["old", "r1", "r2", "r2"]
    assert _keys_in_table(pg_server, "spool_migrate") == [None, "key-1", None, None]


@pytest.mark.postgres
def test_serving_answers_and_stays_ready_while_postgres_is_down(
    pg_server: PostgresServer, pg_client: TestClient, pg_url: str, built: dict
) -> None:
    client = pg_client
    ids = built["entities"][:2]
    acked = [client.post("/v1/predict", json={"entity_ids": ids}).json()["request_id"]]
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["prediction_log_pending"] == 0
    ctl = PgControl.of(pg_server)
    ctl.stop()
    try:
        for _ in range(3):
            r = client.post("/v1/predict", json={"entity_ids": ids})
            assert r.status_code == 200, r.text
            acked.append(r.json()["request_id"])
        fb = client.post("/v1/feedback", json={"feedback": [{"request_id": acked[1], "label": 1}]})
        assert fb.status_code == 200, fb.text
        for path in ("/readyz", "/v2/health/ready"):
            ready = client.get(path)
            assert ready.status_code == 200, ready.text  # the database is not needed
            body = ready.json()
            assert body["prediction_log"] == "ok" and body["prediction_log_pending"] == 6
            assert "PostgreSQL predictions log is unavailable" in body["prediction_log_database"]
            assert pg_server.password not in ready.text
        metrics = client.get("/metrics").text
        assert 'seamless_serve_log_spooled_records_total{log="predictions"} 6.0' in metrics
        assert 'seamless_serve_log_spool_pending_records{log="predictions"} 6.0' in metrics
    finally:
        ctl.start()
    service = client.app.state.service  # type: ignore[attr-defined]
    service.predictions.drain()  # the drainer thread does it too, within a second or so
    service.feedback.drain()
    body = client.get("/readyz").json()
    assert body["prediction_log_pending"] == 0 and body["prediction_log_database"] == "ok"
    metrics = client.get("/metrics").text
    assert 'seamless_serve_log_drained_records_total{log="predictions"} 6.0' in metrics
    assert 'seamless_serve_log_spool_pending_records{log="predictions"} 0.0' in metrics
    rows = list(read_log(pg_url, "predictions"))
    # Every acknowledged request, whole, in order, once.
    assert [r["request_id"] for r in rows] == [rid for rid in acked for _ in ids]
    assert [r["entity_id"] for r in rows] == ids * len(acked)
    assert [f["request_id"] for f in read_log(pg_url, "feedback")] == [acked[1]]


@pytest.mark.postgres
def test_full_spool_answers_503_and_is_not_ready(
    pg_server: PostgresServer,
    ws: Path,
    tmp_path: Path,
    serve_config: SeamlessConfig,
    pg_url: str,
    built: dict,
) -> None:
    ids = built["entities"][:2]
    ctl = PgControl.of(pg_server)
    with serving_client(
        tmp_path, serve_config, log_url=pg_url, spool_dir=tmp_path / "s", spool_max_bytes=3000
    ) as client:
        ctl.stop()
        try:
            codes = [client.post("/v1/predict", json={"entity_ids": ids}) for _ in range(8)]
            assert codes[0].status_code == 200, codes[0].text
            refused = codes[-1]
            assert refused.status_code == 503, refused.text
            assert "spool" in refused.json()["detail"] and refused.headers.get("Retry-After")
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "full" in ready.json()["prediction_log"]
        finally:
            ctl.start()
        client.app.state.service.predictions.drain()  # type: ignore[attr-defined]
        assert client.get("/readyz").status_code == 200
    answered = [c.json()["request_id"] for c in codes if c.status_code == 200]
    rows = [r["request_id"] for r in read_log(pg_url, "predictions")]
    assert rows == [rid for rid in answered for _ in ids]
    assert sorted(os.listdir(tmp_path / "s")) == ["feedback.lock", "predictions.lock"]
