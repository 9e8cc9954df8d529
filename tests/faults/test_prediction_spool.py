"""kill -9 of a process spooling prediction records, and of one draining them to a real
PostgreSQL: after a restart nothing acknowledged is lost and nothing is in the table
twice (components/predictions/spool.py).

Deterministic: the child process stops itself at the worst moment through the spool's
test hooks (a batch written but not yet fsynced; a drained batch committed in PostgreSQL
but the spool not yet moved past it) or blocks in its INSERT behind a table lock the
test holds, and is SIGKILLed there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.predictions.postgres import PgLog, read_pg_records
from components.predictions.spool import Spool, SpooledLog, encode_frame
from tests.helpers.postgres import PostgresServer, free_port, pg_server
from tests.serving.pg_control import fresh_database

__all__ = ["pg_server"]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, time
from pathlib import Path
from components.predictions import spool as ps
from components.predictions.postgres import PgLog

mode, url, folder, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
calls = 0

def stop_here(_):
    global calls
    calls += 1
    if calls == n:
        print("stopped", flush=True)
        time.sleep(3600)  # SIGKILLed here

def rec(i):
    return {"ts": "2024-01-01T00:00:00+00:00", "request_id": f"r{i}", "index": 0,
            "entity_id": i, "features": {"x": i}, "score": 0.5, "decision": True}

pg = PgLog(url, "predictions")
if mode == "spool":
    ps.after_write = stop_here  # the n-th batch: written, not fsynced, not acknowledged
    spool = ps.Spool(folder, "predictions", 1 << 30, segment_bytes=4096)
    log = ps.SpooledLog(pg, spool, background=False, close_drain_s=0)
    log.open()
    i = 0
    while True:
        log.append([rec(i)])
        print(f"acked r{i}", flush=True)
        i += 1
else:
    if n:
        ps.after_drain_commit = stop_here  # the n-th batch: committed, spool not advanced
    log = ps.SpooledLog(pg, ps.Spool(folder, "predictions", 1 << 30), batch_records=100,
                        background=False, close_drain_s=0)
    log.open()
    print("draining", flush=True)
    log.drain()
    print("drained", flush=True)
"""


def _rec(i: int) -> dict[str, Any]:
    return {
        "ts": "2024-01-01T00:00:00+00:00",
        "request_id": f"r{i}",
        "index": 0,
        "entity_id": i,
        "features": {"x": i},
        "score": 0.5,
        "decision": True,
    }


@pytest.fixture()
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:  # never leave one behind
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _child(
    children: list[subprocess.Popen[str]], mode: str, url: str, folder: Path, n: int
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, url, str(folder), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    children.append(proc)
    return proc


def _read_until(proc: subprocess.Popen[str], last: str) -> list[str]:
    assert proc.stdout is not None
    lines = []
    while True:
        line = proc.stdout.readline()
        assert line, (
            f"child exited early ({proc.wait()}): {proc.stderr.read() if proc.stderr else ''}"
        )
        lines.append(line.strip())
        if line.strip() == last:
            return lines


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def _fill(folder: Path, n: int) -> None:
    """A spool of `n` records from a process that never reached PostgreSQL."""
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    log = SpooledLog(
        PgLog(unreachable, "predictions"),
        Spool(folder, "predictions", 1 << 30, segment_bytes=64 << 10),
        background=False,
        close_drain_s=0,
    )
    log.open()
    for start in range(0, n, 10):
        log.append([_rec(i) for i in range(start, start + 10)])
    log.close()


def _spool_and_database(
    pg_server: PostgresServer, tmp_path: Path, n: int, database: str
) -> tuple[Path, str]:
    """A spool of `n` records (`_fill`) and the URL of a new, empty database to drain it to."""
    folder = tmp_path / "spool"
    _fill(folder, n)
    return folder, fresh_database(pg_server, database)


def _redrain(url: str, folder: Path) -> None:
    """A restarted process: drains what is left."""
    log = SpooledLog(
        PgLog(url, "predictions"),
        Spool(folder, "predictions", 1 << 30),
        background=False,
        close_drain_s=0,
    )
    log.open()
    log.drain()
    assert log.pending == 0 and not list(folder.glob("*.spool"))
    log.close()


def _table(url: str) -> list[str]:
    return [r["request_id"] for r in read_pg_records(url, "predictions")]


def test_kill_9_while_spooling_loses_nothing_acknowledged(
    pg_server: PostgresServer, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    folder = tmp_path / "spool"
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    proc = _child(children, "spool", unreachable, folder, 120)
    lines = _read_until(proc, "stopped")
    _kill(proc)
    acked = [line.split()[1] for line in lines if line.startswith("acked ")]
    assert acked == [f"r{i}" for i in range(119)]
    files = sorted(folder.glob("predictions-*.spool"))
    assert len(files) > 1  # the kill came several files in
    # A kill can also cut a write short: the next frame, half written.
    with files[-1].open("ab") as f:
        f.write(encode_frame("torn", _rec(999))[:17])

    url = fresh_database(pg_server, "spool_kill_write")
    _redrain(url, folder)
    got = _table(url)
    # Every acknowledged record, in order, once; the 120th was written (in the page
    # cache) before the kill but never acknowledged: present is allowed, torn is not.
    assert got[: len(acked)] == acked
    assert got[len(acked) :] in ([], ["r119"]), got[len(acked) :]


def test_kill_9_after_a_drained_batch_commits_gives_no_duplicates(
    pg_server: PostgresServer, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    folder, url = _spool_and_database(pg_server, tmp_path, 1000, "spool_kill_drain")
    proc = _child(children, "drain", url, folder, 3)
    _read_until(proc, "stopped")
    _kill(proc)
    assert _table(url) == [f"r{i}" for i in range(300)]  # three batches committed
    _redrain(url, folder)  # re-sends from the start of the unfinished file
    assert _table(url) == [f"r{i}" for i in range(1000)]


def test_kill_9_inside_a_drain_insert_gives_no_loss(
    pg_server: PostgresServer, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    import psycopg2

    folder, url = _spool_and_database(pg_server, tmp_path, 250, "spool_kill_insert")
    table = PgLog(url, "predictions")
    table.open()  # the table exists, so the test can lock it
    table.close()
    blocker = psycopg2.connect(url)
    try:
        with blocker.cursor() as cur:  # inserts wait for this transaction to end
            cur.execute("LOCK TABLE seamless_predictions IN SHARE ROW EXCLUSIVE MODE")
        proc = _child(children, "drain", url, folder, 0)
        _read_until(proc, "draining")
        _wait_for_blocked_insert(url)
        _kill(proc)
    finally:
        blocker.rollback()
        blocker.close()
    _redrain(url, folder)
    assert _table(url) == [f"r{i}" for i in range(250)]


def _wait_for_blocked_insert(url: str) -> None:
    """Until the child's INSERT waits on the table lock (a condition, not a duration)."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + 60
        while True:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO seamless_predictions%'"
                )
                if cur.fetchone()[0]:
                    return
            assert time.monotonic() < deadline, "the drain's INSERT never reached the lock"
            time.sleep(0.05)
    finally:
        conn.close()
