"""A real `seamless serve` process on a free loopback port, ready before it is yielded.

Used where the test is about the process itself: `kill -9` under load (kill_load.py) and
what the serving process has imported and mapped (test_serving_process.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.helpers.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving_process(
    ws: Path,
    log_path: Path,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """(process, base URL) of a server that answered /readyz 200; killed on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serve_cli", "--host", "127.0.0.1",
             "--port", str(port), "--workspace", str(ws), "--no-auth", "--poll-seconds", "0",
             "--log-level", "warning", *extra_args],
            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=env or dict(os.environ),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()[-2000:]
                try:
                    if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "server did not become ready"
                time.sleep(0.2)
            yield proc, base
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
