"""The features stage as the component calls it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.env import feast_repo_path
from components.common.errors import SeamlessError
from components.common.tables import TRAINING_TABLE, read_dataset, read_manifest, write_dataset
from components.features.features import build_features
from components.features.repo import require_durable_offline_root


def run_features(
    config: SeamlessConfig, dataset_path: str, out_path: str, online: bool = True
) -> dict[str, Any]:
    """Publish, apply, materialize (with `online`), join; returns metadata for the
    training-set artifact, including the views' `online_windows` for `run_materialize`."""
    require_durable_offline_root()
    manifest = read_manifest(dataset_path)
    hashes = {name: str(entry["sha256"]) for name, entry in manifest["tables"].items()}
    if config.engine == "spark":
        from components.features.spark_features import build_features_spark

        info, written = build_features_spark(
            config, dataset_path, hashes, feast_repo_path(), out_path, online=online
        )
        rows = int(info["rows"])
    else:
        tables = read_dataset(dataset_path)
        frame, info = build_features(
            config, tables, hashes, feast_repo_path(), release_inputs=True, online=online
        )
        written = write_dataset(Path(out_path), {TRAINING_TABLE: frame})
        rows = len(frame)
    return {
        "feature_service": str(info.get("feature_service", config.features.service)),
        "feature_views": [view.name for view in config.features.views],
        "data_sha256": str(manifest["sha256"]),
        "training_set_sha256": str(written["sha256"]),
        "rows": rows,
        "feast_repo": str(feast_repo_path()),
        "online_windows": info["online_windows"],
        "materialized": bool(info["materialized"]),
        # Streamed events joined per view (components/stream): the training set's
        # metadata says the snapshot was not all it was built from.
        "pushed_rows": info.get("pushed_rows", {}),
        "timings_s": info.get("timings_s", {}),
    }


def run_materialize(config: SeamlessConfig, windows: dict[str, list[str]]) -> dict[str, Any]:
    """Load the online store with the windows the features step published (its training
    set's `online_windows`): the pipeline runs this beside training, not before it."""
    import time

    from components.features.store import materialize_windows, open_store, windows_from_json

    started = time.perf_counter()
    if config.engine == "spark":
        from components.common.spark import spark_session

        spark_session(config)  # Feast's Spark engine uses the active session: Seamless' own
    store = open_store(feast_repo_path())
    known = {fv.name for fv in store.list_feature_views()}
    missing = sorted(set(windows) - known)
    if missing:
        raise SeamlessError(
            f"Feature views {missing} are not in the Feast registry at {feast_repo_path()}; "
            "the features step publishes them first."
        )
    materialize_windows(store, windows_from_json(windows))
    return {
        "views": sorted(windows),
        "online_windows": windows,
        "duration_s": round(time.perf_counter() - started, 3),
    }
