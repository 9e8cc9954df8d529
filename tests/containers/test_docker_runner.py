"""The training pipeline with kfp.local's DockerRunner: every step in the runtime image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components.common.errors import SeamlessError
from components.common.image import RUNTIME_IMAGE
from pipelines.local import run_training
from tests.helpers.require import unavailable

pytestmark = [pytest.mark.containers, pytest.mark.slow]


@pytest.fixture(scope="module")
def runtime_image() -> str:
    docker_ok = subprocess.run(["docker", "info"], capture_output=True, check=False)
    if docker_ok.returncode != 0:
        unavailable("Docker Engine is not running: install Debian's docker.io and start dockerd")
    present = subprocess.run(
        ["docker", "image", "inspect", RUNTIME_IMAGE], capture_output=True, check=False
    )
    if present.returncode != 0:
        unavailable(f"{RUNTIME_IMAGE} is not built: run `make images`")
    return RUNTIME_IMAGE


def test_docker_runner_matches_subprocess_runner(
    runtime_image: str, demo_data: Path, quick_trained: dict, tmp_path: Path
) -> None:
    local_run = quick_trained["outcome"]  # the same config and data, subprocess runner
    docker_run = run_training(
        quick_trained["config"], demo_data, tmp_path / "ws-docker", runner="docker"
    )
    assert docker_run.validation == local_run.validation
    assert docker_run.decision == local_run.decision == "promote"
    assert docker_run.champion_metrics == pytest.approx(local_run.champion_metrics, abs=1e-9)
    log = Path(docker_run.log_file).read_text()
    assert f"Found image '{runtime_image}'" in log
    # Steps wrote as the image's non-root user into the bind-mounted workspace.
    assert (tmp_path / "ws-docker" / "mlflow" / "mlflow.db").stat().st_uid != 0 or os.geteuid() != 0


def test_step_error_inside_the_container_reaches_the_user(
    runtime_image: str, quick_config: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    with pytest.raises(SeamlessError, match=r"seamless ingest failed: .*profiles\.parquet"):
        run_training(quick_config, empty, tmp_path / "ws", runner="docker")


def test_missing_image_fails_before_the_first_step(
    runtime_image: str, quick_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.runners as runners

    monkeypatch.setattr(runners, "RUNTIME_IMAGE", "localhost/seamless/runtime:0.0.0-missing")
    with pytest.raises(
        SeamlessError, match=r"runtime:0\.0\.0-missing is not on this machine.*make images"
    ):
        run_training(quick_config, tmp_path / "data", tmp_path / "ws", runner="docker")
    assert not list((tmp_path / "ws").glob("kfp/seamless-training-*")), "no step may have started"
