"""The snapshot store: content-addressed, written once, read-only, verifiable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from components.common.errors import SeamlessError
from components.common.tables import write_dataset
from components.governance.snapshots import (
    FILES,
    attach_report,
    list_snapshots,
    load_snapshot,
    reports_for,
    require_snapshot,
    store_snapshot,
    verify_snapshot,
)

pytestmark = pytest.mark.unit


def _tables() -> dict[str, pd.DataFrame]:
    ts = pd.date_range("2026-01-01", periods=4, freq="D", tz="UTC")
    return {
        "profiles": pd.DataFrame(
            {"customer_id": [1, 2, 3, 4], "income": [1.5, None, 3.0, 4.0], "ts": ts}
        ),
        "labels": pd.DataFrame({"customer_id": [1, 2, 3, 4], "default": [0, 1, 0, 1]}),
    }


def _dataset(folder: Path) -> str:
    return str(write_dataset(folder, _tables())["sha256"])


def test_store_is_content_addressed_and_read_only(workspace: Path, tmp_path: Path) -> None:
    sha = _dataset(tmp_path / "d1")
    path = store_snapshot(tmp_path / "d1")
    assert path == workspace / "snapshots" / sha
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [FILES, "manifest.json", "profiles.parquet", "labels.parquet"]
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o555
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in path.iterdir())
    assert verify_snapshot(sha) == []
    assert list_snapshots() == [sha]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left

    loaded = load_snapshot(sha)
    pd.testing.assert_frame_equal(loaded["profiles"], _tables()["profiles"])


def test_same_content_reuses_the_snapshot(workspace: Path, tmp_path: Path) -> None:
    _dataset(tmp_path / "d1")
    first = store_snapshot(tmp_path / "d1")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first.iterdir()}
    # Same rows, other order and another folder: same content hash, same snapshot.
    shuffled = {n: df.iloc[::-1] for n, df in _tables().items()}
    write_dataset(tmp_path / "d2", shuffled)
    second = store_snapshot(tmp_path / "d2")
    assert second == first
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first.iterdir()} == before


def test_changed_bytes_are_found(workspace: Path, tmp_path: Path) -> None:
    sha = _dataset(tmp_path / "d1")
    path = store_snapshot(tmp_path / "d1")
    target = path / "labels.parquet"
    os.chmod(path, 0o755)
    os.chmod(target, 0o644)
    pd.DataFrame({"customer_id": [1], "default": [1]}).to_parquet(target, index=False)
    problems = verify_snapshot(sha)
    assert "file labels.parquet was modified" in problems
    with pytest.raises(SeamlessError, match=f"Snapshot {sha[:12]} failed verification"):
        load_snapshot(sha)


def test_writable_file_is_found(workspace: Path, tmp_path: Path) -> None:
    sha = _dataset(tmp_path / "d1")
    path = store_snapshot(tmp_path / "d1")
    os.chmod(path / "manifest.json", 0o644)
    assert verify_snapshot(sha) == ["file manifest.json is writable"]


def test_dataset_not_matching_its_manifest_is_refused(workspace: Path, tmp_path: Path) -> None:
    _dataset(tmp_path / "d1")
    pd.DataFrame({"customer_id": [9], "default": [0]}).to_parquet(
        tmp_path / "d1" / "labels.parquet", index=False
    )
    with pytest.raises(SeamlessError, match="does not match its manifest hash"):
        store_snapshot(tmp_path / "d1")
    assert list_snapshots() == []
    assert not any((workspace / "snapshots").iterdir())


def test_unknown_snapshot(workspace: Path) -> None:
    with pytest.raises(SeamlessError, match="does not exist"):
        require_snapshot("a" * 64)
    with pytest.raises(SeamlessError, match="64 lowercase hex"):
        load_snapshot("../etc")


def test_reports_kept_once(workspace: Path, tmp_path: Path) -> None:
    sha = _dataset(tmp_path / "d1")
    report = tmp_path / "report.html"
    report.write_text("<html>ok</html>")
    first = attach_report(sha, report)
    assert attach_report(sha, report) == first
    assert reports_for(sha) == [first]
    assert first.read_text() == "<html>ok</html>"
