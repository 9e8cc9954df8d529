"""The whole training loop through kfp.local with real MLflow, Feast and Great Expectations."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from components.common.config import load_config
from components.common.errors import SeamlessError
from components.common.tracking import CHALLENGER, CHAMPION, mlflow_client
from pipelines.local import run_training
from pipelines.status import champion_status

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def _versions(name: str) -> list[str]:
    return sorted(str(v.version) for v in mlflow_client().search_model_versions(f"name='{name}'"))


def test_train_twice_then_gate_against_the_champion(
    demo_data: Path, quick_trained: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick_config, workspace = quick_trained["config"], quick_trained["workspace"]
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(workspace))
    config = load_config(quick_config)
    name = config.model.name

    first = quick_trained["outcome"]  # the first training in that workspace
    assert first.validation in ("pass", "warn")
    assert first.version == "1" and first.decision == "promote", first.reason
    assert first.champion_version == "1"
    assert 0.7 < first.champion_metrics["roc_auc"] < 0.95
    report = Path(first.reports["validation"])
    assert "<html" in report.read_text().lower()
    live = json.loads((workspace / "deployments" / f"{name}.json").read_text())
    assert live["version"] == "1"

    # Same data and seed: the challenger ties the champion, below the required margin.
    second = run_training(quick_config, demo_data, workspace)
    assert second.version == "2" and second.decision == "reject", second.reason
    assert "below the required" in (second.reason or "")
    client = mlflow_client()
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "2"
    assert json.loads((workspace / "deployments" / f"{name}.json").read_text())["version"] == "1"

    status = champion_status(config)
    champ = status["champion"]
    assert champ["version"] == "1" and len(champ["data_sha256"]) == 64
    assert champ["feature_service"] == config.features.service
    assert champ["train_run_id"] and champ["pipeline_run_id"]
    run = client.get_run(champ["train_run_id"])
    assert run.data.tags["seamless.validation"] == first.validation
    assert run.inputs.dataset_inputs[0].tags[0].value == champ["data_sha256"] or any(
        t.value == champ["data_sha256"] for t in run.inputs.dataset_inputs[0].tags
    )


def test_critical_expectation_failure_registers_nothing(
    demo_data: Path, quick_config: Path, workspace: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad-data"
    bad.mkdir()
    for f in demo_data.glob("*.parquet"):
        (bad / f.name).write_bytes(f.read_bytes())
    history = pd.read_parquet(bad / "credit_history.parquet")
    history.loc[history.index[:50], "credit_score"] = 990  # outside [300, 850]: critical
    history.to_parquet(bad / "credit_history.parquet", index=False)

    outcome = run_training(quick_config, bad, workspace)
    assert outcome.validation == "fail"
    assert outcome.version is None and outcome.champion_version is None
    assert _versions(load_config(quick_config).model.name) == []
    assert "credit_score" in Path(outcome.reports["validation"]).read_text()
    assert not (workspace / "deployments").exists()


def test_missing_source_file_fails_with_one_sentence(
    quick_config: Path, workspace: Path, tmp_path: Path
) -> None:
    with pytest.raises(SeamlessError, match=r"seamless ingest failed: .*profiles\.parquet"):
        run_training(quick_config, tmp_path / "empty", workspace)
