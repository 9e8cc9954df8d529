"""The register stage as the component calls it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.tracking import mlflow_client
from components.governance import access, hooks
from components.register.registry import Registration, register


def run_registration(
    config: SeamlessConfig,
    model_meta: dict[str, Any],
    evaluation_path: str,
    decision: str,
    validation_decision: str,
    feature_service: str,
    pipeline_run_id: str,
) -> Registration:
    evaluation = json.loads(Path(evaluation_path).read_text())
    tags = {
        "seamless.data_sha256": str(model_meta.get("data_sha256", "")),
        "seamless.validation": validation_decision,
        "seamless.feature_service": feature_service,
        "seamless.pipeline_run_id": pipeline_run_id,
        "seamless.train_run_id": str(model_meta.get("run_id", "")),
        "seamless.decision_reason": evaluation["reason"][:5000],
    }
    for key, value in evaluation["challenger_metrics"].items():
        tags[f"holdout.{key}"] = f"{value:.6g}"
    subject = f"model:{config.model.name}"
    access.require("register", subject)
    if decision == "promote":
        access.require("promote", subject)
    registration = register(
        config.model.name,
        str(model_meta["model_uri"]),
        decision,
        tags,
        description=f"{decision}: {evaluation['reason']}",
    )
    hooks.on_register(
        registration,
        pipeline_run_id,
        reason=evaluation["reason"],
        notifications=config.notifications,
        gate=evaluation,
    )
    train_run = str(model_meta.get("run_id", ""))
    if train_run:
        # The training run itself records what validation said about its data.
        mlflow_client().set_tag(train_run, "seamless.validation", validation_decision)
    return registration
