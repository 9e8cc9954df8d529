"""A server process for one test or module: started, waited for over HTTP, stopped."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest


@contextmanager
def http_daemon(
    args: list[str],
    log: Path,
    ready_url: str,
    *,
    timeout_s: float = 60.0,
    grace_s: float = 20.0,
    poll_s: float = 0.3,
    tls: ssl.SSLContext | None = None,
    group: bool = False,
    **popen: Any,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` (output to `log`) until GET `ready_url` answers 200, then yield it and
    stop it on exit. Fails the test with the log's tail if the process exits first or
    is not ready within `timeout_s`. `tls`: the context an https `ready_url` is verified
    with. `group`: the process leads a group of its own, stopped whole (a server with
    worker processes). `popen`: more `subprocess.Popen` arguments."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=group, **popen
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{args[0]} exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2, context=tls) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{args[0]} not ready in {timeout_s:.0f} s:\n{log.read_text()[-2000:]}")
            time.sleep(poll_s)
        yield proc
    finally:
        stop(proc, grace_s, group)


def stop(proc: subprocess.Popen[Any], grace_s: float, group: bool = False) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_s`; with `group`, to its
    whole process group (it was started with `start_new_session`), workers included."""

    def send(sig: int) -> None:
        with suppress(ProcessLookupError):  # already gone
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()
    if group:
        send(signal.SIGKILL)  # workers that outlived their parent
