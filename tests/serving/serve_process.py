"""A real `seamless serve` process on a free loopback port, ready before it is yielded.

Used where the test is about the process itself: `kill -9` under load (kill_load.py) and
what the serving process has imported and mapped (test_serving_process.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving_process(
    ws: Path,
    log_path: Path,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """(process, base URL) of a server that answered /readyz 200; stopped on exit
    without grace (SIGTERM, then SIGKILL at once)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with http_daemon(
        [sys.executable, "-m", "pipelines.serve_cli", "--host", "127.0.0.1",
         "--port", str(port), "--workspace", str(ws), "--no-auth", "--poll-seconds", "0",
         "--log-level", "warning", *extra_args],
        log_path, f"{base}/readyz", timeout_s=90, grace_s=0, poll_s=0.2,
        cwd=ROOT, env=env or dict(os.environ),
    ) as proc:  # fmt: skip
        yield proc, base
