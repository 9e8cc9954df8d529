"""A key in two sections of .env.example means two things (each client's
MLFLOW_TRACKING_USERNAME, each database role's URLs): gen_secrets.py fills each file from
its own section. Before, one value per key name was shared, so the dashboard's files got
serving's database roles and the MLflow admin."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from k8s_objects import MANIFESTS

pytestmark = pytest.mark.manifests


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_each_file_gets_its_own_sections_values(tmp_path: Path) -> None:
    folder = tmp_path / "kind"
    folder.mkdir()
    for name in ("kustomization.yaml", "secrets.example"):
        shutil.copy(MANIFESTS / "overlays" / "kind" / name, folder / name)
    subprocess.run(
        [sys.executable, str(MANIFESTS / "tools" / "gen_secrets.py"), str(folder)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    secrets = folder / "secrets"
    server, client = _env(secrets / "mlflow-server.env"), _env(secrets / "mlflow-client.env")
    viewer = _env(secrets / "dashboard-mlflow.env")
    assert client["MLFLOW_TRACKING_USERNAME"] == server["MLFLOW_AUTH_ADMIN_USERNAME"]
    assert client["MLFLOW_TRACKING_PASSWORD"] == server["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert viewer["MLFLOW_TRACKING_USERNAME"] == "dashboard"
    assert viewer["MLFLOW_TRACKING_PASSWORD"] not in (
        server["MLFLOW_AUTH_ADMIN_PASSWORD"],
        "",
    )
    apps, dash = _env(secrets / "app-databases.env"), _env(secrets / "dashboard-databases.env")
    password = dash["DASHBOARD_DB_PASSWORD"]
    assert dash["SEAMLESS_SERVE_LOG_URL"] == (
        f"postgresql://dashboard:{password}@postgres:5432/predictions"
    )
    assert dash["SEAMLESS_AUDIT_URL"] == f"postgresql://dashboard:{password}@postgres:5432/audit"
    assert apps["SEAMLESS_SERVE_LOG_URL"].startswith("postgresql://serving:")
    assert apps["SEAMLESS_AUDIT_URL"].startswith("postgresql://audit:")
