"""Start a real `seamless serve` process, load it from threads, `kill -9` it mid-load.

Shared by the kill tests of the file log (test_kill.py) and the PostgreSQL log
(test_pg_log_kill.py): they differ only in where the log goes and how it is read back.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.serving.serve_process import serving_process

Acked = list[tuple[str, list[int]]]


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def kill_under_load(
    ws: Path,
    entities: list[int],
    log_path: Path,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    threads: int = 4,
    min_acked: int = 100,
) -> tuple[Acked, int]:
    """Serve, load with `threads` clients until `min_acked` answers, SIGKILL the server.
    Returns the acknowledged (request id, entity ids) and the server's pid."""
    acked: Acked = []
    with serving_process(ws, log_path, extra_args, env) as (proc, base):
        lock = threading.Lock()
        stop = threading.Event()

        def load(k: int) -> None:
            with requests.Session() as http:
                i = k
                while not stop.is_set():
                    ids = [entities[(i + j) % len(entities)] for j in range(1 + i % 7)]
                    i += threads
                    try:
                        r = http.post(f"{base}/v1/predict", json={"entity_ids": ids}, timeout=5)
                    except requests.RequestException:
                        return  # the server died mid-request: not acknowledged
                    if r.status_code == 200:
                        with lock:
                            acked.append((r.json()["request_id"], ids))

        workers = [threading.Thread(target=load, args=(k,)) for k in range(threads)]
        for t in workers:
            t.start()
        assert wait_for(lambda: len(acked) >= min_acked, 40), f"only {len(acked)} answers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in workers:
            t.join(timeout=10)
    return acked, proc.pid
