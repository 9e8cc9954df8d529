"""The training pipeline with `engine: spark` through kfp.local: ingest, validate and features
on Spark, train on the training set, and the choice recorded in the snapshot, MLflow and
lineage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.common.config import load_config
from components.common.env import feast_repo_path
from components.common.tables import read_manifest
from components.common.tracking import mlflow_client
from components.governance.lineage import model_lineage
from components.governance.snapshots import snapshot_path
from components.ingest.stage import ingest_tables
from pipelines.local import run_training

pytestmark = [pytest.mark.spark, pytest.mark.pipeline, pytest.mark.slow]


def test_demo_config_on_spark_trains_on_the_same_snapshot(
    demo_data: Path, quick_config: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo config reads its engine from SEAMLESS_ENGINE (make demo ENGINE=spark).
    local = ingest_tables(load_config(quick_config), demo_data, workspace / "local-ingest")
    assert local["engine"] == "local"
    monkeypatch.setenv("SEAMLESS_ENGINE", "spark")
    assert load_config(quick_config).engine == "spark"
    # A cap under the demo's label rows: train gets a recorded sample.
    raw = yaml.safe_load(quick_config.read_text())
    raw["spark"] = {"max_training_rows": 3000}
    quick_config.write_text(yaml.safe_dump(raw, sort_keys=False))

    outcome = run_training(quick_config, demo_data, workspace)
    assert outcome.version == "1" and outcome.decision == "promote", outcome.reason

    mv = mlflow_client().get_model_version(load_config(quick_config).model.name, "1")
    run = mlflow_client().get_run(mv.run_id)
    assert run.data.tags["seamless.engine"] == "spark"
    assert run.data.tags["seamless.spark_master"] == "local[*]"
    params = run.data.params
    assert params["training_sample_sampled"] == "True"
    assert params["training_sample_rows"] == "3000"
    assert int(params["training_sample_rows_available"]) > 3000
    assert int(params["train_rows"]) < 3000  # the holdout comes out of the sample
    # Same data, same snapshot: Spark's content hashes equal the local engine's.
    assert run.data.tags["seamless.data_sha256"] == local["sha256"]
    manifest = read_manifest(snapshot_path(local["sha256"]))
    assert manifest["engine"] == "spark"
    assert {e["engine"] for e in manifest["tables"].values()} == {"spark"}

    # Features ran on Feast's Spark offline store and compute engine.
    store_yaml = yaml.safe_load((feast_repo_path() / "feature_store.yaml").read_text())
    assert store_yaml["offline_store"]["type"] == "spark"

    chain = model_lineage(mv.name, "1")
    assert chain["snapshot"]["engine"] == "spark"
    assert {s["engine"] for s in chain["sources"]} == {"spark"}
    assert chain["training_run"]["tags"]["seamless.engine"] == "spark"
