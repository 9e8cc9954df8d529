"""Compaction of a view's pushed-events log (components/stream/pushed.py): its parts merged
into one file, in memory that does not grow with the log, while consumers write and
readers read.

`compact` is what `seamless stream compact` and the consumer (every `--compact-parts`
parts) run. The merged file is named `compacted-<first>_<last>-<ns>.parquet`
(`pushed.COMPACTED_PREFIX`); readers (`pushed.read_pushed`) see the same rows before,
during and after.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from components.common import storage
from components.common.durable import atomic_file, fsync_dir
from components.common.errors import SeamlessError
from components.stream.pushed import (
    COMPACTED_PREFIX,
    EVENT_ID_COLUMN,
    READ_ATTEMPTS,
    STREAM_ID_COLUMN,
    _list_parts,
    _name,
    pushed_root,
)

ROW_GROUP_ROWS = 32_768
"""Rows per row group of a merged file: what compaction gathers before each write."""


@dataclass(frozen=True)
class Compaction:
    """What one view's compaction did."""

    view: str
    parts_before: int
    parts_merged: int
    rows: int
    """Rows of the merged file: each event id once."""
    merged: str | None
    """The merged file's path or URI (None: nothing to do)."""
    kept: int = 0
    """Merged parts not deleted because they changed after being read (a consumer
    rewrote one): their rows are in the merged file too, and readers keep them once."""
    held_rows: int = 0
    """The most rows the merge held in memory at once (see `compact`)."""


def compact(repo_path: Path, view: str, min_parts: int = 2) -> Compaction:
    """Merge a view's pushed parts into one file; readers see the same rows throughout.

    Order: list the parts; a first pass over their stream and event id columns only;
    then a k-way merge by stream id (`_merge`) that writes the rows readers would keep
    (stream order, each event id once, its first stream entry) a row group at a time
    into a new file `compacted-<first>_<last>-<ns>.parquet` (first and last: the
    smallest and largest stream id merged), atomic: a temp file fsynced then renamed,
    the folder fsynced (on S3 one object: a multipart upload completed only at the
    end, aborted on failure); and only then delete the parts it merged. A crash before
    the rename leaves the parts as they were (and a temp file readers skip); after it,
    the merged file and some parts hold the same events, which readers keep once.

    Memory does not grow with the log's rows: what is held is one row group per part
    whose stream ids overlap the merge's position, the row group being written
    (`ROW_GROUP_ROWS`), and 8 bytes per event (the hashes of the first pass, sorted to
    find the event ids seen twice, which alone are compared exactly).

    Like a reader (`_consistent_read`), it starts again when a part vanishes or
    changes under it or a compacted file appears or goes meanwhile (a concurrent
    compaction): the aborted write leaves nothing. A part a consumer rewrites while
    this runs (a batch redone under the same name) is kept if its size changed. Parts
    written after the listing are not touched.
    """
    root = pushed_root(repo_path, view)
    for _ in range(READ_ATTEMPTS):
        uris = _list_parts(root)
        if len(uris) < max(min_parts, 2):
            return Compaction(view, len(uris), 0, 0, None)
        before = _compacted(uris)
        try:
            parts, sizes, repeated = _scan(uris)
            if not parts:
                return Compaction(view, len(uris), 0, 0, None)
            first, last = min(p.first for p in parts), max(p.last for p in parts)
            name = f"{COMPACTED_PREFIX}{_sid(first)}_{_sid(last)}-{time.time_ns()}.parquet"
            target = storage.join(root, name)
            with _atomic_file(target) as fh:
                rows, held = _write_merged(parts, repeated, fh)
                if _compacted(_list_parts(root)) != before:
                    raise _Moved(root)
        except _Moved:
            time.sleep(0.05)
            continue
        kept = 0
        for p in uris:
            now = _size(p)
            if now is not None and now != sizes[p]:
                kept += 1
                continue
            _remove(p)
        return Compaction(view, len(uris), len(uris) - kept, rows, str(target), kept, held)
    raise SeamlessError(
        f"The pushed-events log {root} kept changing under other compactions "
        f"({READ_ATTEMPTS} attempts); run `seamless stream compact` again when they are done."
    )


def _compacted(uris: list[str]) -> set[str]:
    return {p for p in uris if _name(p).startswith(COMPACTED_PREFIX)}


def _sid(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


class _Moved(Exception):
    """A part vanished or changed, or a compaction committed, while this one read."""


@contextlib.contextmanager
def _reading(uri: str) -> Iterator[None]:
    """Reads of one part: gone -> _Moved (another compaction deleted it); not Parquet ->
    one sentence naming it; other storage failures -> one sentence naming it."""
    with storage.storage_errors(uri):
        try:
            yield
        except FileNotFoundError:
            raise _Moved(uri) from None
        except OSError:
            raise
        except pa.ArrowException as exc:
            raise SeamlessError(
                f"{uri} is not a readable Parquet part of the pushed-events log ({exc})."
            ) from None


def _open(uri: str, stack: contextlib.ExitStack) -> pq.ParquetFile:
    fs, path = storage.resolve(uri)
    with _reading(uri):
        return pq.ParquetFile(stack.enter_context(fs.open(path, "rb")))


@dataclass(frozen=True)
class _Part:
    """What the first pass learnt of one part."""

    uri: str
    order: int
    """Its place in the listing: of two copies of one stream entry, readers keep the
    copy listed first, and so does the merge."""
    rows: int
    first: tuple[int, int]
    """Its smallest stream id, as (milliseconds, sequence); `last` its largest."""
    last: tuple[int, int]
    streamable: bool
    """Its row groups follow each other in stream order (a merged file): read one at a
    time. Otherwise (a consumer part: one row group) read whole."""
    schema: pa.Schema


def _keys(ids: Any, uri: str) -> tuple[np.ndarray, np.ndarray]:
    """(milliseconds, sequence) of each stream id, as uint64 arrays."""
    try:
        pieces = pc.split_pattern(ids, "-", max_splits=1)
        ms = pc.cast(pc.list_element(pieces, 0), pa.uint64()).to_numpy()
        seq = pc.cast(pc.list_element(pieces, 1), pa.uint64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, IndexError):
        raise SeamlessError(
            f"{uri} holds a {STREAM_ID_COLUMN} that is not a Redis stream id (ms-seq): it is "
            "not a part of the pushed-events log; move it out of the folder."
        ) from None
    return np.asarray(ms, dtype=np.uint64), np.asarray(seq, dtype=np.uint64)


def _hashes(event_ids: Any) -> np.ndarray:
    """A 64-bit hash of each event id (pandas' SipHash, fixed key: stable across runs)."""
    values = np.asarray(event_ids.to_numpy(zero_copy_only=False), dtype=object)
    return np.asarray(pd.util.hash_array(values), dtype=np.uint64)


def _scan(uris: list[str]) -> tuple[list[_Part], dict[str, int], np.ndarray]:
    """First pass, over the stream and event id columns, one row group at a time:
    (the parts holding rows, every part's size, the sorted hashes of event ids found
    more than once: true repeats and, rarely, collisions; the merge checks those ids
    exactly and no others)."""
    out: list[_Part] = []
    sizes: dict[str, int] = {}
    hashes: list[np.ndarray] = []
    for order, uri in enumerate(uris):
        size = _size(uri)
        if size is None:
            raise _Moved(uri)
        sizes[uri] = size
        with contextlib.ExitStack() as stack:
            pf = _open(uri, stack)
            first: tuple[int, int] | None = None
            last: tuple[int, int] | None = None
            streamable = True
            for group in range(pf.num_row_groups):
                with _reading(uri):
                    ids = pf.read_row_group(group, columns=[STREAM_ID_COLUMN, EVENT_ID_COLUMN])
                if ids.num_rows == 0:
                    continue
                ms, seq = _keys(ids[STREAM_ID_COLUMN], uri)
                at = np.lexsort((seq, ms))
                low = (int(ms[at[0]]), int(seq[at[0]]))
                high = (int(ms[at[-1]]), int(seq[at[-1]]))
                if last is not None and low < last:
                    streamable = False
                first = low if first is None else min(first, low)
                last = high if last is None else max(last, high)
                hashes.append(_hashes(ids[EVENT_ID_COLUMN]))
            if first is None or last is None:
                continue  # no rows: nothing to merge (deleted with the others)
            rows = pf.metadata.num_rows
            out.append(_Part(uri, order, rows, first, last, streamable, pf.schema_arrow))
    every = np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)
    hashes.clear()
    every.sort()
    repeated = np.unique(every[1:][every[1:] == every[:-1]])
    return out, sizes, repeated


def _merged_schema(parts: list[_Part]) -> pa.Schema:
    """The parts' schemas unified (a column all null in one part takes the others'
    type), with the pandas metadata of the first part listed, as readers' concat has."""
    schema = pa.unify_schemas([p.schema for p in parts], promote_options="permissive")
    first = min(parts, key=lambda p: p.order)
    return schema.with_metadata(first.schema.metadata or {})


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A part's rows in the merged file's columns and types (a column it lacks: nulls)."""
    bare = schema.remove_metadata()
    columns = [
        table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in bare
    ]
    return pa.table(columns, names=bare.names).cast(bare)


class _Cursor:
    """One part in the merge: a buffer of its rows not merged yet, in stream order,
    refilled a row group at a time (a part whose row groups overlap: read whole)."""

    def __init__(self, part: _Part, schema: pa.Schema, stack: contextlib.ExitStack) -> None:
        self.part = part
        self.schema = schema
        self._pf = _open(part.uri, stack)
        if self._pf.metadata.num_rows != part.rows:
            raise _Moved(part.uri)  # rewritten since the first pass: start again
        self._group = 0
        self.table = schema.empty_table()
        self.ms = self.seq = np.empty(0, dtype=np.uint64)
        self.done = False
        self.load()
        if self.last is None or (int(self.ms[0]), int(self.seq[0])) != part.first:
            raise _Moved(part.uri)

    @property
    def last(self) -> tuple[int, int] | None:
        return (int(self.ms[-1]), int(self.seq[-1])) if len(self.ms) else None

    def load(self) -> None:
        """Append its next rows (sorted: stream id, then place in the part) to the
        buffer; `done` once the part is read."""
        groups = self._pf.num_row_groups
        table: pa.Table | None = None
        while not self.done and (table is None or table.num_rows == 0):
            with _reading(self.part.uri):
                if self.part.streamable:
                    table = self._pf.read_row_group(self._group)
                    self._group += 1
                else:
                    table, self._group = self._pf.read(), groups
            self.done = self._group >= groups
        if table is None or table.num_rows == 0:
            return
        table = _conform(table, self.schema)
        ms, seq = _keys(table[STREAM_ID_COLUMN], self.part.uri)
        at = np.lexsort((np.arange(len(ms)), seq, ms))
        self.table = pa.concat_tables([self.table, table.take(at)])
        self.ms = np.concatenate([self.ms, ms[at]])
        self.seq = np.concatenate([self.seq, seq[at]])

    def below(self, bound: tuple[int, int]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """Take the buffered rows whose stream id is below `bound`: (rows, ms, seq)."""
        if bound == _END:
            k = len(self.ms)
        else:
            fm, fs = np.uint64(bound[0]), np.uint64(bound[1])
            k = int(np.count_nonzero((self.ms < fm) | ((self.ms == fm) & (self.seq < fs))))
        out = (self.table.slice(0, k), self.ms[:k], self.seq[:k])
        self.table = self.table.slice(k)
        self.ms, self.seq = self.ms[k:], self.seq[k:]
        return out


_END = (2**64, 0)
"""Above every stream id: the merge's bound once no part has rows left to read."""


def _write_merged(parts: list[_Part], repeated: np.ndarray, fh: Any) -> tuple[int, int]:
    """The merged rows written to `fh` as Parquet; (rows written, most rows held)."""
    schema = _merged_schema(parts)
    writer = pq.ParquetWriter(fh, schema)
    try:
        done = _merge(parts, repeated, schema, writer)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()  # the file is thrown away: its footer does not matter
        raise
    writer.close()
    return done


def _merge(
    parts: list[_Part], repeated: np.ndarray, schema: pa.Schema, writer: pq.ParquetWriter
) -> tuple[int, int]:
    """Second pass: the parts' rows in stream order, each event id once (its first
    stream entry; of two copies of one entry, the one listed first: what `_once_each`
    keeps), written a row group at a time. Returns (rows written, most rows held).

    A k-way merge that opens a part only when the merge reaches its smallest stream id
    and drops it once merged. Each round takes, from every open part, the rows below
    the bound: the smallest of the unopened parts' first stream id and the open parts'
    last buffered one (no row not yet read can come before it), then opens the part
    or refills the parts at that bound. Rows held: a
    buffer per part whose stream ids overlap the merge's position (one per consumer
    that wrote at the time, plus a merged file's row group) and the row group being
    written, however long the log. Event ids are compared exactly only where their
    64-bit hash was seen twice (`_scan`), so the other ids are never kept in memory."""
    pending = sorted(parts, key=lambda p: (p.first, p.order), reverse=True)  # pop(): next
    active: list[_Cursor] = []
    seen: set[str] = set()
    out: list[pa.Table] = []
    out_rows = written = held = 0
    with contextlib.ExitStack() as stack:
        while True:
            reading = [c.last for c in active if not c.done and c.last is not None]
            unopened = pending[-1].first if pending else _END
            bound = min(*reading, unopened, _END)
            held = max(held, out_rows + sum(c.table.num_rows for c in active))
            chunk = _dedupe([(*c.below(bound), c.part.order) for c in active], repeated, seen)
            if chunk is not None and chunk.num_rows:
                out.append(chunk)
                out_rows += chunk.num_rows
            if out_rows and (out_rows >= ROW_GROUP_ROWS or bound == _END):
                writer.write_table(pa.concat_tables(out), row_group_size=ROW_GROUP_ROWS)
                written += out_rows
                out, out_rows = [], 0
            if bound == _END:
                return written, held
            if unopened == bound:  # the next part starts here: read it
                active.append(_Cursor(pending.pop(), schema, stack))
            else:  # refill the parts whose buffered rows end at the bound
                for c in active:
                    if not c.done and c.last == bound:
                        c.load()
            active = [c for c in active if not c.done or c.table.num_rows]


def _dedupe(
    taken: list[tuple[pa.Table, np.ndarray, np.ndarray, int]],
    repeated: np.ndarray,
    seen: set[str],
) -> pa.Table | None:
    """The rows taken from the open parts, in stream order (ties: listing order, then
    place in the part), each event id once: the first kept, later ones dropped."""
    taken = [t for t in taken if t[0].num_rows]
    if not taken:
        return None
    table = pa.concat_tables([t for t, _, _, _ in taken])
    ms = np.concatenate([m for _, m, _, _ in taken])
    seq = np.concatenate([s for _, _, s, _ in taken])
    order = np.concatenate([np.full(t.num_rows, o) for t, _, _, o in taken])
    table = table.take(np.lexsort((np.arange(len(ms)), order, seq, ms)))
    ids = table[EVENT_ID_COLUMN]
    check = np.flatnonzero(np.isin(_hashes(ids), repeated))
    if not len(check):
        return table
    keep = np.ones(table.num_rows, dtype=bool)
    for i, event_id in zip(check, ids.take(check).to_pylist(), strict=True):
        if event_id in seen:
            keep[i] = False
        else:
            seen.add(event_id)
    return table.filter(keep)


@contextlib.contextmanager
def _atomic_file(uri: str) -> Iterator[Any]:
    """A file to write `uri` through, published whole only if the block succeeds.

    Local: a dot-named temp file beside it (readers skip it), fsynced, renamed, the
    folder fsynced; on failure removed. Object store: written as it goes (a multipart
    upload above `storage.PART_SIZE`, so memory stays one part), which S3 shows only
    once completed at the end; on failure the upload is aborted, nothing shows."""
    if not storage.is_remote(uri):
        target = Path(uri)
        with storage.storage_errors(uri, "write"), atomic_file(target) as fh:
            yield fh
        fsync_dir(target.parent)  # the rename survives a crash before the deletes
        return
    fs, path = storage.resolve(uri)
    with storage.storage_errors(uri, "write", fs=fs):
        fh = fs.open(path, "wb")
    try:
        with storage.storage_errors(uri, "write", fs=fs):
            yield fh
    except BaseException:
        with contextlib.suppress(Exception):
            fh.discard()  # s3fs: abort the multipart upload
        fh.closed = True  # never completed, even when garbage-collected
        raise
    with storage.storage_errors(uri, "write", fs=fs):
        fh.close()


def _size(uri: str) -> int | None:
    """A part's size in bytes, None when it is gone (removed by another compaction)."""
    fs, path = storage.resolve(uri)
    with storage.storage_errors(uri, fs=fs):
        try:
            return int(fs.size(path))
        except FileNotFoundError:
            return None


def _remove(uri: str) -> None:
    fs, path = storage.resolve(uri)
    # Removed meanwhile (by another compaction): the same outcome.
    with storage.storage_errors(uri, "delete", fs=fs), contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)
