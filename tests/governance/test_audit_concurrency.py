"""Several real processes appending at once never fork or lose the chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.governance.audit import FileAuditLog

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from components.governance.audit import FileAuditLog
log = FileAuditLog(sys.argv[1])
name, n = sys.argv[2], int(sys.argv[3])
i = 0
while n < 0 or i < n:
    log.append("data_access", f"dataset:{name}", {"writer": name, "i": i}, actor=name)
    i += 1
"""


def _writers(folder: Path, count: int, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), f"w{k}", str(n)], env=env, cwd=ROOT
        )
        for k in range(count)
    ]


def test_six_processes_1200_entries(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    procs = _writers(folder, 6, 200)
    for p in procs:
        assert p.wait(timeout=120) == 0
    log = FileAuditLog(folder)
    res = log.verify()
    assert res.ok, res.message()
    assert res.entries == 1200
    entries = list(log.entries())
    assert [e["seq"] for e in entries] == list(range(1, 1201))
    for k in range(6):  # nothing lost, each writer's own order kept
        mine = [e["details"]["i"] for e in entries if e["actor"] == f"w{k}"]
        assert mine == list(range(200))


def test_killed_writers_never_corrupt_the_chain(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    procs = _writers(folder, 3, -1)
    time.sleep(1.5)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    log = FileAuditLog(folder)
    first = log.verify()
    # A kill can at worst leave a torn last line; never a broken chain.
    assert first.status in ("ok", "torn_tail"), first.message()
    assert first.entries > 0
    log.append("deployment", "model:m/1", actor="after-crash")
    after = log.verify()
    assert after.ok, after.message()
    assert after.entries >= first.entries + 1
