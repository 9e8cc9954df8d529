"""The features stage as the component calls it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.env import feast_repo_path
from components.common.tables import read_dataset, read_manifest, write_dataset
from components.features.features import build_features
from components.features.repo import require_durable_offline_root
from components.train.stage import TRAINING_TABLE


def run_features(config: SeamlessConfig, dataset_path: str, out_path: str) -> dict[str, Any]:
    """Publish, apply, materialize, join; returns metadata for the training-set artifact."""
    require_durable_offline_root()
    manifest = read_manifest(dataset_path)
    hashes = {name: str(entry["sha256"]) for name, entry in manifest["tables"].items()}
    if config.engine == "spark":
        from components.features.spark_features import build_features_spark

        info, written = build_features_spark(
            config, dataset_path, hashes, feast_repo_path(), out_path
        )
        rows = int(info["rows"])
    else:
        tables = read_dataset(dataset_path)
        frame, info = build_features(config, tables, hashes, feast_repo_path(), release_inputs=True)
        written = write_dataset(Path(out_path), {TRAINING_TABLE: frame})
        rows = len(frame)
    return {
        "feature_service": str(info.get("feature_service", config.features.service)),
        "feature_views": [view.name for view in config.features.views],
        "data_sha256": str(manifest["sha256"]),
        "training_set_sha256": str(written["sha256"]),
        "rows": rows,
        "feast_repo": str(feast_repo_path()),
    }
