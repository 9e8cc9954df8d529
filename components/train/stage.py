"""The train stage as the component calls it: paths and metadata in, metadata out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from components.common.config import SeamlessConfig
from components.common.tables import TRAINING_TABLE, write_dataset
from components.train.run import train_and_log
from components.train.sample import training_rows

HOLDOUT_TABLE = "holdout"


def run_training(
    config: SeamlessConfig,
    training_set_path: str,
    training_meta: dict[str, Any],
    training_set_uri: str,
    pipeline_run_id: str,
    holdout_path: str,
) -> dict[str, dict[str, Any]]:
    frame: pd.DataFrame
    frame, sample = training_rows(config, training_set_path, TRAINING_TABLE)
    data_sha256 = str(training_meta.get("data_sha256", ""))
    feature_service = str(training_meta.get("feature_service", config.features.service))
    result, holdout = train_and_log(
        config,
        frame,
        data_sha256=data_sha256,
        feature_service=feature_service,
        pipeline_run_id=pipeline_run_id,
        source_uri=training_set_uri,
        sample=sample,
    )
    manifest = write_dataset(Path(holdout_path), {HOLDOUT_TABLE: holdout})
    common = {"data_sha256": data_sha256, "feature_service": feature_service}
    return {
        "model": {
            **common,
            "model_uri": result.model_uri,
            "run_id": result.run_id,
            "estimator": config.model.estimator,
            "best_params": {k: str(v) for k, v in result.best_params.items()},
        },
        "holdout": {**common, "rows": len(holdout), "sha256": manifest["sha256"]},
        "metrics": {
            f"cv_{config.model.search.scoring}": result.cv_score,
            f"cv_{config.model.search.scoring}_std": result.cv_std,
            "train_rows": float(result.train_rows),
            "search_rows": float(result.search_rows),
            "seconds": result.seconds,
        },
    }
