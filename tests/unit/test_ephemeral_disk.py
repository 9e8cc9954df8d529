"""On a cluster a step's disk goes with its pod (SEAMLESS_EPHEMERAL_DISK, set by the compiled
pipeline, the materialization CronJob and the in-cluster training Job): data that must
outlive the step has to go to object storage, and a step asked to keep it locally says so
in one sentence before doing any work, instead of writing data that vanishes while
lineage and Feast's registry still point at it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from components.common import storage
from components.common.errors import SeamlessError
from components.features.repo import OFFLINE_ROOT_ENV
from components.features.stage import run_features
from components.governance.snapshots import ROOT_ENV as SNAPSHOT_ROOT_ENV
from pipelines.demo_data import generate

pytestmark = pytest.mark.unit


@pytest.fixture
def ephemeral(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv(storage.EPHEMERAL_DISK_ENV, "true")
    monkeypatch.delenv(OFFLINE_ROOT_ENV, raising=False)
    monkeypatch.delenv(SNAPSHOT_ROOT_ENV, raising=False)
    return monkeypatch


def test_a_lasting_disk_takes_any_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(storage.EPHEMERAL_DISK_ENV, raising=False)
    monkeypatch.delenv(OFFLINE_ROOT_ENV, raising=False)
    storage.require_remote_root(OFFLINE_ROOT_ENV, "Feast's offline tables")
    monkeypatch.setenv(OFFLINE_ROOT_ENV, str(tmp_path))
    storage.require_remote_root(OFFLINE_ROOT_ENV, "Feast's offline tables")


def test_an_ephemeral_disk_needs_an_object_store_root(
    ephemeral: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SeamlessError) as unset:
        storage.require_remote_root(OFFLINE_ROOT_ENV, "Feast's offline tables")
    assert str(unset.value).startswith("SEAMLESS_FEAST_OFFLINE_ROOT is not set, but this step's")
    assert "so Feast's offline tables outlive the step" in str(unset.value)
    ephemeral.setenv(OFFLINE_ROOT_ENV, str(tmp_path))
    with pytest.raises(SeamlessError, match=f"is a local path \\({tmp_path}\\)"):
        storage.require_remote_root(OFFLINE_ROOT_ENV, "Feast's offline tables")
    ephemeral.setenv(OFFLINE_ROOT_ENV, "s3://seamless-data/feast")
    storage.require_remote_root(OFFLINE_ROOT_ENV, "Feast's offline tables")


def test_features_refuses_before_touching_the_repo(
    ephemeral: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from components.common.config import default_config_path, load_config

    repo = tmp_path / "feast"
    ephemeral.setenv("SEAMLESS_FEAST_REPO", str(repo))
    out = tmp_path / "training"
    with pytest.raises(SeamlessError, match="SEAMLESS_FEAST_OFFLINE_ROOT is not set"):
        run_features(load_config(default_config_path()), str(tmp_path / "dataset"), str(out))
    assert not repo.exists() and not out.exists()


def test_a_run_on_an_ephemeral_disk_stops_at_ingest_with_the_sentence(
    ephemeral: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What an in-cluster pod without object storage sees: exit 1, the sentence, no model."""
    generate(tmp_path / "data", n_rows=500, seed=3)
    workspace = tmp_path / "ws"
    seamless = Path(sys.executable).with_name("seamless")
    args = ["run", "training", "--data-dir", str(tmp_path / "data"), "--workspace", str(workspace)]
    result = subprocess.run([seamless, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: seamless ingest failed: SEAMLESS_SNAPSHOT_ROOT is not set" in result.stderr
    assert not (workspace / "snapshots").exists()
    assert not (workspace / "mlflow").exists()
