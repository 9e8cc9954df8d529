"""Spark's scratch space in local mode: one folder per process, swept once its process is
gone.

Spark removes its block-manager folders when its JVM shuts down, but a killed step (a
timeout, an OOM kill, Ctrl-C twice) leaves them behind: gigabytes of shuffle files in /tmp
on every killed run. Each process holds an exclusive lock on its own folder while it
lives; a folder whose lock can be taken belongs to no living process and is removed when
the next session starts. A lock, not a process id: ids are reused, and containers sharing
a /tmp see each other's ids as dead.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT_NAME = "seamless-spark-local"
_LOCK = ".owner.lock"
_held: dict[Path, IO[bytes]] = {}
"""This process' folders and their open, locked lock files (closed: released)."""


def scratch_dir(root: Path | None = None) -> Path:
    """This process' scratch folder under `root` (default: <tmp>/seamless-spark-local),
    made and locked on first use; the folders of processes that are gone are removed."""
    root = root or Path(tempfile.gettempdir()) / ROOT_NAME
    for own in _held:
        if own.parent == root:
            return own
    root.mkdir(parents=True, exist_ok=True)
    sweep(root)
    own = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    lock = (own / _LOCK).open("wb")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held[own] = lock
    atexit.register(_release, own)
    return own


_SETTLE_S = 60.0
"""A folder this new may be between its making and its locking: left for the next sweep."""


def sweep(root: Path) -> list[Path]:
    """Remove the folders under `root` that no living process holds; returns them."""
    removed: list[Path] = []
    for folder in sorted(root.iterdir()):
        if folder in _held or not folder.is_dir():
            continue
        try:
            if time.time() - folder.stat().st_mtime < _SETTLE_S:
                continue
            with (folder / _LOCK).open("ab") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except BlockingIOError:
            continue  # its process is alive
        except OSError:
            continue  # not ours to read (another user's): left alone
    return removed


def _release(own: Path) -> None:
    lock = _held.pop(own, None)
    shutil.rmtree(own, ignore_errors=True)
    if lock is not None:
        lock.close()
