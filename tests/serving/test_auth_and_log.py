"""Bearer-token roles, and the append-only log's durability rules."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.predictions.files import AppendLog, read_records, segments
from components.predictions.records import ReadStats
from components.serve.api.app import create_app
from components.serve.api.auth import TokenAuth, parse_tokens_file
from tests.serving.conftest import make_settings

pytestmark = pytest.mark.serving
PREDICT_TOKEN = "tok-predict-0123456789"
ADMIN_TOKEN = "tok-admin-9876543210"


def test_roles_are_enforced_and_tokens_never_logged(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# comment\n{PREDICT_TOKEN}:predict\n\n{ADMIN_TOKEN}:admin\n")
    settings = make_settings(tmp_path, auth_disabled=False, tokens_file=tokens)
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings, serve_config)) as client:
        body = {"entity_ids": [100000]}
        assert client.post("/v1/predict", json=body).status_code == 401
        wrong = client.post("/v1/predict", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        basic = client.post("/v1/predict", json=body, headers={"Authorization": PREDICT_TOKEN})
        assert basic.status_code == 401
        predict = {"Authorization": f"Bearer {PREDICT_TOKEN}"}
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post("/v1/predict", json=body, headers=predict).status_code == 200
        assert client.post("/v1/predict", json=body, headers=admin).status_code == 200
        assert client.post("/admin/reload", headers=predict).status_code == 403
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers=admin).status_code == 200
        # Probes and metrics stay open for the kubelet and Prometheus.
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200
    assert PREDICT_TOKEN not in caplog.text and ADMIN_TOKEN not in caplog.text


def test_auth_is_never_silently_off(tmp_path: Path, serve_config: SeamlessConfig) -> None:
    with pytest.raises(SeamlessError, match="No serving tokens configured"):
        create_app(make_settings(tmp_path, auth_disabled=False), serve_config)
    bad = tmp_path / "bad"
    bad.write_text(f"{PREDICT_TOKEN}:root\n")
    with pytest.raises(SeamlessError, match="line 1") as err:
        parse_tokens_file(bad)
    assert PREDICT_TOKEN not in str(err.value)
    auth = TokenAuth.from_sources(None, json.dumps({"t1": ["admin"], "t2": "predict"}), False)
    assert auth.roles_of("Bearer t1") == {"admin", "predict"}
    assert auth.roles_of("bearer t2") == {"predict"}
    assert auth.roles_of("Bearer t3") is None


def test_reader_skips_torn_tail_and_counts_bad_lines(tmp_path: Path) -> None:
    log = AppendLog(tmp_path, "p")
    log.open()
    log.append([{"a": 1}, {"a": 2}])
    log.close()
    seg = segments(tmp_path, "p")[0]
    with open(seg, "ab") as fh:
        fh.write(b'{"a": 3, "torn')  # what a kill in the middle of a write would leave
    stats = ReadStats()
    assert [r["a"] for r in read_records(tmp_path, "p", stats)] == [1, 2]
    assert stats.torn_tails == [seg.name] and not stats.corrupt_lines


def test_rotation_and_group_commit_keep_every_record(tmp_path: Path) -> None:
    log = AppendLog(tmp_path, "p", segment_bytes=2000)
    log.open()

    def writer(k: int) -> None:
        for i in range(50):
            log.append([{"k": k, "i": i, "pad": "x" * 40}, {"k": k, "i": i, "second": True}])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(segments(tmp_path, "p")) > 5
    assert all(os.path.getsize(p) <= 2000 for p in segments(tmp_path, "p"))
    stats = ReadStats()
    records = list(read_records(tmp_path, "p", stats))
    assert len(records) == 400 and not stats.torn_tails and not stats.corrupt_lines
    for k in range(4):  # each writer's batches stay in order and whole
        mine = [r["i"] for r in records if r["k"] == k and "pad" in r]
        assert mine == list(range(50))


def test_async_append_shares_fsyncs_and_keeps_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop's path: writes inline, one fsync per loop iteration (group commit);
    a full segment is rotated in a worker thread; every record is there, in order."""
    import asyncio

    log = AppendLog(tmp_path, "p", segment_bytes=3000)
    log.open()
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)

    async def writer(k: int) -> None:
        for i in range(30):
            await log.append_async([{"k": k, "i": i, "pad": "x" * 40}])

    async def main() -> None:
        await asyncio.gather(*(writer(k) for k in range(8)))

    asyncio.run(main())
    log.close()
    assert len(fsyncs) < 240  # concurrent requests shared fsyncs
    assert len(segments(tmp_path, "p")) > 2  # rotation happened off the loop
    stats = ReadStats()
    records = list(read_records(tmp_path, "p", stats))
    assert len(records) == 240 and not stats.torn_tails and not stats.corrupt_lines
    for k in range(8):
        assert [r["i"] for r in records if r["k"] == k] == list(range(30))


def test_async_append_fails_when_the_fsync_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync error reaches the awaiting request as OSError (never acknowledged)."""
    import asyncio
    import errno

    log = AppendLog(tmp_path, "p")
    log.open()

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError) as err:
        asyncio.run(log.append_async([{"a": 1}]))
    assert err.value.errno == errno.EIO
    monkeypatch.undo()
    log.close()


def test_write_mode_answers_without_fsync_and_syncs_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--log-sync write`: appends return once written (no fsync on the request path);
    the background thread fsyncs them within its interval, and close syncs the rest."""
    import asyncio
    import time

    fsyncs: list[float] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(time.monotonic())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log = AppendLog(tmp_path, "p", sync_every_s=0.2)
    log.open()
    before = len(fsyncs)  # the new segment's directory fsync

    async def main() -> None:
        for i in range(50):
            await log.append_async([{"i": i}])

    asyncio.run(main())
    log.append([{"i": 50}])
    assert len(fsyncs) == before  # nothing waited for the disk
    assert [r["i"] for r in read_records(tmp_path, "p")] == list(range(51))
    deadline = time.monotonic() + 5
    while log._synced < log._written and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log._synced == log._written and len(fsyncs) > before  # the flusher ran
    log.append([{"i": 51}])
    log.close()  # stops the flusher, fsyncs the tail
    assert log._synced <= log._written and len(list(read_records(tmp_path, "p"))) == 52


def test_log_sync_mode_is_checked(tmp_path: Path) -> None:
    with pytest.raises(SeamlessError, match=r"log_sync .*fsync, write.*'sometimes'"):
        make_settings(tmp_path, log_sync="sometimes")


def test_a_removed_log_segment_is_noticed_by_the_probe_and_replaced(tmp_path: Path) -> None:
    """Lines written to an unlinked segment would be lost: the readiness probe notices
    the segment (or its whole folder) gone and starts a new one."""
    log = AppendLog(tmp_path / "p", "p")
    log.open()
    assert log.probe() is None
    log.append([{"a": 1}])
    first = log.segment
    assert first is not None
    first.unlink()
    assert log.probe() is None and log.segment != first and log.segment.exists()
    log.append([{"a": 2}])
    shutil.rmtree(tmp_path / "p")
    assert log.probe() is None and log.segment.exists()  # the folder is made again
    log.append([{"a": 3}])
    log.close()
    assert "not open" in (log.probe() or "")  # a closed log is not reopened by a probe
    assert [r["a"] for r in read_records(tmp_path / "p", "p", ReadStats())] == [3]


def test_a_write_notices_a_removed_segment_within_the_check_interval(tmp_path: Path) -> None:
    """Between probes, writes check too (at most every SEGMENT_CHECK_S): lines after
    that go to a new segment instead of the unlinked file, on both write paths."""
    import asyncio
    import time

    from components.predictions.files import SEGMENT_CHECK_S

    log = AppendLog(tmp_path / "p", "p")
    log.open()
    log.append([{"a": 1}])
    first = log.segment
    assert first is not None
    first.unlink()
    time.sleep(SEGMENT_CHECK_S * 1.5)
    log.append([{"a": 2}])
    assert log.segment != first and log.segment is not None and log.segment.exists()
    second = log.segment
    second.unlink()
    time.sleep(SEGMENT_CHECK_S * 1.5)
    asyncio.run(log.append_async([{"a": 3}]))
    assert log.segment not in (first, second)
    log.close()
    assert [r["a"] for r in read_records(tmp_path / "p", "p", ReadStats())] == [3]


def test_readyz_reports_a_prediction_log_that_cannot_take_lines(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    from tests.serving.conftest import serving_client

    with serving_client(tmp_path, serve_config) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["prediction_log"] == "ok"
        service = client.app.state.service  # type: ignore[attr-defined]
        folder = service.predictions.directory
        shutil.rmtree(folder)
        folder.write_text("not a folder")  # no segment can be started there
        try:
            down = client.get("/readyz")
            assert down.status_code == 503
            assert "cannot start a segment" in down.json()["prediction_log"]
            assert client.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 503
        finally:
            folder.unlink()
        assert client.get("/readyz").status_code == 200  # healed: a new segment
        assert client.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 200
