"""`kill -9` under load: every acknowledged prediction is in the log, every record parses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from components.serve.prediction_log import ReadStats, read_records
from components.serve.service import PREDICTIONS

pytestmark = [pytest.mark.serving, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kill_9_under_load_loses_no_acknowledged_prediction(ws: Path, built: dict) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_file = (ws / "serve-kill.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.serve_cli", "--host", "127.0.0.1", "--port", str(port),
         "--workspace", str(ws), "--no-auth", "--poll-seconds", "0", "--log-level", "warning"],
        cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (ws / "serve-kill.log").read_text()[-2000:]
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)

        acked: list[tuple[str, list[int]]] = []
        lock = threading.Lock()
        stop = threading.Event()
        entities = built["entities"]

        def load(k: int) -> None:
            with requests.Session() as http:
                i = k
                while not stop.is_set():
                    ids = [entities[(i + j) % len(entities)] for j in range(1 + i % 7)]
                    i += 4
                    try:
                        r = http.post(f"{base}/v1/predict", json={"entity_ids": ids}, timeout=5)
                    except requests.RequestException:
                        return  # the server died mid-request: not acknowledged
                    if r.status_code == 200:
                        with lock:
                            acked.append((r.json()["request_id"], ids))

        threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        assert _wait(lambda: len(acked) >= 100, 30), f"only {len(acked)} answers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()

    stats = ReadStats()
    by_request: dict[str, list[int]] = {}
    for rec in read_records(ws / "predictions", PREDICTIONS, stats):
        assert {"request_id", "entity_id", "features", "score", "model_version", "ts"} <= set(rec)
        by_request.setdefault(rec["request_id"], []).append(rec["entity_id"])
    assert not stats.corrupt_lines, stats.corrupt_lines
    missing = [rid for rid, ids in acked if by_request.get(rid) != ids]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged requests not logged whole"


def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
