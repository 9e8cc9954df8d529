"""Durable writes shared by the append-only logs (audit trail, prediction log, spool) and
the files written whole (configs, records, local objects)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PRIVATE_FILE = 0o600
"""Files holding predictions, feedback or audit entries: the owner only (at rest)."""


def private_dir(directory: Path) -> None:
    """Create the folder (and its parents) if missing, the folder itself 0700: what it
    holds (predictions, audit entries) is for its owner only. An existing folder keeps
    its mode: an operator may have opened it up on purpose."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)


def fsync_dir(directory: Path) -> None:
    """fsync a folder, so a file just created (or renamed) in it survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file to write `path` through: a dot-named temp file beside it (readers that skip
    dot files never see it), fsynced and renamed over `path` only if the block succeeds,
    removed if it fails. Readers see the old file or the new one, never a torn one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.chmod(tmp, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Write a whole file so readers see the old one or the new one, never a torn one,
    and the new one survives a crash (fsynced before the rename)."""
    with atomic_file(path, mode) as fh:
        fh.write(data)


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines in a single write (O_APPEND: concurrent writers do not tear
    them), fsynced; the file is created 0600 (notification payloads, event inboxes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
    try:
        os.write(fd, "".join(f"{line}\n" for line in lines).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
