"""Spark's local scratch folders: a killed process's folder is removed by the next
session, a living process's never (components/common/spark_scratch.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.common import spark_scratch
from components.common.spark_scratch import scratch_dir, sweep

pytestmark = pytest.mark.unit

HOLDER = """
import sys, time
from pathlib import Path
from components.common.spark_scratch import scratch_dir
own = scratch_dir(Path(sys.argv[1]))
(own / "blockmgr-1").mkdir()
(own / "blockmgr-1" / "shuffle_0.data").write_bytes(b"x" * 4096)
print(own, flush=True)
time.sleep(120)
"""


def _holder(root: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def _age(folder: Path) -> None:
    """Past the settling time that protects a folder being made."""
    old = time.time() - 3600
    os.utime(folder, (old, old))


def test_a_killed_processs_folder_is_swept_and_a_living_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed, gone = _holder(tmp_path)
    living, kept = _holder(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)  # no shutdown hook runs: Spark's files stay
        killed.wait(10)
        assert (gone / "blockmgr-1" / "shuffle_0.data").is_file()
        _age(gone)
        _age(kept)
        monkeypatch.setattr(spark_scratch, "_held", {})
        own = scratch_dir(tmp_path)
        assert not gone.exists()
        assert (kept / "blockmgr-1" / "shuffle_0.data").is_file()
        assert own.is_dir() and own.name.startswith(f"{os.getpid()}-")
        assert scratch_dir(tmp_path) == own  # one folder a process
        assert sweep(tmp_path) == []  # this process' own folder is held too
    finally:
        living.kill()
        living.wait(10)
    _age(kept)
    assert sweep(tmp_path) == [kept]


def test_a_new_folder_is_left_until_it_settles(tmp_path: Path) -> None:
    (tmp_path / "123-new").mkdir()
    assert sweep(tmp_path) == []
    _age(tmp_path / "123-new")
    assert sweep(tmp_path) == [tmp_path / "123-new"]
