"""What is in production now: the champion, its numbers and where it came from."""

from __future__ import annotations

from typing import Any

from components.common.config import SeamlessConfig
from components.common.env import deployments_dir
from components.common.tracking import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    champion_version,
    holdout_tags,
    mlflow_client,
)
from components.deploy.deployment import live_deployment


def champion_status(config: SeamlessConfig) -> dict[str, Any]:
    client = mlflow_client()
    name = config.model.name
    status: dict[str, Any] = {"model_name": name, "champion": None}
    champ = champion_version(client, name, CHAMPION)
    if champ is not None:
        tags = dict(champ.tags)
        status["champion"] = {
            "version": str(champ.version),
            "holdout_metrics": {k: float(v) for k, v in holdout_tags(tags).items()},
            "data_sha256": tags.get("seamless.data_sha256"),
            "validation": tags.get("seamless.validation"),
            "feature_service": tags.get("seamless.feature_service"),
            "train_run_id": tags.get("seamless.train_run_id") or champ.run_id,
            "pipeline_run_id": tags.get("seamless.pipeline_run_id"),
            "decision_reason": tags.get("seamless.decision_reason"),
            "source": champ.source,
        }
    for alias in (CHALLENGER, PREVIOUS_CHAMPION):
        mv = champion_version(client, name, alias)
        status[alias] = None if mv is None else str(mv.version)
    status["deployment"] = live_deployment(name, deployments_dir())
    return status
