"""MLflow set-up shared by the stages that talk to the tracking server or registry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from components.common.env import disable_telemetry, mlflow_tracking_uri

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
"""Alias kept on the champion a promotion replaced, so rollback is one alias move."""


def mlflow_client() -> Any:
    """Point MLflow at the configured store (creating the local one) and return a client."""
    disable_telemetry()
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # Alembic logs every migration at INFO on a new store; keep step logs readable.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str) -> str:
    """Create the experiment if needed; artifacts of a local store go next to its database."""
    import mlflow

    client = mlflow_client()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        experiment_id: str = exp.experiment_id
    else:
        uri = mlflow_tracking_uri()
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        experiment_id = client.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def champion_version(client: Any, model_name: str, alias: str = CHAMPION) -> Any | None:
    """The model version under `alias`, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None
