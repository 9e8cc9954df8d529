"""Each component's KFP contract, run one by one through kfp.local's SubprocessRunner."""

# No `from __future__ import annotations`: KFP reads the pipeline annotations as types.
import json
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.features.component import features
from components.ingest.component import ingest
from components.register.component import register
from components.train.component import train
from components.validate.component import validate

pytestmark = [pytest.mark.component, pytest.mark.slow]


@pytest.fixture()
def local_runner(workspace: Path) -> Path:
    from kfp import local

    from pipelines.local import use_workspace

    use_workspace(workspace)
    warnings.filterwarnings("ignore", message=".*non-Python base image")
    root = workspace / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


class Outputs(NamedTuple):
    sha: str
    dataset: Dataset
    validation: str
    report: HTML
    validation_metrics: Metrics
    service: str
    training_set: Dataset
    model: Model
    holdout: Dataset
    decision: str
    classification: ClassificationMetrics
    evaluation: Artifact
    registered: str
    version: str
    model_card: Markdown
    live: str


@dsl.pipeline(name="component-contracts")
def chain(cfg: str, data_dir: str) -> Outputs:
    """Every stage once, wired without gates so every output can be returned."""
    ingested = ingest(config_yaml=cfg, data_dir=data_dir)
    checked = validate(config_yaml=cfg, dataset=ingested.outputs["dataset"])
    feats = features(config_yaml=cfg, dataset=ingested.outputs["dataset"])
    trained = train(
        config_yaml=cfg, training_set=feats.outputs["training_set"], pipeline_run_id="ct"
    )
    judged = evaluate(
        config_yaml=cfg, model=trained.outputs["model"], holdout=trained.outputs["holdout"]
    )
    registered = register(
        config_yaml=cfg,
        model=trained.outputs["model"],
        evaluation=judged.outputs["decision"],
        decision=judged.outputs["Output"],
        validation_decision=checked.outputs["Output"],
        feature_service=feats.outputs["Output"],
        pipeline_run_id="ct",
    )
    deployed = deploy(config_yaml=cfg, version=registered.outputs["version"], pipeline_run_id="ct")
    return Outputs(
        sha=ingested.outputs["Output"],
        dataset=ingested.outputs["dataset"],
        validation=checked.outputs["Output"],
        report=checked.outputs["report"],
        validation_metrics=checked.outputs["metrics"],
        service=feats.outputs["Output"],
        training_set=feats.outputs["training_set"],
        model=trained.outputs["model"],
        holdout=trained.outputs["holdout"],
        decision=judged.outputs["Output"],
        classification=judged.outputs["classification"],
        evaluation=judged.outputs["decision"],
        registered=registered.outputs["Output"],
        version=registered.outputs["version"],
        model_card=registered.outputs["model_card"],
        live=deployed.output,
    )


def test_stage_contracts(local_runner: Path, demo_data: Path, quick_config: Path) -> None:
    out = chain(cfg=quick_config.read_text(), data_dir=str(demo_data)).outputs

    dataset = out["dataset"]
    assert out["sha"] == dataset.metadata["sha256"]
    assert dataset.metadata["labels.rows"] == 6000
    assert (Path(dataset.path) / "manifest.json").is_file()

    assert out["validation"] in ("pass", "warn")
    assert out["report"].schema_title == "system.HTML"
    assert "<html" in Path(out["report"].path).read_text().lower()
    checks = out["validation_metrics"].metadata
    assert checks["evaluated"] - checks["builtin"] == 14 and checks["builtin"] > 40

    assert out["service"] == "credit_risk_v1"
    assert out["training_set"].metadata["rows"] == 6000
    assert out["training_set"].metadata["data_sha256"] == dataset.metadata["sha256"]

    model = out["model"]
    assert model.metadata["model_uri"].startswith("models:/")
    assert model.metadata["data_sha256"] == dataset.metadata["sha256"]
    assert out["holdout"].metadata["rows"] == 1200

    assert out["decision"] == "promote"
    classification = out["classification"].metadata
    assert len(classification["confidenceMetrics"]) > 10
    assert classification["confusionMatrix"]["rows"]
    evaluation = json.loads(Path(out["evaluation"].path).read_text())
    assert evaluation["decision"] == "promote" and evaluation["reason"]

    # No compliance policy in this config: the gate's decision stands, the card is written.
    assert out["registered"] == "promote"
    assert out["version"] == "1"
    card = out["model_card"]
    assert card.schema_title == "system.Markdown"
    assert card.metadata["compliance"] == "none" and card.metadata["decision"] == "promote"
    assert card.metadata["mlflow_uri"] == f"runs:/{model.metadata['run_id']}/model_card/v1"
    text = Path(card.path).read_text()
    assert text.startswith("# Model card: credit\\_risk version 1\n")
    assert "No compliance policy is declared" in text
    assert out["live"] == "models:/credit_risk/1"


def test_failing_step_surfaces_its_sentence(
    local_runner: Path, quick_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error_file = tmp_path / "errors.txt"
    monkeypatch.setenv("SEAMLESS_ERROR_FILE", str(error_file))
    with pytest.raises(RuntimeError, match="ingest"):
        ingest(config_yaml=quick_config.read_text(), data_dir=str(tmp_path / "nothing-here"))
    message = error_file.read_text().strip()
    assert message.startswith("seamless ingest failed:")
    assert "profiles.parquet" in message and "\n" not in message
    assert "Traceback" not in message
    assert os.environ["SEAMLESS_ERROR_FILE"] == str(error_file)
