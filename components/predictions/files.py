"""Durable append-only JSON-lines logs (predictions, feedback) in rotated segment files.

Writing: one process appends a batch of records as newline-terminated JSON lines with a
single `os.write` on an `O_APPEND` descriptor, then fsyncs before the request is
answered. Concurrent requests share fsyncs (group commit): a request whose lines an
fsync started after its write already covered does not fsync again. `append` blocks
until then (worker threads); `append_async` (the event loop) writes, and the requests
written in one event-loop iteration then share one fsync, made on the loop once it has
run what was ready (`_GroupCommit`). A new segment is
started on open (never appending after a possibly torn tail of a crashed process),
when the current one passes its size limit, and when its file was deleted or replaced
under the writer (`SEGMENT_CHECK_S`).

With `--log-sync write` (settings.log_sync) a request is answered once its lines are
written, not fsynced, and a background thread fsyncs every `WRITE_SYNC_INTERVAL_S`: a
killed server still loses nothing it answered (the lines are in the OS's page cache),
an OS crash or power cut may lose up to that interval; on PostgreSQL the same choice is
`synchronous_commit = off`.

Reading: a line without its terminating newline is the torn tail of a killed writer
and is skipped; so is (and counted) any line that does not parse, which a reader can
therefore always detect.

A batch run's records go to one Parquet file instead (`batch_segment.py`), listed and
read with the JSON-lines segments (`segments`, `read_records`).

On the cluster the same records go to PostgreSQL tables instead (`postgres.py`);
serving's `make_logs` picks the implementation from its settings and `reader.read_log`
reads either.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.common.durable import PRIVATE_FILE, fsync_dir, private_dir
from components.predictions.batch_segment import SUFFIX as BATCH_SUFFIX
from components.predictions.batch_segment import read_segment
from components.predictions.records import LogQuery, ReadStats

SUFFIX = ".jsonl"
WRITE_SYNC_INTERVAL_S = 1.0
"""`--log-sync write`: how often the background thread fsyncs what was written."""
SEGMENT_CHECK_S = 0.05
"""Longest time lines can go on into a segment deleted or replaced under the writer
(lost with the file) before a write or a readiness probe notices and starts a new one."""
log = logging.getLogger(__name__)


class AppendLog:
    """Append-only segmented JSON-lines log in one folder, for one writing process."""

    def __init__(
        self,
        directory: Path,
        prefix: str,
        segment_bytes: int = 64 << 20,
        sync_every_s: float | None = None,
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.segment_bytes = segment_bytes
        # None: a request is answered once its lines are fsynced (the default). A number
        # (`--log-sync write`): answered once written (a killed process loses nothing
        # written; an OS crash or power cut may lose up to this many seconds of lines),
        # fsynced by a background thread this often.
        self.sync_every_s = sync_every_s
        self._flusher: threading.Thread | None = None
        self._flusher_stop = threading.Event()
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fd: int | None = None
        self._opened = False  # between open() and close(): what probe() may reopen
        self._checked_at = time.monotonic()  # last check that the segment is in place
        self._size = 0
        self._written = 0  # batches written
        self._synced = 0  # batches known to be on disk
        self._commit: _GroupCommit | None = None  # `append_async`'s fsync, on first use
        self.segment: Path | None = None

    def open(self) -> None:
        private_dir(self.directory)
        with self._write_lock:
            if self._fd is None:
                self._new_segment()
            self._opened = True
        if self.sync_every_s is not None and self._flusher is None:
            self._flusher_stop.clear()
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"seamless-{self.prefix}-flush", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        """`--log-sync write`: fsync what was written, every `sync_every_s` seconds."""
        assert self.sync_every_s is not None
        while not self._flusher_stop.wait(self.sync_every_s):
            if self._synced < self._written:
                try:
                    self._sync(self._written)
                except OSError as exc:  # reported; the next round tries again
                    log.error("Background fsync of %s failed: %s", self.directory, exc)

    def _new_segment(self) -> None:
        # Name sorts in creation order: time in ns, then pid for uniqueness.
        name = f"{self.prefix}-{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        path = self.directory / name
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, PRIVATE_FILE)
        self._size = 0
        self.segment = path
        fsync_dir(self.directory)  # the new file's name must survive a crash too

    def _rotate(self) -> None:
        """Close the full segment (fsynced) and start a new one; write lock held."""
        self._close_segment()
        self._new_segment()

    def _close_segment(self) -> None:
        with self._sync_lock:
            assert self._fd is not None
            os.fsync(self._fd)
            self._synced = self._written
            os.close(self._fd)
            self._fd = None

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write `records` and return once they are on disk."""
        if records:
            self._append_data(encode(records))

    def _append_data(self, data: bytes) -> None:
        with self._write_lock:
            mine = self._write(data, rotate=True)
        if self.sync_every_s is None:
            self._sync(mine)

    async def append_async(self, records: list[dict[str, Any]]) -> None:
        """`append` for the event loop: the write never waits for a lock (when it
        would, e.g. a segment to rotate, it goes to a worker thread); it returns once
        the iteration's group commit has put it on disk."""
        if not records:
            return
        data = encode(records)
        mine = None
        if self._write_lock.acquire(blocking=False):
            try:
                mine = self._write(data, rotate=False)
            finally:
                self._write_lock.release()
        if mine is None:
            await asyncio.get_running_loop().run_in_executor(None, self._append_data, data)
            return
        if self.sync_every_s is None:
            await self._group_commit().wait(mine)

    def _write(self, data: bytes, rotate: bool) -> int | None:
        """One batch's os.write; its ticket for `_sync`. Write lock held. None (nothing
        written) when the segment is full and `rotate` is False."""
        if self._fd is None:  # never opened, or no new segment could be started
            raise OSError(errno.EBADF, f"no open segment in {self.directory}")
        now = time.monotonic()
        if now - self._checked_at >= SEGMENT_CHECK_S:  # a stat per write costs too much
            self._checked_at = now
            if not self._segment_in_place():
                self._replace_segment()
        if self._size and self._size + len(data) > self.segment_bytes:
            if not rotate:
                return None
            self._rotate()
        fd = self._fd
        assert fd is not None
        view = memoryview(data)
        while view:  # a regular file takes it all at once; loop only for safety
            n = os.write(fd, view)
            view = view[n:]
        self._size += len(data)
        self._written += 1
        return self._written

    def _group_commit(self) -> _GroupCommit:
        commit = self._commit
        if commit is None:
            commit = self._commit = _GroupCommit(self)
        return commit

    def _sync(self, mine: int | None) -> None:
        assert mine is not None
        with self._sync_lock:
            if self._synced >= mine:  # a later fsync (or a rotation) already covered it
                return
            target = self._written
            if self._fd is not None:
                os.fsync(self._fd)
            self._synced = max(self._synced, target)

    def probe(self) -> str | None:
        """None when the log can take lines, else why not (for /readyz); a lost segment
        is replaced here too (see `_write`)."""
        with self._write_lock:
            if not self._opened:
                return f"The {self.prefix} log in {self.directory} is not open."
            try:
                if self._fd is None or not self._segment_in_place():
                    self._replace_segment()
            except OSError as exc:
                return (
                    f"The {self.prefix} log cannot start a segment in {self.directory}: "
                    f"{exc.strerror}."
                )
            return None

    def _segment_in_place(self) -> bool:
        """Whether the open segment is still the file at its path (not deleted or
        replaced under the writer, e.g. by a clean-up job)."""
        assert self._fd is not None and self.segment is not None
        try:
            here = os.stat(self.segment)
        except (FileNotFoundError, NotADirectoryError):
            return False
        mine = os.fstat(self._fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def _replace_segment(self) -> None:
        """Write lock held: close a lost segment and start a new one (folder recreated);
        OSError when that fails, and then no segment is open: writes are refused (503)
        rather than go on into an unlinked file, where they would be lost."""
        gone = self.segment
        if self._fd is not None:
            self._close_segment()
        private_dir(self.directory)
        self._new_segment()
        log.warning("Log segment %s was removed or replaced; writing to %s.", gone, self.segment)

    def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            self._flusher_stop.set()
            flusher.join(timeout=30)
        with self._write_lock, self._sync_lock:
            self._opened = False
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None


def encode(records: list[dict[str, Any]]) -> bytes:
    """Records as JSON lines (one per record, each newline-terminated)."""
    dumps = _compact.encode
    return "".join([dumps(r) + "\n" for r in records]).encode()


_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class _GroupCommit:
    """The fsync behind `AppendLog.append_async` (group commit on the event loop).

    Requests wait with (ticket, future); the first of an event-loop iteration schedules
    one commit for after what is ready now, so every request written in the same
    iteration shares it. The commit fsyncs on the loop itself: the loop has nothing
    else to do until those requests are acknowledged, and handing the fsync to a thread
    and back (a futex wake, the GIL, a self-pipe wake-up) cost more CPU than the fsync
    (0.08 ms per prediction, docs/serving-benchmark.md). The loop stalls for one fsync
    per iteration (0.2 ms on the build machines' disks), which the load-shedding budget
    counts like any other lag. An fsync error fails exactly the requests it covered.
    """

    def __init__(self, log: AppendLog) -> None:
        self.log = log
        self._batches: dict[asyncio.AbstractEventLoop, list[tuple[int, asyncio.Future[None]]]] = {}

    async def wait(self, ticket: int) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = []
            loop.call_soon(self._commit, loop)
        batch.append((ticket, fut))
        await fut

    def _commit(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._batches.pop(loop)
        error: OSError | None = None
        try:
            # After `close` this fsyncs nothing: close already synced every line written.
            self.log._sync(max(t for t, _ in batch))
        except OSError as exc:
            error = exc
        except Exception as exc:  # never leave a request waiting
            error = OSError(errno.EIO, f"fsync failed: {exc}")
        _resolve([fut for _, fut in batch], error)


def _resolve(futs: list[asyncio.Future[None]], error: OSError | None) -> None:
    for fut in futs:
        if fut.done():  # its request was cancelled (client gone)
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(OSError(error.errno, error.strerror))


def segments(directory: Path, prefix: str) -> list[Path]:
    """The log's segment files in write order: JSON lines and batch segments
    (`batch_segment.py`), whose names sort together by creation time."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"{prefix}-*") if p.suffix in (SUFFIX, BATCH_SUFFIX))


def read_records(
    directory: Path,
    prefix: str,
    stats: ReadStats | None = None,
    query: LogQuery | None = None,
) -> Iterator[dict[str, Any]]:
    """Every complete record, in write order (those `query` keeps, when given); torn
    tails and bad lines are skipped."""
    stats = stats if stats is not None else ReadStats()
    kept = _read_records(directory, prefix, stats, query)
    # `stats.records` counts every record the query kept, before `first` picks.
    yield from (query.finish(kept) if query is not None else kept)


def _read_records(
    directory: Path, prefix: str, stats: ReadStats, query: LogQuery | None
) -> Iterator[dict[str, Any]]:
    keeps = query.keeps if query is not None else None
    for path in segments(directory, prefix):
        stats.segments += 1
        if path.suffix == BATCH_SUFFIX:
            yield from read_segment(path, stats, query)
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # removed while we listed (retention)
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            stats.torn_tails.append(path.name)
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                stats.corrupt_lines.append(f"{path.name}:{i + 1}")
                continue
            if not isinstance(record, dict):
                stats.corrupt_lines.append(f"{path.name}:{i + 1}")
            elif keeps is None or keeps(record):
                stats.records += 1
                yield record
