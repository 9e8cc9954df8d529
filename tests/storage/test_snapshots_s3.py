"""Content-addressed snapshots published to and fetched from s3:// (Ceph RGW, see rgw.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from components.common import storage
from components.common.errors import SeamlessError
from components.common.tables import write_dataset
from components.governance.snapshots import (
    FILES,
    load_snapshot,
    publish_snapshot,
    require_snapshot,
    store_snapshot,
    verify_remote_snapshot,
    verify_snapshot,
)

pytestmark = [pytest.mark.storage, pytest.mark.governance]


def _dataset(folder: Path) -> str:
    ts = pd.date_range("2026-01-01", periods=3, freq="D", tz="UTC")
    tables = {
        "profiles": pd.DataFrame({"customer_id": [1, 2, 3], "income": [1.5, None, 3.0], "ts": ts}),
        "labels": pd.DataFrame({"customer_id": [1, 2, 3], "default": [0, 1, 0]}),
    }
    return str(write_dataset(folder, tables)["sha256"])


def _forget_local(path: Path) -> None:
    path.chmod(0o755)
    shutil.rmtree(path)


@pytest.fixture()
def remote(bucket: str, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = f"s3://{bucket}/snapshots"
    monkeypatch.setenv("SEAMLESS_SNAPSHOT_ROOT", root)
    return root


def test_store_publishes_write_once_objects_keyed_by_content_hash(
    remote: str, tmp_path: Path
) -> None:
    sha = _dataset(tmp_path / "d")
    local = store_snapshot(tmp_path / "d")
    assert storage.list_files(f"{remote}/") == [
        f"{remote}/{sha}/{name}"
        for name in sorted([FILES, "labels.parquet", "manifest.json", "profiles.parquet"])
    ]
    assert verify_remote_snapshot(sha, remote) == []
    # Another node (no local copy) gets the same tables, verified.
    expected = load_snapshot(sha)
    _forget_local(local)
    fetched = load_snapshot(sha)
    assert sorted(fetched) == ["labels", "profiles"]
    pd.testing.assert_frame_equal(fetched["profiles"], expected["profiles"])
    assert require_snapshot(sha) == local
    # Lineage checks on a fresh pod: verification fetches what is not here yet.
    _forget_local(local)
    assert verify_snapshot(sha) == []
    assert local.is_dir()


def test_storing_the_same_content_again_rewrites_nothing(remote: str, tmp_path: Path) -> None:
    sha = _dataset(tmp_path / "d")
    store_snapshot(tmp_path / "d")
    fs, _ = storage.resolve(remote)
    key = f"{remote}/{sha}/{FILES}"
    before = fs.info(key)["LastModified"]
    store_snapshot(tmp_path / "d")
    assert fs.info(key)["LastModified"] == before


def test_an_object_with_other_content_under_the_address_is_refused(
    remote: str, tmp_path: Path
) -> None:
    sha = _dataset(tmp_path / "d")
    # An interrupted or foreign writer left a different labels.parquet and no FILES.sha256.
    storage.write_bytes(f"{remote}/{sha}/labels.parquet", b"not these bytes")
    with pytest.raises(SeamlessError) as err:
        store_snapshot(tmp_path / "d")
    assert str(err.value) == (
        f"Snapshot {sha[:12]}: {remote}/{sha}/labels.parquet already exists with other content; "
        "snapshots are write-once."
    )
    # Without its FILES.sha256 the snapshot is incomplete: never fetched, never read.
    assert not storage.exists(f"{remote}/{sha}/{FILES}")
    assert verify_remote_snapshot(sha, remote) == [
        f"snapshot {sha[:12]} is not complete in {remote} (no {FILES})"
    ]


def test_a_tampered_object_fails_the_fetch(remote: str, tmp_path: Path) -> None:
    sha = _dataset(tmp_path / "d")
    local = store_snapshot(tmp_path / "d")
    storage.write_bytes(f"{remote}/{sha}/profiles.parquet", b"changed behind our back")
    assert verify_remote_snapshot(sha, remote) == ["object profiles.parquet was modified"]
    _forget_local(local)
    with pytest.raises(SeamlessError) as err:
        load_snapshot(sha)
    assert str(err.value) == (
        f"Snapshot {sha[:12]}: {remote}/{sha}/profiles.parquet does not match its digest in "
        f"{remote}/{sha}/{FILES}."
    )
    assert not local.exists()  # nothing half-fetched is left behind


def test_a_snapshot_missing_everywhere_is_one_sentence(remote: str) -> None:
    sha = "0" * 64
    with pytest.raises(SeamlessError) as err:
        load_snapshot(sha)
    assert str(err.value) == f"Snapshot {sha[:12]} does not exist in {remote}."
    assert verify_snapshot(sha) == [f"snapshot {sha[:12]} does not exist in {remote}"]


def test_publishing_to_a_missing_bucket_is_one_sentence(remote: str, tmp_path: Path) -> None:
    sha = _dataset(tmp_path / "d")
    local = store_snapshot(tmp_path / "d")
    with pytest.raises(SeamlessError) as err:
        publish_snapshot(sha, "s3://no-such-bucket-y/snaps", local)
    assert str(err.value) == (
        f"Cannot write s3://no-such-bucket-y/snaps/{sha}/labels.parquet: bucket "
        "'no-such-bucket-y' does not exist."
    )
