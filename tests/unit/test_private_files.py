"""At rest (issue #17 part 5): the workspace files that hold predictions, feedback and
audit entries are the owner's only: files 0600 in folders 0700, whatever the umask."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.governance.audit_file import FileAuditLog
from components.predictions.files import AppendLog
from components.predictions.spool import Spool

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The modes must not depend on a strict umask: test with a permissive one."""
    before = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(before)


def modes(folder: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.stat().st_mode)
    return found


def test_prediction_log_segments(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "ws" / "predictions", "predictions")
    log.open()
    log.append([{"request_id": "r", "index": 0, "score": 0.5}])
    log.close()
    found = modes(tmp_path / "ws" / "predictions")
    assert found.pop(".") == 0o700
    assert found and set(found.values()) == {0o600}, found


def test_spool_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "predictions", max_bytes=1 << 20)
    spool.open()
    with spool.lock:
        spool.append_locked([("predictions", {"request_id": "r", "index": 0})])
    spool.close()
    found = modes(tmp_path / "spool")
    assert found.pop(".") == 0o700
    assert len(found) >= 2 and set(found.values()) == {0o600}, found  # lock + segment


def test_audit_log_and_a_torn_tail_kept_aside(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit")
    log.append("deploy", "model:m/1", {"k": 1}, actor="tester")
    with log.path.open("ab") as fh:  # a writer that crashed mid-line
        fh.write(b'{"seq": 2, "act')
    log.append("deploy", "model:m/2", {"k": 2}, actor="tester")
    found = modes(tmp_path / "audit")
    assert found.pop(".") == 0o700 and found.pop("torn") == 0o700
    assert set(found.values()) == {0o600}, found  # log, lock, the saved partial line
    assert [json.loads(line)["subject"] for line in log.path.read_text().splitlines()][-1] == (
        "model:m/2"
    )


def test_an_existing_folder_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    shared = tmp_path / "predictions"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)
    log = AppendLog(shared, "predictions")
    log.open()
    log.close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750
