"""Local spool for the PostgreSQL log: serving keeps answering while the database is away.

`SpooledLog` wraps a `PgLog`. While PostgreSQL takes writes, records go straight to it.
When a write fails because the database cannot be reached, the records (and every
later one, until the backlog is gone: one replica's records keep their order) are
appended to a local `Spool` and fsynced before the request is answered; a background
thread drains the spool to PostgreSQL, oldest first, once it answers again.

Exactly once in the table: every record gets a key unique across processes and
restarts (a random token per `SpooledLog`, then a counter), written to the `log_key`
column, which has a unique index; inserts are `ON CONFLICT (log_key) DO NOTHING`. So a
batch re-sent after a kill between its commit and the spool's advance, or a direct write
whose commit outcome was unknown (connection lost at COMMIT) and that was spooled too,
is skipped by PostgreSQL instead of duplicated.

Spool files: `<dir>/<prefix>-<seq>.spool`, append-only frames of `length (4 bytes,
big-endian) | crc32 of length and payload (4 bytes) | payload` (`[key, record]` as
JSON). A process starts a new file when it opens (never appending after a torn tail of
a killed writer) and past `segment_bytes`. Reading stops at the first incomplete or
failing frame of a file: a torn tail from a kill mid-write was never acknowledged
(acknowledgement waits for the fsync) and is discarded with a warning, never inserted.
A drained file is deleted. One process per spool folder (`flock` on `<prefix>.lock`).

Bounded: beyond `max_bytes` of spool files, a record is refused (`SpoolFull`, an
OSError: the request gets 503) and readiness fails, rather than filling the volume.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components.common.durable import PRIVATE_FILE, fsync_dir, private_dir
from components.common.errors import SeamlessError
from components.predictions.postgres import LogRefused, LogUnavailable, PgLog

log = logging.getLogger(__name__)

SUFFIX = ".spool"
_HEADER = struct.Struct(">II")
MAX_FRAME = 64 << 20
"""A frame longer than this is not a frame (a corrupt length), not a record to read."""
READ_CHUNK = 1 << 20
CLOSE_DRAIN_S = 5.0
"""At shutdown, how long a backlog may still be drained (within the pod's grace period)."""

# Test hooks (set by the fault tests' child processes only): called after a batch is
# written but before its fsync, and after a drained batch is committed but before the
# spool advances past it, i.e. at the worst moments for a kill -9.
after_write: Callable[[int], None] | None = None
after_drain_commit: Callable[[int], None] | None = None


class SpoolFull(OSError):
    """The spool holds `max_bytes` already: the record is refused (503)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)


def encode_frame(key: str, record: dict[str, Any]) -> bytes:
    payload = json.dumps([key, record], separators=(",", ":"), allow_nan=False).encode()
    size = len(payload).to_bytes(4, "big")
    return _HEADER.pack(len(payload), zlib.crc32(payload, zlib.crc32(size))) + payload


def decode_frames(data: bytes) -> tuple[list[tuple[str, dict[str, Any], int]], int]:
    """Complete, checksummed frames at the start of `data`: ([(key, record, end)], end of
    the last good one). Parsing stops at the first frame that is incomplete or fails."""
    out: list[tuple[str, dict[str, Any], int]] = []
    pos = 0
    while len(data) - pos >= _HEADER.size:
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if length == 0 or length > MAX_FRAME or end > len(data):
            break
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "big"))) != crc:
            break
        try:
            key, record = json.loads(payload)
        except ValueError:
            break
        out.append((key, record, end))
        pos = end
    return out, pos


def read_segment(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Every good record of a spool file and how many bytes of torn tail follow them."""
    data = path.read_bytes()
    frames, end = decode_frames(data)
    return [(k, r) for k, r, _ in frames], len(data) - end


class SpoolObserver(Protocol):
    """Where the spool's counts go (Prometheus: `ServeMetrics.spool_observer`)."""

    def spooled(self, n: int) -> None: ...

    def drained(self, n: int) -> None: ...

    def pending(self, n: int) -> None: ...


@dataclass
class Batch:
    segment: Path
    start: int
    end: int
    items: list[tuple[str, dict[str, Any]]]


class Spool:
    """Append-only framed spool files in one folder, for one process."""

    def __init__(
        self, directory: Path, prefix: str, max_bytes: int, segment_bytes: int = 8 << 20
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.lock = threading.Lock()  # appends, reads and the drained check
        self._lock_fd: int | None = None
        self._segments: list[Path] = []  # oldest first; the last may be the active one
        self._active: Path | None = None
        self._fd: int | None = None
        self._size = 0  # bytes of the active segment written and fsynced
        self._offset = 0  # drained bytes of the head segment
        self._seq = 0
        self.disk_bytes = 0  # spool files' bytes on disk (what max_bytes bounds)
        self.pending_records = 0
        self.full = False  # a record was refused for size; cleared as files are drained

    def open(self) -> None:
        """Take the folder's lock and count what earlier processes left (drained later)."""
        import fcntl

        private_dir(self.directory)
        fd = os.open(self.directory / f"{self.prefix}.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SeamlessError(
                f"The {self.prefix} spool folder {self.directory} is in use by another "
                "serving process; give each process its own spool folder (spool_dir)."
            ) from None
        self._lock_fd = fd
        self._segments = sorted(self.directory.glob(f"{self.prefix}-*{SUFFIX}"))
        self._seq = max((self._seq_of(p) for p in self._segments), default=0)
        for path in self._segments:
            records, torn = read_segment(path)
            self.pending_records += len(records)
            self.disk_bytes += path.stat().st_size
            if torn:
                log.warning(
                    "Spool file %s ends in %d bytes of torn tail (a write cut short by a "
                    "kill; never acknowledged): discarded.",
                    path,
                    torn,
                )
        if self._segments:
            log.warning(
                "%d %s records wait in the spool %s from an earlier process; they are "
                "sent to PostgreSQL before any new record.",
                self.pending_records,
                self.prefix,
                self.directory,
            )

    def _seq_of(self, path: Path) -> int:
        try:
            return int(path.stem.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return 0

    @property
    def empty(self) -> bool:
        return not self._segments

    def append_locked(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Write `items` and fsync them; `self.lock` held. SpoolFull beyond max_bytes."""
        data = b"".join(encode_frame(k, r) for k, r in items)
        if self.disk_bytes + len(data) > self.max_bytes:
            self.full = True
            raise SpoolFull(
                f"the {self.prefix} spool in {self.directory} is full ({self.disk_bytes} of "
                f"{self.max_bytes} bytes, spool_max_bytes) while PostgreSQL is unavailable"
            )
        if self._fd is None or (self._size and self._size + len(data) > self.segment_bytes):
            self._new_segment()
        fd = self._fd
        assert fd is not None
        view = memoryview(data)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if after_write is not None:
                after_write(len(items))
            os.fsync(fd)
        except OSError:
            # What is in the file may be torn: never append after it (a new file next).
            self._close_active()
            raise
        self._size += len(data)
        self.disk_bytes += len(data)
        self.pending_records += len(items)

    def _new_segment(self) -> None:
        self._close_active()
        self._seq += 1
        path = self.directory / f"{self.prefix}-{self._seq:012d}{SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, PRIVATE_FILE)
        fsync_dir(self.directory)  # the file's name must survive a crash too
        self._active = path
        self._size = 0
        self._segments.append(path)

    def _close_active(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._active = None  # finished: read to its end on disk, torn tail discarded

    def next_batch(self, max_records: int) -> Batch | None:
        """The oldest undrained records (at most `max_records`), or None when there are
        none now; finished files read to their end are deleted here."""
        with self.lock:
            while self._segments:
                head = self._segments[0]
                # The active file: only what was fsynced (and acknowledged).
                limit = self._size if head == self._active else head.stat().st_size
                items, end = self._read(head, limit, max_records)
                if items:
                    return Batch(head, self._offset, end, items)
                if head == self._active:
                    return None
                self._remove_head(head, limit - self._offset)
            return None

    def _read(self, path: Path, limit: int, max_records: int) -> tuple[list[Any], int]:
        remaining = limit - self._offset
        with path.open("rb") as f:
            f.seek(self._offset)
            data = f.read(min(remaining, READ_CHUNK))
            frames, _ = decode_frames(data)
            if not frames and _HEADER.size <= len(data) < remaining:
                need = _HEADER.size + _HEADER.unpack_from(data)[0]  # a frame beyond the chunk
                if len(data) < need <= remaining:
                    data += f.read(need - len(data))
                    frames, _ = decode_frames(data)
        frames = frames[:max_records]
        end = self._offset + (frames[-1][2] if frames else 0)
        return [(k, r) for k, r, _ in frames], end

    def _remove_head(self, head: Path, rest: int) -> None:
        if rest:
            log.warning(
                "Spool file %s: %d bytes after its last good record are a torn tail "
                "(never acknowledged), discarded.",
                head,
                rest,
            )
        size = head.stat().st_size
        head.unlink()
        fsync_dir(self.directory)
        self.disk_bytes -= size
        self.full = False
        self._segments.pop(0)
        self._offset = 0

    def commit(self, batch: Batch) -> None:
        """`batch` is in PostgreSQL: move past it."""
        with self.lock:
            assert self._segments and self._segments[0] == batch.segment
            assert self._offset == batch.start, (self._offset, batch.start)
            self._offset = batch.end
            self.pending_records -= len(batch.items)

    def finish_locked(self) -> bool:
        """`self.lock` held: True (and the spool emptied) when everything was drained."""
        if not self._segments:
            return True
        if self._segments != [self._active] or self._offset < self._size:
            return False
        self._close_active()
        self._remove_head(self._segments[0], 0)
        self._seq = 0
        return True

    def close(self) -> None:
        with self.lock:
            self._close_active()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None


class _NoObserver:
    def spooled(self, n: int) -> None:
        pass

    def drained(self, n: int) -> None:
        pass

    def pending(self, n: int) -> None:
        pass


class SpooledLog:
    """A `PgLog` that spools to local files while PostgreSQL is unreachable (see above)."""

    def __init__(
        self,
        pg: PgLog,
        spool: Spool,
        *,
        retry_s: float = 1.0,
        batch_records: int = 1000,
        observer: SpoolObserver | None = None,
        background: bool = True,
        close_drain_s: float = CLOSE_DRAIN_S,
    ) -> None:
        self.pg = pg
        self.spool = spool
        self.prefix = pg.prefix
        self.retry_s = retry_s
        self.batch_records = batch_records
        self.observer: SpoolObserver = observer or _NoObserver()
        self.background = background  # False: only `drain()` drains (tools, tests)
        self.close_drain_s = close_drain_s
        # Keys: unique across replicas and restarts (64 random bits) then a counter.
        self._token = uuid.uuid4().hex[:16]
        self._counter = 0
        self._counter_lock = threading.Lock()
        self.spooling = False  # flipped under spool.lock only (`append`, `_drain_batch`)
        self.database = "ok"  # why PostgreSQL was last not written, for readiness
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_lock = threading.Lock()  # one drainer at a time (thread or `drain`)
        self._drainer: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SpooledLog({self.pg!r}, {self.spool.directory})"

    def _keys(self, n: int) -> list[str]:
        with self._counter_lock:
            first = self._counter
            self._counter += n
        return [f"{self._token}-{i}" for i in range(first, first + n)]

    def open(self) -> None:
        self.spool.open()
        self.spooling = not self.spool.empty  # a backlog first, then new records
        self.observer.pending(self.spool.pending_records)
        self.pg.open()
        self._stop.clear()
        if not self.background:
            return
        self._drainer = threading.Thread(
            target=self._drain_loop, name=f"seamless-{self.prefix}-drain", daemon=True
        )
        self._drainer.start()

    def append(self, records: list[dict[str, Any]]) -> None:
        """Return once `records` are committed in PostgreSQL or fsynced in the spool."""
        if not records:
            return
        keys = self._keys(len(records))
        if not self.spooling:
            try:
                self.pg.append(records, keys)
                return
            except LogRefused:
                raise  # the data itself is refused: spooling would only delay the error
            except LogUnavailable as exc:
                if self.database == "ok":
                    log.warning("%s; spooling to %s.", exc.strerror, self.spool.directory)
                self.database = exc.strerror or str(exc)
        with self.spool.lock:
            # Set under the lock the drainer checks the spool empty under: a record
            # acknowledged from the spool is never overtaken by a later direct write.
            self.spooling = True
            self.spool.append_locked(list(zip(keys, records, strict=True)))
            pending = self.spool.pending_records
        self.observer.spooled(len(records))
        self.observer.pending(pending)
        self._wake.set()

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            if not self.spooling:
                self._wake.wait(self.retry_s)
                self._wake.clear()
                continue
            try:
                progressed = self._drain_once()
            except Exception as exc:  # keep draining later; never kill the thread
                log.exception("Draining the %s spool failed", self.prefix)
                self.database = f"draining the spool failed: {exc}"
                progressed = False
            if not progressed:
                self._stop.wait(self.retry_s)

    def _drain_once(self) -> bool:
        """Send one batch (or finish): False when PostgreSQL refused it or is away."""
        with self._drain_lock:
            return self._drain_batch()

    def _drain_batch(self) -> bool:
        batch = self.spool.next_batch(self.batch_records)
        if batch is None:
            with self.spool.lock:
                if self.spool.finish_locked():
                    self.spooling = False
                    log.info("The %s spool is drained; writing to PostgreSQL.", self.prefix)
            return True
        keys = [k for k, _ in batch.items]
        try:
            # One transaction; the keys make a re-sent batch (killed before `commit`
            # below) a no-op in the table.
            self.pg.append([r for _, r in batch.items], keys)
        except LogUnavailable as exc:  # away again, or refused: retry later, say why
            self.database = exc.strerror or str(exc)
            return False
        if after_drain_commit is not None:
            after_drain_commit(len(keys))
        self.spool.commit(batch)
        self.database = "ok"
        self.observer.drained(len(keys))
        self.observer.pending(self.spool.pending_records)
        return True

    def drain(self, timeout_s: float = 30.0) -> None:
        """Drain everything now, retrying for up to `timeout_s` (tests, tools);
        LogUnavailable if PostgreSQL still does not take the records by then."""
        deadline = time.monotonic() + timeout_s
        while self.spooling:
            if not self._drain_once():
                if time.monotonic() >= deadline:
                    raise LogUnavailable(self.database)
                time.sleep(min(self.retry_s, 0.2))

    @property
    def pending(self) -> int:
        return self.spool.pending_records

    def probe(self) -> str | None:
        """None when records are taken (by PostgreSQL or the spool), else why not. No
        database round trip: readiness must not depend on the database."""
        with self.spool.lock:
            full = self.spool.full or self.spool.disk_bytes >= self.spool.max_bytes
        if full:
            return (
                f"The {self.prefix} spool in {self.spool.directory} is full "
                f"({self.spool.max_bytes} bytes, spool_max_bytes) and PostgreSQL is not "
                f"taking records: {self.database}"
            )
        if not os.access(self.spool.directory, os.W_OK):
            return f"The {self.prefix} spool folder {self.spool.directory} is not writable."
        return None

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._drainer is not None:
            self._drainer.join(timeout=30)
            self._drainer = None
        if self.spooling and self.spool.pending_records:
            with contextlib.suppress(OSError):  # one last short try before going away
                self.drain(timeout_s=self.close_drain_s)
        if self.spooling and self.spool.pending_records:
            log.error(
                "%d %s records stay in the spool %s: they are sent to PostgreSQL when "
                "serving starts again with this folder (lost if the folder is, e.g. a "
                "Kubernetes emptyDir with its pod).",
                self.spool.pending_records,
                self.prefix,
                self.spool.directory,
            )
        self.pg.close()
        self.spool.close()
