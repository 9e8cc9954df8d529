"""`seamless run training --data-dir s3://...`: the whole training pipeline (kfp.local)
reads its data from, and keeps its snapshots and Feast offline tables in, a real S3
server (Ceph RGW on loopback, see rgw.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.common import storage
from pipelines.cli import app

pytestmark = [pytest.mark.storage, pytest.mark.pipeline, pytest.mark.slow]


def test_training_runs_on_object_storage(
    bucket: str,
    demo_data: Path,
    quick_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for path in sorted(demo_data.iterdir()):
        if path.is_file():
            storage.put_file(path, f"s3://{bucket}/data/{path.name}")
    monkeypatch.setenv("SEAMLESS_SNAPSHOT_ROOT", f"s3://{bucket}/snapshots")
    monkeypatch.setenv("SEAMLESS_FEAST_OFFLINE_ROOT", f"s3://{bucket}/feast")
    result = CliRunner().invoke(
        app,
        [
            "run", "training", "--config", str(quick_config), "--data-dir", f"s3://{bucket}/data",
            "--workspace", str(tmp_path / "ws"), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    objects = storage.list_files(f"s3://{bucket}/")
    snapshots = [o for o in objects if o.endswith("/FILES.sha256")]
    assert len(snapshots) == 1, objects
    assert any(o.startswith(f"s3://{bucket}/feast/") for o in objects), objects
    assert not (tmp_path / "ws" / "feast" / "data").exists()


def test_a_container_runner_refuses_object_storage(quick_config: Path, tmp_path: Path) -> None:
    from components.common.errors import SeamlessError
    from pipelines.local import data_location

    with pytest.raises(SeamlessError) as err:
        data_location("s3://bkt/data", "docker")
    assert str(err.value) == (
        "--data-dir s3://bkt/data is in object storage, which the docker runner's containers "
        "cannot reach; use --runner subprocess."
    )
