"""The MLflow and Feast server images start locked down, pass their own HEALTHCHECK, and work."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.containers.conftest import SERVICE_IMAGES, docker, http_get, inspect

pytestmark = pytest.mark.containers

# How cluster manifests run them: non-root, read-only root, writable /tmp only.
LOCKED_DOWN = (
    "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
)  # fmt: skip


@pytest.mark.parametrize("name", [*SERVICE_IMAGES, "serving"])
def test_service_images_declare_a_healthcheck_and_run_as_non_root(
    images: dict[str, str], name: str
) -> None:
    config = inspect(images[name])["Config"]
    assert config.get("Healthcheck", {}).get("Test"), f"{name} declares no HEALTHCHECK"
    assert config["User"] not in ("", "0", "root"), f"{name} runs as root"


def test_mlflow_server_serves_a_client_through_the_host_guard(
    images: dict[str, str], start_container
) -> None:
    mlflow = start_container(
        images["mlflow"], *LOCKED_DOWN, "--tmpfs", "/mlflow", "-p", "127.0.0.1::5000",
        command=(
            "mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "2",
            "--backend-store-uri", "sqlite:////mlflow/mlflow.db",
            "--artifacts-destination", "/mlflow/artifacts",
            # Replaces the defaults: exactly the names clients use (here: the published port).
            "--allowed-hosts", "127.0.0.1:*,localhost:*",
        ),
    )  # fmt: skip
    mlflow.wait_healthy()
    base = f"http://127.0.0.1:{mlflow.port(5000)}"
    assert http_get(f"{base}/health") == 200
    # The DNS-rebinding guard: an unknown Host header is refused.
    assert http_get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1",
                    headers={"Host": "attacker.example:5000"}) == 403  # fmt: skip

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=base, registry_uri=base)
    name = f"containers-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    assert client.get_experiment(experiment_id).name == name
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "auc", 0.9)
    assert client.get_run(run.info.run_id).data.metrics["auc"] == 0.9


def _feast(repo: Path, *args: str) -> None:
    """The host's Feast CLI (same version as the image) on `repo`."""
    feast = Path(sys.executable).with_name("feast")
    subprocess.run(
        [str(feast), "-c", str(repo), *args], check=True, capture_output=True, timeout=300
    )


def test_feast_server_serves_a_local_repo(
    images: dict[str, str], start_container, tmp_path: Path
) -> None:
    # Redis and PostgreSQL images cannot be pulled here: a SQLite repo stands in for them,
    # mounted over the baked /feature_repo (the server code path is the same).
    repo = tmp_path / "feature_repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        yaml.safe_dump(
            {
                "project": "credit_risk",
                "provider": "local",
                "registry": {"registry_type": "file", "path": "registry.db"},
                "online_store": {"type": "sqlite", "path": "online_store.db"},
                "offline_store": {"type": "file"},
                "entity_key_serialization_version": 3,
            }
        )
    )
    _feast(repo, "apply")
    # The container's user (uid 10001) reads the files; pytest makes tmp dirs 0700.
    for path in (tmp_path, repo, *repo.iterdir()):
        path.chmod(0o777 if path.is_dir() else 0o666)

    feast = start_container(
        images["feast"], *LOCKED_DOWN, "-v", f"{repo}:/feature_repo", "-p", "127.0.0.1::6566"
    )
    feast.wait_healthy()
    assert http_get(f"http://127.0.0.1:{feast.port(6566)}/health") == 200


def test_feast_image_names_its_missing_settings(images: dict[str, str]) -> None:
    version = docker("run", "--rm", "--network", "none", images["feast"], "feast", "version")
    assert "0.67.0" in version.stdout
    proc = docker("run", "--rm", "--network", "none", images["feast"], check=False)
    assert proc.returncode == 64
    assert "needs the environment variable FEAST_" in proc.stderr
