"""Lineage of a real small model version built with the stages' logic functions.

Demo data -> ingest -> validate (GE) -> features (Feast) -> train (MLflow) -> register
-> deploy, each followed by its governance hook, exactly as the stages will call them;
then the chain is read back by model version and by a prediction's request id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.common.errors import SeamlessError
from components.deploy.deployment import deploy_local
from components.features.stage import run_features
from components.governance import audit, hooks
from components.governance.lineage import (
    export_openlineage,
    iter_openlineage,
    model_lineage,
    render_tree,
    request_lineage,
)
from components.governance.snapshots import reports_for
from components.ingest.stage import ingest_tables
from components.predictions.files import AppendLog
from components.register.registry import register
from components.train.stage import run_training
from components.validate.stage import run_validation
from pipelines.demo_data import generate
from pipelines.governance_cli import lineage_cmd
from pipelines.local import use_workspace
from tests.helpers.environ import enter_env, restored_environ
from tests.serving.workspace import small_config

pytestmark = [pytest.mark.slow]
RUN = "gov-run-1"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("lineage")
    with restored_environ():
        config: SeamlessConfig = small_config(load_config(default_config_path()))
        data = root / "data"
        generate(data, n_rows=2000, seed=3)
        ws = root / "ws"
        use_workspace(ws)
        os.environ["SEAMLESS_ACTOR"] = "pipeline"
        dataset = root / "run" / "dataset"
        manifest = ingest_tables(config, data, dataset)
        hooks.on_ingest(dataset, RUN)
        report = root / "run" / "validation.html"
        result = run_validation(config, str(dataset), str(report))
        hooks.on_validate(dataset, report, result.decision, RUN)
        training_path = root / "run" / "training"
        feature_meta = run_features(config, str(dataset), str(training_path))
        hooks.on_features(feature_meta, RUN)
        trained = run_training(
            config,
            str(training_path),
            feature_meta,
            training_path.as_uri(),
            RUN,
            str(root / "run" / "holdout"),
        )
        hooks.on_train(trained["model"], RUN)
        tags = {
            "seamless.data_sha256": feature_meta["data_sha256"],
            "seamless.validation": result.decision,
            "seamless.feature_service": feature_meta["feature_service"],
            "seamless.pipeline_run_id": RUN,
            "seamless.train_run_id": trained["model"]["run_id"],
            "holdout.roc_auc": "0.7",
        }
        reg = register(config.model.name, trained["model"]["model_uri"], "promote", tags)
        hooks.on_register(reg, RUN, reason="first model")
        record = deploy_local(config.model.name, reg.version, ws / "deployments", RUN)
        hooks.on_deploy(record)
        hooks.on_monitoring_decision(config.model.name, reg.version, "keep", {"psi_max": 0.04})
        # One served request, written by the serving layer's own log writer.
        predictions = AppendLog(ws / "predictions", "predictions")
        predictions.open()
        predictions.append(
            [
                {
                    "ts": "2026-01-01T00:00:00+00:00",
                    "request_id": f"req-{i // 2}",
                    "index": i % 2,
                    "entity_id": 1000 + i,
                    "route": "/predict",
                    "model_name": config.model.name,
                    "model_version": reg.version,
                    "features": {},
                    "score": 0.25,
                    "decision": False,
                }
                for i in range(4)
            ]
        )
        predictions.close()
        yield {
            "ws": ws,
            "config": config,
            "version": reg.version,
            "sha": manifest["sha256"],
            "run_id": trained["model"]["run_id"],
            "features": feature_meta,
            "env": dict(os.environ),
        }


@pytest.fixture()
def env(built: dict[str, Any]) -> dict[str, Any]:
    return enter_env(built)


def test_model_chain(env: dict[str, Any]) -> None:
    name, version, sha = env["config"].model.name, env["version"], env["sha"]
    chain = model_lineage(name, version, verify_content=True)
    assert chain["gaps"] == []
    assert chain["data_sha256"] == sha and chain["pipeline_run_id"] == RUN
    assert {s["table"] for s in chain["sources"]} == set(env["config"].tables)
    assert all(s["kind"] == "file" and s["source_sha256"] for s in chain["sources"])
    assert chain["snapshot"]["intact"] and chain["snapshot"]["path"].endswith(sha)
    assert chain["validation"]["decision"] in ("pass", "warn")
    assert chain["validation"]["reports"] == [str(p) for p in reports_for(sha)]
    assert Path(chain["validation"]["runs"][0]["report"]).is_file()
    feats = chain["features"]
    assert feats["feature_service"] == env["config"].features.service
    assert feats["feature_views"] == [v.name for v in env["config"].features.views]
    assert feats["training_set_sha256"] == env["features"]["training_set_sha256"]
    run = chain["training_run"]
    assert run["run_id"] == env["run_id"] and run["tags"]["seamless.data_sha256"] == sha
    assert run["inputs"][0]["tags"]["sha256"] == sha
    mv = chain["model_version"]
    assert set(mv["aliases"]) == {"champion", "challenger"}
    assert mv["holdout_metrics"] == {"roc_auc": "0.7"}
    assert [d["version"] for d in chain["deployments"]] == [version]
    actions = [d["action"] for d in chain["decisions"]]
    assert actions == ["registry_change", "promotion", "deployment", "monitoring_decision"]
    assert all(d["actor"] == "pipeline" for d in chain["decisions"])
    assert [a["details"]["step"] for a in chain["data_access"]] == [
        "ingest",
        "validate",
        "features",
        "train",
    ]
    assert audit.FileAuditLog().verify().ok

    console = Console(record=True, width=200)
    console.print(render_tree(chain))
    text = console.export_text()
    assert f"{name} v{version}" in text and sha[:16] in text and "gaps" not in text


def test_request_chain(env: dict[str, Any]) -> None:
    chain = request_lineage("req-1")
    assert chain["request"]["rows"] == 2 and chain["request"]["entity_ids"] == [1002, 1003]
    assert chain["version"] == env["version"] and chain["data_sha256"] == env["sha"]
    with pytest.raises(SeamlessError, match="Request id nope is not in the prediction log"):
        request_lineage("nope")


def test_openlineage_file(env: dict[str, Any]) -> None:
    chain = model_lineage(env["config"].model.name, env["version"])
    path = export_openlineage(chain)
    assert path == env["ws"] / "lineage" / "openlineage.jsonl"
    events = list(iter_openlineage(path))
    jobs = [e["job"]["name"] for e in events]
    assert jobs == [f"seamless.{j}" for j in ("ingest", "validate", "features", "train")] + [
        "seamless.register",
        "seamless.deploy",
    ]
    assert all(e["eventType"] == "COMPLETE" for e in events)
    parents = {e["run"]["facets"]["parent"]["run"]["runId"] for e in events}
    assert len(parents) == 1
    ingest = events[0]
    assert len(ingest["inputs"]) == len(env["config"].tables)
    [snap] = ingest["outputs"]
    assert snap["facets"]["version"]["datasetVersion"] == env["sha"]
    train = events[3]
    assert (
        train["inputs"][0]["facets"]["version"]["datasetVersion"]
        == (env["features"]["training_set_sha256"])
    )
    assert train["outputs"][0]["facets"]["version"]["datasetVersion"] == env["run_id"]
    # Exporting again gives the same run ids: consumers see the same runs, not new ones.
    export_openlineage(chain)
    again = list(iter_openlineage(path))[len(events) :]
    assert [e["run"]["runId"] for e in again] == [e["run"]["runId"] for e in events]


def test_cli(env: dict[str, Any]) -> None:
    app = typer.Typer()
    app.command("lineage")(lineage_cmd)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    ws = str(env["ws"])
    name, version = env["config"].model.name, env["version"]
    out = runner.invoke(app, ["lineage", "-w", ws, "--model", name, "--version", version, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["data_sha256"] == env["sha"]
    text = runner.invoke(app, ["lineage", "-w", ws, "--request-id", "req-0"])
    assert text.exit_code == 0 and f"{name} v{version}" in text.output
    both = runner.invoke(app, ["lineage", "-w", ws, "--request-id", "x", "--model", name])
    assert isinstance(both.exception, SeamlessError)
    missing = runner.invoke(app, ["lineage", "-w", ws, "--model", name, "--version", "99"])
    assert isinstance(missing.exception, SeamlessError)
    assert "version 99 does not exist" in str(missing.exception)


def test_cli_request_view_shows_rows_and_is_not_cut(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13 item 15: entity, score and decision without --json; a pipe gets whole lines."""
    monkeypatch.delenv("COLUMNS", raising=False)
    app = typer.Typer()
    app.command("lineage")(lineage_cmd)
    app.command("noop")(lambda: None)
    out = CliRunner().invoke(app, ["lineage", "-w", str(env["ws"]), "--request-id", "req-1"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert any("[0] entity 1002: score 0.2500, decision False" in line for line in lines), (
        out.output
    )
    assert any("[1] entity 1003: score 0.2500, decision False" in line for line in lines)
    # The snapshot line carries its whole path: nothing folded at 80 columns.
    snapshot = [line for line in lines if "snapshot " in line and "intact" in line]
    assert len(snapshot) == 1 and snapshot[0].rstrip().endswith(env["sha"]), out.output
    assert max(len(line) for line in lines) > 80


def test_cli_version_alone_uses_the_config_model(env: dict[str, Any]) -> None:
    app = typer.Typer()
    app.command("lineage")(lineage_cmd)
    app.command("noop")(lambda: None)
    ws, version = str(env["ws"]), env["version"]
    out = CliRunner().invoke(app, ["lineage", "-w", ws, "--version", version, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["model_name"] == env["config"].model.name
