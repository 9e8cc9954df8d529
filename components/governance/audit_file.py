"""The audit trail as a JSON-lines file: `<workspace>/audit/audit.jsonl`, one writer at a time.

The file format and chain are `audit_chain`'s; see its docstring for how writers serialize
and how a torn tail is recovered.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.common.durable import PRIVATE_FILE, fsync_dir, private_dir, write_atomic
from components.common.env import workspace
from components.common.errors import SeamlessError
from components.governance.audit_chain import (
    AUDIT_RECOVERED,
    AuditLog,
    Chunk,
    entry_line,
    new_entry,
)

LOG_NAME = "audit.jsonl"
LOCK_NAME = "audit.lock"


class FileAuditLog(AuditLog):
    """The JSON-lines backend: `<directory>/audit.jsonl` guarded by `<directory>/audit.lock`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else workspace() / "audit"
        self.path = self.directory / LOG_NAME
        self.lock_path = self.directory / LOCK_NAME

    def describe(self) -> str:
        return str(self.path)

    def _append(
        self, action: str, subject: str, details: Mapping[str, Any] | None, who: str
    ) -> dict[str, Any]:
        """Append one entry and return it once it is on disk."""
        private_dir(self.directory)
        lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # released by close, even if we crash
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
            try:
                if created:
                    fsync_dir(self.directory)  # the new file's name must survive a crash
                last, torn = _tail(fd, self.path)
                if torn:
                    last = self._discard_torn(fd, last, torn, who)
                entry = new_entry(last, action, subject, details, who)
                _write_all(fd, entry_line(entry))
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            os.close(lock_fd)
        return entry

    def _discard_torn(
        self, fd: int, last: dict[str, Any] | None, torn: bytes, who: str
    ) -> dict[str, Any] | None:
        """Move a crashed writer's partial line aside and record that; lock held."""
        keep = os.fstat(fd).st_size - len(torn)
        saved = self.directory / "torn" / f"{time.time_ns()}.partial"
        private_dir(saved.parent)
        write_atomic(saved, torn, mode=PRIVATE_FILE)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        details = {
            "discarded_bytes": len(torn),
            "sha256": hashlib.sha256(torn).hexdigest(),
            "saved_as": str(saved),
        }
        entry = new_entry(last, AUDIT_RECOVERED, "audit", details, who)
        _write_all(fd, entry_line(entry))
        return entry

    def read_after(self, cursor: Any = None) -> Chunk:
        """The lines after `cursor` (inode, byte offset, lines read, the last line read):
        only appended bytes are read. Another file, a shorter one, or one whose last read
        line changed (cut off and appended again) is read from the start."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return Chunk([], None, None, restarted=cursor is not None)
        try:
            st = os.fstat(fd)
            restarted = cursor is not None and not _still_extends(fd, st, cursor)
            inode, offset, count, last = (
                cursor if cursor is not None and not restarted else (st.st_ino, 0, 0, b"")
            )
            data = os.pread(fd, st.st_size - offset, offset)
        finally:
            os.close(fd)
        parts = data.split(b"\n")
        tail = parts.pop()
        if parts:
            last = parts[-1] + b"\n"
        lines: list[tuple[int, bytes | str]] = [(count + i + 1, p) for i, p in enumerate(parts)]
        torn = (count + len(parts) + 1, len(tail)) if tail else None
        after = (inode, offset + len(data) - len(tail), count + len(parts), last)
        return Chunk(lines, after, torn, restarted)


def _still_extends(fd: int, st: os.stat_result, cursor: Any) -> bool:
    """Whether the open file is the one `cursor` read, with its last read line in place."""
    inode, offset, _, last = cursor
    if st.st_ino != inode or st.st_size < offset:
        return False
    return os.pread(fd, len(last), offset - len(last)) == last


def _write_all(fd: int, data: bytes) -> None:
    # One write call puts the whole line in the file (O_APPEND, regular file); the loop
    # only guards against a short write, which regular files do not do in practice.
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _tail(fd: int, path: Path) -> tuple[dict[str, Any] | None, bytes]:
    """(last complete entry or None, torn trailing bytes) read backwards from the end."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, b""
    window = 8192
    while True:
        start = max(0, size - window)
        buf = os.pread(fd, size - start, start)
        cut = buf.rfind(b"\n")  # end of the last complete line
        if cut < 0 and start == 0:
            return None, buf  # the only line is torn
        begin = buf.rfind(b"\n", 0, cut) if cut >= 0 else -1
        if begin >= 0 or start == 0:
            break
        window *= 4  # the last line is longer than the window: look further back
    torn = buf[cut + 1 :]
    last_raw = buf[begin + 1 : cut]
    try:
        last = json.loads(last_raw)
        _ = last["seq"], last["hash"]
    except (ValueError, KeyError, TypeError):
        raise SeamlessError(
            f"The last entry of audit log {path} is unreadable; refusing to extend a broken "
            "chain (run `seamless audit verify`)."
        ) from None
    return last, torn
