"""The offline side of streamed events: a pushed-events log per feature view.

Feast's offline push (`PushMode.OFFLINE`) appends by rewriting the view's batch source
file, which here is the ingest snapshot named by its content hash and recorded in
lineage: that would change a hashed file in place (and rewrite the whole table per
batch). So pushed rows live apart, as immutable Parquet parts under
`<offline root>/_pushed/<view>/`, one per consumed batch, named by its first and last
stream entry ids. A part written twice (a consumer killed after the write, before the ack)
holds the same events: readers drop repeated `event_id`s, so each event counts once.
`compaction.compact` merges a view's parts into one file (written before the parts it
holds are deleted; readers that see a compaction move under them read again), so the log
does not grow by one file per batch forever.

The next features step (training) publishes each view over its snapshot plus its
pushed events (`publish_pushed`), as a new content-hashed snapshot whose tags say how
many pushed rows it holds: the point-in-time join sees streamed values at their own
event times.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from components.common import storage
from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.features.repo import offline_root

PUSHED_DIR = "_pushed"
EVENT_ID_COLUMN = "_event_id"
STREAM_ID_COLUMN = "_stream_id"
_SAFE = re.compile(r"^[0-9]+-[0-9]+$")


def pushed_root(repo_path: Path, view: str) -> str:
    """Where a view's pushed parts live (a folder or an object store prefix)."""
    return storage.join(offline_root(repo_path), PUSHED_DIR, view)


def write_part(config: SeamlessConfig, repo_path: Path, view: str, frame: pd.DataFrame) -> str:
    """Write one batch of a view's accepted events; returns the part's path or URI.

    `frame` holds the entity key, the view table's timestamp column, every feature, and
    the event and stream ids, in stream order. The part is named by its first and last
    stream ids: a batch re-read whole after a crash lands on the same name; a batch made
    up otherwise gets a part of its own, and readers drop the repeated event ids. The
    write is atomic and durable (fsynced) before the batch is acknowledged.
    """
    ids = frame[STREAM_ID_COLUMN]
    first, last = str(ids.iloc[0]), str(ids.iloc[-1])
    for sid in (first, last):
        if not _SAFE.match(sid):  # Redis stream ids only: they make the part's name
            raise ValueError(f"stream id {sid!r} is not a Redis stream id")
    buf = io.BytesIO()
    frame[columns_of(config, view)].to_parquet(buf, index=False)
    target = storage.join(pushed_root(repo_path, view), f"{first}_{last}.parquet")
    storage.write_bytes(target, buf.getvalue())
    return target


def columns_of(config: SeamlessConfig, view: str) -> list[str]:
    """The columns of a view's pushed parts, in order."""
    spec = next(v for v in config.features.views if v.name == view)
    ts = config.timestamp_key(spec.table)
    return [config.entity_key(), ts, *spec.features, EVENT_ID_COLUMN, STREAM_ID_COLUMN]


def _list_parts(root: str) -> list[str]:
    """The view's parts (consumer parts and compacted files), temp files left out."""
    if not storage.is_remote(root) and not Path(root).is_dir():
        return []
    return [
        p for p in storage.list_files(root)
        if p.endswith(".parquet") and not _name(p).startswith(".")
    ]  # fmt: skip


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _read_part(uri: str) -> pd.DataFrame | None:
    """A part's rows, or None when it is gone (a compaction removed it after listing)."""
    fs, path = storage.resolve(uri)
    with storage.storage_errors(uri, fs=fs):
        try:
            data = fs.cat_file(path)
        except FileNotFoundError:
            return None
    return pd.read_parquet(io.BytesIO(bytes(data)))


def _once_each(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows in stream order, each event id once: the first stream entry wins."""
    out = pd.concat(frames, ignore_index=True)
    order = out[STREAM_ID_COLUMN].str.split("-", expand=True).astype("int64")
    out = out.iloc[order.sort_values([0, 1], kind="stable").index]
    return out.drop_duplicates(EVENT_ID_COLUMN, keep="first").reset_index(drop=True)


READ_ATTEMPTS = 20


def _consistent_read(root: str) -> tuple[list[str], list[pd.DataFrame]]:
    """(parts, their frames) as one consistent view, while compactions may run.

    A compaction writes its merged file before it deletes the parts it merged, under a
    name no other file had. So a read is whole when none of its parts vanished before
    being read and a second listing, after the reads, shows the same compacted files as
    the first: a compaction that committed meanwhile would add a new one (or remove
    one), and the read is done again. New consumer parts appearing meanwhile are
    events written after the read began: they are simply not in it.
    """
    for _ in range(READ_ATTEMPTS):
        parts = _list_parts(root)
        frames = [_read_part(p) for p in parts]
        merged = {p for p in parts if _name(p).startswith(COMPACTED_PREFIX)}
        after = {p for p in _list_parts(root) if _name(p).startswith(COMPACTED_PREFIX)}
        if all(f is not None for f in frames) and merged == after:
            return parts, [f for f in frames if f is not None]
        time.sleep(0.05)
    raise SeamlessError(
        f"The pushed-events log {root} kept changing under compactions ({READ_ATTEMPTS} "
        "reads); run the read again when `seamless stream compact` is done."
    )


def read_pushed(repo_path: Path, view: str) -> pd.DataFrame | None:
    """Every pushed event of a view, each event id once (the first stream entry wins);
    None when nothing was pushed. Safe while `compact` runs (`_consistent_read`)."""
    _parts, frames = _consistent_read(pushed_root(repo_path, view))
    return _once_each(frames) if frames else None


COMPACTED_PREFIX = "compacted-"


@dataclass(frozen=True)
class PushedSnapshot:
    """A view's snapshot with its pushed events appended, as the features step publishes it."""

    path: str
    sha256: str
    """Content hash of the merged table (components/common/tables.content_hash)."""
    pushed_rows: int
    last_stream_id: str
    start: datetime
    end: datetime

    def tags(self) -> dict[str, str]:
        """What the feature view's tags say about it (lineage reads them)."""
        return {
            "seamless.pushed_rows": str(self.pushed_rows),
            "seamless.pushed_sha256": self.sha256,
            "seamless.pushed_until": self.last_stream_id,
        }


def publish_pushed(
    config: SeamlessConfig, repo_path: Path, table_hashes: dict[str, str]
) -> dict[str, PushedSnapshot]:
    """For each view with pushed events: its snapshot's columns plus those events, written
    once as a new content-addressed snapshot beside the ingest one (which is left as it
    is). The features step points the view's source at it, so the point-in-time join
    sees streamed values at their own event times."""
    from components.common.tables import content_hash
    from components.features.repo import snapshot_path

    out: dict[str, PushedSnapshot] = {}
    for view in config.features.views:
        pushed = read_pushed(repo_path, view.name)
        if pushed is None or pushed.empty:
            continue
        source = snapshot_path(repo_path, view.table, table_hashes[view.table])
        snapshot = pd.read_parquet(io.BytesIO(storage.read_bytes(source)))
        ts = config.timestamp_key(view.table)
        cols = [config.entity_key(), ts, *view.features]
        events = pushed[cols].copy()
        events[ts] = pd.to_datetime(events[ts], utc=True).astype(snapshot[ts].dtype)
        frame = pd.concat([snapshot[cols], events], ignore_index=True)
        sha = content_hash(frame)
        target = snapshot_path(repo_path, view.table, sha)
        if not storage.exists(target):
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            storage.write_bytes(target, buf.getvalue())
        out[view.name] = PushedSnapshot(
            path=str(target), sha256=sha, pushed_rows=len(pushed),
            last_stream_id=str(pushed[STREAM_ID_COLUMN].iloc[-1]),
            start=frame[ts].min().to_pydatetime(), end=frame[ts].max().to_pydatetime(),
        )  # fmt: skip
    return out
