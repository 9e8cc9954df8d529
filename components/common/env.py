"""Endpoints, workspace paths and telemetry settings, read when called, never at import."""

from __future__ import annotations

import os
from pathlib import Path

# Libraries that phone home by default; users' data platforms must not leak usage events.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "FEAST_USAGE": "False",
    "FEAST_TELEMETRY": "False",
    "SCARF_ANALYTICS": "false",
}


def disable_telemetry() -> None:
    """Switch off every known telemetry channel for this process and its children."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def workspace() -> Path:
    """The local workspace folder (`SEAMLESS_WORKSPACE`, default `./.seamless`)."""
    return Path(os.environ.get("SEAMLESS_WORKSPACE", ".seamless")).resolve()


MLFLOW_CA_ENV = "MLFLOW_TRACKING_SERVER_CERT_PATH"
"""The CA file MLflow's client verifies an https server with (on a cluster: seamless-ca)."""


def mlflow_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or the workspace's SQLite store in embedded mode.

    For an https server, a `MLFLOW_TRACKING_SERVER_CERT_PATH` that is not a readable file
    is refused in one sentence here, before MLflow's client fails with a bare requests
    error that does not name the setting."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        ca = os.environ.get(MLFLOW_CA_ENV, "")
        if ca and uri.startswith("https://") and not _readable_file(ca):
            from components.common.errors import SeamlessError

            raise SeamlessError(
                f"{MLFLOW_CA_ENV}={ca} is not a readable file, so the MLflow server's "
                "certificate cannot be verified: mount the CA there (on a cluster the "
                "seamless-ca ConfigMap) or unset it to trust the system's CAs."
            )
        return uri
    return f"sqlite:///{workspace() / 'mlflow' / 'mlflow.db'}"


def _readable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def feast_repo_path() -> Path:
    """Folder holding `feature_store.yaml` (`SEAMLESS_FEAST_REPO`, default in the workspace)."""
    return Path(os.environ.get("SEAMLESS_FEAST_REPO", str(workspace() / "feast"))).resolve()


def deployments_dir() -> Path:
    """Where the local deploy step records which model version is live."""
    return Path(os.environ.get("SEAMLESS_DEPLOY_DIR", str(workspace() / "deployments"))).resolve()


def feast_config_file(repo_path: Path) -> Path:
    """The feature_store.yaml to use: `SEAMLESS_FEAST_CONFIG` (a cluster mounts it from a
    ConfigMap, apart from the writable repo volume), else the repo's own."""
    override = os.environ.get("SEAMLESS_FEAST_CONFIG")
    return Path(override) if override else repo_path / "feature_store.yaml"
