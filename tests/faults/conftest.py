"""Helpers for fault tests: real processes on 127.0.0.1, always cleaned up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from components.common.net import free_port

VENV_BIN = Path(sys.executable).parent


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group we started (the server and its workers), then reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


class MlflowServer:
    """`mlflow server` with a SQLite backend in a temp folder, one worker, loopback only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 45) -> None:
        hosts = f"127.0.0.1:{self.port},localhost:{self.port}"
        cmd = [
            str(VENV_BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--allowed-hosts", hosts,
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = (self.root / "server.log").open("ab")
        # Own session: the whole process group can be killed, workers included.
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=log, env=env, start_new_session=True, cwd=self.root
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}"
                )
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("mlflow server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path / "mlflow-server")
    server.root.mkdir()
    try:
        yield server
    finally:
        server.kill()
