"""Reading a growing audit trail by its appended lines (`read_after`, `ChainReader`): the
same entries and verdict as a whole read, only the new lines read, and a trail cut off or
rewritten under the reader is read again from the start."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from components.dashboard.stores import Stores
from components.governance.audit_chain import AuditLog, ChainReader, Chunk
from components.governance.audit_file import FileAuditLog
from components.governance.audit_postgres import PostgresAuditLog
from tests.helpers.postgres import PostgresServer, pg_server

__all__ = ["pg_server"]


def _append(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append("data_access", f"dataset:{i}", {"i": i}, actor="alice")


def _read_whole(tmp_path: Path, n: int) -> tuple[FileAuditLog, ChainReader, Chunk]:
    """A file trail of `n` entries, a reader fed all of it, and the chunk it was fed."""
    log = FileAuditLog(tmp_path / "audit")
    _append(log, n)
    reader = ChainReader(log.describe())
    chunk = log.read_after(None)
    reader.feed(chunk)
    return log, reader, chunk


def _follows_the_trail(log: AuditLog) -> None:
    """Chunks of appended lines add up to what a whole read gives, for any backend."""
    reader = ChainReader(log.describe())
    first = log.read_after(None)
    assert not first.lines and not first.restarted
    reader.feed(first)
    cursor = first.cursor
    for step in (1, 3, 5):
        _append(log, step, start=len(reader.entries))
        chunk = log.read_after(cursor)
        assert len(chunk.lines) == step and not chunk.restarted  # the new lines only
        reader.feed(chunk)
        cursor = chunk.cursor
        assert reader.entries == list(log.entries())
        whole = log.verify()
        assert reader.result().to_dict() == whole.to_dict() and whole.ok
    nothing = log.read_after(cursor)
    assert not nothing.lines and nothing.cursor == cursor


def test_file_trail_is_followed_by_its_appended_lines(tmp_path: Path) -> None:
    _follows_the_trail(FileAuditLog(tmp_path / "audit"))


@pytest.mark.postgres
def test_postgres_trail_is_followed_by_its_new_rows(pg_server: PostgresServer) -> None:
    pg_server.execute("CREATE DATABASE audit_incremental")
    _follows_the_trail(PostgresAuditLog(pg_server.url("audit_incremental")))


def test_a_torn_tail_waits_until_the_next_writer_moves_it_aside(tmp_path: Path) -> None:
    log, reader, chunk = _read_whole(tmp_path, 2)
    with log.path.open("ab") as out:  # a writer killed mid-line
        out.write(b'{"v": 1, "seq": 3, "ti')
    torn = log.read_after(chunk.cursor)
    reader.feed(torn)
    assert not torn.lines and reader.result().status == "torn_tail"
    _append(log, 1, start=2)  # recovers: the torn bytes go aside, recorded in the chain
    after = log.read_after(torn.cursor)
    assert not after.restarted
    reader.feed(after)
    assert [e["action"] for e in reader.entries][2:] == ["audit_recovered", "data_access"]
    assert reader.result().to_dict() == log.verify().to_dict() and reader.result().ok


def test_a_trail_cut_and_appended_again_is_read_from_the_start(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit")
    _append(log, 5)
    chunk = log.read_after(None)
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(b"".join(lines[:3]))  # someone cuts two entries off the end...
    _append(log, 3, start=100)  # ...and the trail grows past where the reader was
    again = log.read_after(chunk.cursor)
    assert again.restarted and len(again.lines) == 6
    reader = ChainReader(log.describe())
    reader.feed(again)
    assert reader.result().ok  # a consistent prefix: only a published head shows the cut
    assert [e["subject"] for e in reader.entries][3:] == [
        "dataset:100",
        "dataset:101",
        "dataset:102",
    ]


def test_a_bad_appended_entry_is_named(tmp_path: Path) -> None:
    log, reader, chunk = _read_whole(tmp_path, 3)
    forged = json.loads(log.path.read_bytes().splitlines()[-1])
    forged.update(seq=4, subject="dataset:forged")  # linked, but its hash is the old one
    with log.path.open("ab") as out:
        out.write(json.dumps(forged).encode() + b"\n")
    reader.feed(log.read_after(chunk.cursor))
    result = reader.result()
    assert result.status == "tampered" and result.bad_seq == 4
    assert "was edited" in result.reason


def _rewrite_middle(path: Path, seq: int) -> None:
    """Edit an old entry in place, keeping the file's size and its last line."""
    lines = path.read_bytes().splitlines(keepends=True)
    entry: dict[str, Any] = json.loads(lines[seq - 1])
    assert entry["actor"] == "alice"
    entry["actor"] = "mally"  # same length: the size stays
    lines[seq - 1] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    stat = path.stat()
    path.write_bytes(b"".join(lines))
    assert path.stat().st_size == stat.st_size
    # The dashboard's change key is size and mtime; an edit moves mtime as an append would.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_the_dashboard_reads_appends_and_rereads_the_whole_trail_on_its_timer(
    workspace: Path,
) -> None:
    log = FileAuditLog(workspace / "audit")
    _append(log, 4)
    stores = Stores(audit_full_read_s=3600)
    assert len(stores.audit_entries()) == 4 and stores.audit_verify().ok
    _append(log, 2, start=4)
    assert [e["seq"] for e in stores.audit_entries()] == [1, 2, 3, 4, 5, 6]
    assert stores.audit_verify().to_dict() == log.verify().to_dict()

    _rewrite_middle(log.path, 2)  # an old line: appended-only reads do not see it...
    assert not log.verify().ok
    assert stores.audit_verify().ok
    stores.audit_full_read_s = 0  # ...the next whole read (its timer) does
    verdict = stores.audit_verify()
    assert verdict.status == "tampered" and verdict.bad_seq == 2
