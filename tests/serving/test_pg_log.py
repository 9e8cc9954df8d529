"""The PostgreSQL prediction/feedback log, against a real PostgreSQL server.

Round trip (same records as the JSON-lines log), group commit, idempotent table
creation, the serving app logging to it, 503 while PostgreSQL is stopped when spooling
is off (with the spool: tests/serving/test_prediction_spool.py) and recovery once it is
back, and monitoring reading predictions and feedback from the tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.monitor.traffic import labelled, read_traffic
from components.predictions.files import AppendLog, read_records
from components.predictions.postgres import (
    LogUnavailable,
    PgLog,
    read_pg_records,
    redact,
)
from components.predictions.reader import read_log
from components.predictions.records import ReadStats
from components.predictions.spool import SpooledLog
from components.serve.api.app import create_app
from components.serve.logs import make_logs
from components.serve.settings import ServeSettings
from tests.helpers.late_relay import late_port
from tests.helpers.postgres import PostgresServer, free_port, pg_server
from tests.serving.conftest import make_settings, serving_client
from tests.serving.pg_control import PgControl, fresh_database

__all__ = ["pg_server"]
pytestmark = [pytest.mark.serving, pytest.mark.postgres]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _prediction(i: int, **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": _now(),
        "request_id": f"r{i // 3}",
        "index": i % 3,
        "entity_id": 1000 + i,
        "route": "/v1/predict",
        "model_name": "credit_risk",
        "model_version": "3",
        "features": {"age": 30 + i, "income": 1234.5, "segment": "b", "missing": None},
        "score": 0.25 + i / 1000,
        "decision": i % 2 == 0,
    }
    rec.update(over)
    return rec


def _odd_records() -> list[dict[str, Any]]:
    """Values that do not fit their typed column must still read back exactly."""
    return [
        _prediction(0),
        _prediction(1, entity_id="cust-7", index=None),
        _prediction(2, entity_id=None, score=1, model_version=7),  # int score, int version
        _prediction(3, ts="2024-05-01T12:00:00Z"),  # not the canonical isoformat
        _prediction(4, ts="2024-05-01T14:00:00+02:00", route=None),
        _prediction(5, features={"s": "nul\x00inside", "nested": {"a": [1, 2.5, None]}}),
        _prediction(6, request_id="nul\x00id", entity_id="e\x00"),
        _prediction(7, extra_field={"x": 1}, decision=None, score=0.0),
        _prediction(8, index=2**70),  # beyond bigint
    ]


def test_records_round_trip_like_the_jsonl_log(pg_server: PostgresServer, tmp_path: Path) -> None:
    url = fresh_database(pg_server, "roundtrip")
    records = _odd_records()
    pg = PgLog(url, "predictions")
    pg.open()
    files = AppendLog(tmp_path, "predictions")
    files.open()
    for start in range(0, len(records), 4):
        pg.append(records[start : start + 4])
        files.append(records[start : start + 4])
    pg.close()
    files.close()

    stats = ReadStats()
    from_pg = list(read_pg_records(url, "predictions", stats))
    assert from_pg == records == list(read_records(tmp_path, "predictions"))
    assert stats.records == len(records) and not stats.torn_tails and not stats.corrupt_lines
    # The generic reader dispatches on the URL scheme (SQLAlchemy's spelling works too).
    sa_url = url.replace("postgresql://", "postgresql+psycopg2://")
    assert list(read_log(sa_url, "predictions")) == records
    assert list(read_log(tmp_path, "predictions")) == records

    feedback: list[dict[str, Any]] = [
        {"ts": _now(), "request_id": "r0", "entity_id": 1000, "index": None, "label": 1},
        {"ts": _now(), "request_id": "r1", "entity_id": None, "index": 2, "label": "yes"},
        {"ts": _now(), "request_id": "r2", "entity_id": None, "index": None, "label": True},
    ]
    fb = PgLog(url, "feedback")
    fb.open()
    fb.append(feedback)
    fb.close()
    assert list(read_pg_records(url, "feedback")) == feedback
    # Typed columns hold the canonical values (queryable with plain SQL on the cluster).
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT entity_id, idx, score, decision FROM seamless_predictions ORDER BY id")
        assert cur.fetchone() == (1000, 0, 0.25, True)
        cur.execute("SELECT label FROM seamless_feedback ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1, "yes", True]
    conn.close()


def test_missing_table_reads_empty_and_bad_url_is_clear(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "empty")
    assert list(read_pg_records(url, "predictions")) == []
    wrong = url.replace(pg_server.password, "wrong-password")
    with pytest.raises(SeamlessError) as err:
        list(read_pg_records(wrong, "predictions"))
    assert "wrong-password" not in str(err.value) and "***" in str(err.value)
    assert redact(wrong) == wrong.replace("wrong-password", "***")
    with pytest.raises(SeamlessError, match="postgresql://"):
        ServeSettings(log_url="mysql://u@h/db")


def test_table_creation_is_idempotent_and_concurrent(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "ddl")
    logs = [PgLog(url, "predictions") for _ in range(6)]
    errors: list[BaseException] = []

    def go(log: PgLog, i: int) -> None:
        try:
            log.open()
            log.append([_prediction(i)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(log, i)) for i, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for log in logs:
        log.close()
    again = PgLog(url, "predictions")  # a restart: table exists, nothing lost
    again.open()
    again.append([_prediction(99)])
    again.close()
    assert len(list(read_pg_records(url, "predictions"))) == 7


def test_group_commit_under_concurrency(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "group")
    log = PgLog(url, "predictions")
    log.open()
    n_threads, per_thread = 16, 40

    def go(k: int) -> None:
        for j in range(per_thread):
            log.append([_prediction(k * 1000 + j, request_id=f"t{k}-{j}")])

    threads = [threading.Thread(target=go, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    ids = [r["request_id"] for r in read_pg_records(url, "predictions")]
    assert sorted(ids) == sorted(f"t{k}-{j}" for k in range(n_threads) for j in range(per_thread))
    # Every append returned after a commit; concurrent ones shared commits.
    assert log.commits < n_threads * per_thread, log.commits


def test_refused_record_fails_alone(pg_server: PostgresServer) -> None:
    url = fresh_database(pg_server, "refused")
    log = PgLog(url, "predictions")
    log.open()
    log.append([_prediction(0)])
    # A constraint the server enforces: a refused batch fails alone and clearly (OSError).
    pg_server.execute(
        "ALTER TABLE seamless_predictions ADD CONSTRAINT sane CHECK (score < 100)",
        database="refused",
    )
    with pytest.raises(LogUnavailable, match="refused"):
        log.append([_prediction(1, score=500.0)])
    log.append([_prediction(2)])  # the connection is still usable
    log.close()
    assert [r["entity_id"] for r in read_pg_records(url, "predictions")] == [1000, 1002]


@pytest.fixture()
def unspooled_client(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig, pg_url: str
) -> Iterator[TestClient]:
    """Spooling off (spool_max_bytes=0): PostgreSQL's outage is the log's outage."""
    with serving_client(tmp_path, serve_config, log_url=pg_url, spool_max_bytes=0) as c:
        yield c


def test_app_logs_predictions_and_feedback_to_postgres(
    pg_client: TestClient, pg_url: str, built: dict, tmp_path: Path
) -> None:
    ids = built["entities"][:4]
    r = pg_client.post("/v1/predict", json={"entity_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    rows = [x for x in read_log(pg_url, "predictions") if x["request_id"] == body["request_id"]]
    assert [x["entity_id"] for x in rows] == ids
    assert [x["score"] for x in rows] == [p["score"] for p in body["predictions"]]
    assert rows[0]["model_version"] == built["version"] and rows[0]["route"] == "/v1/predict"
    f = pg_client.post(
        "/v1/feedback", json={"feedback": [{"request_id": body["request_id"], "label": 1}]}
    )
    assert f.status_code == 200 and f.json() == {"recorded": 1}
    fb = list(read_log(pg_url, "feedback"))
    assert fb[-1]["request_id"] == body["request_id"] and fb[-1]["label"] == 1
    assert not (tmp_path / "predictions").exists()  # the file log was not used


def test_without_spool_503_while_postgres_is_down_and_recovery(
    pg_server: PostgresServer, unspooled_client: TestClient, pg_url: str, built: dict
) -> None:
    pg_client = unspooled_client
    ids = built["entities"][:2]
    ok = pg_client.post("/v1/predict", json={"entity_ids": ids})
    assert ok.status_code == 200, ok.text
    assert pg_client.get("/readyz").json()["prediction_log"] == "ok"
    ctl = PgControl.of(pg_server)
    ctl.stop()
    try:
        ready = pg_client.get("/readyz")  # the probe finds the database gone
        assert ready.status_code == 503, ready.text
        assert "PostgreSQL predictions log is unavailable" in ready.json()["prediction_log"]
        assert pg_server.password not in ready.text
        down = pg_client.post("/v1/predict", json={"entity_ids": ids})
        assert down.status_code == 503, down.text
        assert "prediction log cannot be written" in down.json()["detail"]
        assert "PostgreSQL predictions log is unavailable" in down.json()["detail"]
        assert pg_server.password not in down.text
        assert down.headers.get("Retry-After")
        fb = pg_client.post("/v1/feedback", json={"feedback": [{"request_id": "x", "label": 0}]})
        assert fb.status_code == 503 and "feedback log" in fb.json()["detail"], fb.text
    finally:
        ctl.start()
    # Back without restarting the app (after the short reconnect cool-down).
    answered = _retry_until_ok(pg_client, ids)
    assert pg_client.get("/readyz").status_code == 200
    rows = {x["request_id"] for x in read_log(pg_url, "predictions")}
    assert ok.json()["request_id"] in rows and answered in rows
    assert len(rows) == 2  # the refused request was never logged, nor acknowledged


def test_app_starts_while_postgres_is_down(
    pg_server: PostgresServer, ws: Path, built: dict, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    url = fresh_database(pg_server, "late")
    ids = built["entities"][:1]
    ctl = PgControl.of(pg_server)
    ctl.stop()
    running = False
    try:
        settings = make_settings(tmp_path, log_url=url, spool_dir=tmp_path / "spool")
        app = create_app(settings, serve_config)
        with TestClient(app) as client:  # starts: the outage is logged, not fatal
            r = client.post("/v1/predict", json={"entity_ids": ids})
            assert r.status_code == 200, r.text  # answered: the record is spooled
            assert client.get("/readyz").json()["prediction_log_pending"] == 1
            ctl.start()
            running = True
            app.state.service.predictions.drain()  # what the drainer thread does anyway
            rid = _retry_until_ok(client, ids)
    finally:
        if not running:
            ctl.start()
    assert [x["request_id"] for x in read_log(url, "predictions")] == [
        r.json()["request_id"],
        rid,
    ]


def test_unreachable_port_fails_fast(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    spooled, _ = make_logs(make_settings(tmp_path, log_url=url, spool_dir=tmp_path / "s"))
    assert isinstance(spooled, SpooledLog) and isinstance(spooled.pg, PgLog)
    preds, feedback = make_logs(make_settings(tmp_path, log_url=url, spool_max_bytes=0))
    assert isinstance(preds, PgLog) and isinstance(feedback, PgLog)
    preds.open()  # logged, not raised
    with pytest.raises(LogUnavailable, match="cannot connect"):
        preds.append([_prediction(0)])
    with pytest.raises(LogUnavailable):  # within the cool-down: no new attempt
        preds.append([_prediction(0)])


def _retry_until_ok(client: TestClient, ids: list[int], timeout_s: float = 20.0) -> str:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        r = client.post("/v1/predict", json={"entity_ids": ids})
        if r.status_code == 200:
            return str(r.json()["request_id"])
        assert r.status_code == 503, r.text
        assert time.monotonic() < deadline, f"still failing: {r.text}"
        time.sleep(0.2)


def test_monitor_reads_predictions_and_feedback_from_postgres(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(pg_server, "monitor")
    preds = [_prediction(i, request_id=f"r{i}", index=0) for i in range(20)]
    feedback = [
        {"ts": _now(), "request_id": f"r{i}", "entity_id": None, "index": 0, "label": i // 2 % 2}
        for i in range(0, 20, 2)
    ]
    settings = make_settings(tmp_path / "files")
    file_logs = make_logs(settings)
    pg_logs = make_logs(make_settings(tmp_path / "unused", log_url=url, spool_dir=tmp_path / "s"))
    for log, records in zip((*file_logs, *pg_logs), (preds, feedback) * 2, strict=True):
        log.open()
        log.append(records)
        log.close()

    from_files = read_traffic(tmp_path / "files")
    from_pg = read_traffic(tmp_path / "nothing-here", log_url=url)
    pd.testing.assert_frame_equal(from_pg.predictions, from_files.predictions)
    pd.testing.assert_frame_equal(from_pg.feedback, from_files.feedback)
    assert len(from_pg.predictions) == 20 and len(from_pg.feedback) == 10
    joined = labelled(from_pg.predictions, from_pg.feedback, 1)
    assert len(joined) == 10 and set(joined["label"]) == {0.0, 1.0}
    # The monitoring step on the cluster gets the URL the way serving does: from the env.
    monkeypatch.setenv("SEAMLESS_SERVE_LOG_URL", url)
    pd.testing.assert_frame_equal(
        read_traffic(tmp_path / "nothing-here").predictions, from_files.predictions
    )


def test_lineage_finds_a_request_in_the_postgres_log(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.governance.lineage import find_request
    from components.monitor.traffic import log_location

    url = fresh_database(pg_server, "lineage")
    log = PgLog(url, "predictions")
    log.open()
    log.append([_prediction(i, request_id="wanted" if i < 2 else "other") for i in range(4)])
    log.close()
    monkeypatch.setenv("SEAMLESS_SERVE_LOG_URL", url)
    found = find_request("wanted")
    assert found["request_id"] == "wanted"
    with pytest.raises(SeamlessError, match="not in the prediction log at postgresql://") as err:
        find_request("missing")
    password = url.split("@")[0].rsplit(":", 1)[-1]
    assert password not in str(err.value) and password not in log_location(tmp_path)


def test_write_mode_commits_without_waiting_for_the_wal_flush(
    pg_server: PostgresServer,
) -> None:
    """`--log-sync write` on PostgreSQL: the log's session has synchronous_commit off; the
    default leaves the server's own setting (the test server's is `off` for speed)."""
    url = fresh_database(pg_server, "asynccommit")
    import psycopg2

    from components.predictions.postgres import libpq_url

    with psycopg2.connect(libpq_url(url)) as plain, plain.cursor() as cur:
        cur.execute("SHOW synchronous_commit")
        server_default = cur.fetchone()[0]
    for durable in (True, False):
        log = PgLog(url, "predictions", synchronous_commit=durable)
        log.open()
        log.append([_prediction(1, request_id=f"r-{durable}")])
        with log._connection().cursor() as cur:
            cur.execute("SHOW synchronous_commit")
            assert cur.fetchone()[0] == (server_default if durable else "off")
        log.close()
    assert len(list(read_pg_records(url, "predictions"))) == 2


def test_reader_first_connection_waits_for_a_database_not_reachable_yet(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitoring step is a fresh pod: its first connection may be refused (#14 A.1)."""
    url = fresh_database(pg_server, "late_reader")
    log = PgLog(url, "predictions")
    log.append([_prediction(0)])
    log.close()
    monkeypatch.setenv("SEAMLESS_CONNECT_RETRY_S", "20")
    with late_port(pg_server.port) as port:
        late = url.replace(f":{pg_server.port}/", f":{port}/")
        assert [r["entity_id"] for r in read_pg_records(late, "predictions")] == [1000]
