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


def mlflow_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or the workspace's SQLite store in embedded mode."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{workspace() / 'mlflow' / 'mlflow.db'}"


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
