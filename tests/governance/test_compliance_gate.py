"""The compliance gate on a real small model: stages' logic functions, each followed by its
governance hook as the components call them (demo data -> ingest -> validate -> features
-> train -> evaluate -> register), with a policy whose segment bound the model violates.

Then: the version is a challenger and not champion, with the reason in its tags, the audit
entry and the CLI; its model card is on the MLflow run with the numbers the model gives;
`seamless promote` refuses it, refuses an override from a non-admin, and takes an
admin's override with a reason, which the audit trail and the card's approval trail keep.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from components.common.config import default_config_path, load_config
from components.common.model_input import model_input
from components.common.tables import read_table
from components.common.tracking import CHALLENGER, CHAMPION, champion_version, mlflow_client
from components.evaluate.stage import run_evaluation
from components.features.stage import run_features
from components.governance import audit, hooks
from components.ingest.stage import ingest_tables
from components.register import model_card
from components.register.stage import run_registration
from components.train.stage import HOLDOUT_TABLE, run_training
from components.train.training import encode_labels
from components.validate.stage import run_validation
from pipelines.cli import _print_outcome, app
from pipelines.demo_data import generate
from pipelines.local import summarize, use_workspace
from tests.helpers.cli import run_cli
from tests.helpers.configs import assert_one_sentence
from tests.helpers.environ import enter_env, restored_environ

pytestmark = [pytest.mark.governance, pytest.mark.slow]
RUN = "compliance-run-1"
REGIONS = ["north", "south", "east", "west", "central"]
AGE_BINS = [18, 35, 50, 91]


def write_config(path: Path, age_gap: float, unmeasurable: str = "fail") -> Path:
    """The bundled config with a small search and a policy: regions within 0.5 of the
    overall ROC AUC (always met here) and age bands within `age_gap` of it."""
    raw = yaml.safe_load(default_config_path().read_text())
    raw["model"]["search"].update({"n_iter": 1, "cv": 2, "space": {"max_iter": [40]}})
    raw["compliance"] = {
        "max_gap": 0.5,
        "min_rows": 20,
        "unmeasurable": unmeasurable,
        "segments": [
            {"column": "region", "values": REGIONS},
            {"name": "age_band", "column": "age", "bins": AGE_BINS, "max_gap": age_gap},
        ],
    }
    raw["model_card"] = {
        "intended_use": "Rank loan applications by default risk for manual review.",
        "owners": ["risk-ml@example.com"],
        "limitations": ["Trained on synthetic data."],
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("compliance")
    with restored_environ():
        # A bound no age band meets (0: any difference from the overall is too much).
        strict = write_config(root / "strict.yaml", age_gap=0.0)
        config = load_config(strict)
        generate(root / "data", n_rows=2000, seed=3)
        ws = root / "ws"
        use_workspace(ws)
        os.environ["SEAMLESS_ACTOR"] = "pipeline"
        os.environ["SEAMLESS_ROLE"] = "ml_engineer"  # as pipeline pods run
        run = root / "run"
        dataset = run / "dataset"
        ingest_tables(config, root / "data", dataset)
        hooks.on_ingest(dataset, RUN)
        report = run / "validation.html"
        validation = run_validation(config, str(dataset), str(report))
        hooks.on_validate(dataset, report, validation.decision, RUN)
        feature_meta = run_features(config, str(dataset), str(run / "training"), online=False)
        hooks.on_features(feature_meta, RUN)
        trained = run_training(
            config,
            str(run / "training"),
            feature_meta,
            (run / "training").as_uri(),
            RUN,
            str(run / "holdout"),
        )
        hooks.on_train(trained["model"], RUN)
        decision, _ = run_evaluation(
            config, trained["model"]["model_uri"], str(run / "holdout"), str(run / "decision.json")
        )
        outcome = run_registration(
            config,
            trained["model"],
            str(run / "decision.json"),
            decision.decision,
            validation.decision,
            feature_meta["feature_service"],
            RUN,
        )
        champion = champion_version(mlflow_client(), config.model.name, CHAMPION)
        yield {
            "root": root,
            "ws": ws,
            "strict": strict,
            "config": config,
            "gate": decision,
            "validation": validation.decision,
            "model": trained["model"],
            "features": feature_meta,
            "run": run,
            "outcome": outcome,
            "champion_after": champion,
            "env": dict(os.environ),
        }


@pytest.fixture()
def env(built: dict[str, Any]) -> dict[str, Any]:
    return enter_env(built)


def _entries(action: str, subject: str) -> list[dict[str, Any]]:
    return [
        e for e in audit.audit_log().entries() if e["action"] == action and e["subject"] == subject
    ]


def _scores(env: dict[str, Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    """The holdout, its 0/1 labels and the registered model's scores, computed here."""
    import mlflow.sklearn

    config = env["config"]
    holdout = read_table(env["run"] / "holdout", HOLDOUT_TABLE)
    model = mlflow.sklearn.load_model(env["model"]["model_uri"])
    p = model.predict_proba(model_input(config, holdout))[:, 1]
    return holdout, encode_labels(config, holdout).to_numpy(), p


def test_a_violated_segment_bound_registers_a_challenger_never_promoted(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out, name = env["outcome"], env["config"].model.name
    version = out.registration.version
    assert env["gate"].decision == "promote"  # the first model: the gate alone would promote
    assert out.decision == "reject" and not out.registration.promoted
    assert out.registration.aliases == [CHALLENGER] and env["champion_after"] is None
    assert out.compliance.tag == "fail"
    # The failures are exactly the age bands, each named with the key that bounds it.
    failed = out.compliance.failures()
    assert failed and {c.subject.split("=")[0] for c in failed} == {"age_band"}
    assert all("compliance.segments[1].max_gap" in c.sentence for c in failed)
    assert out.reason.startswith("compliance failed: segment age_band=[18, 35) roc_auc ")
    assert out.reason.endswith(f"(the gate alone would promote: {env['gate'].reason})")
    assert_one_sentence(out.reason + ".", "age_band", "compliance.segments[1].max_gap")

    mv = mlflow_client().get_model_version(name, version)
    assert mv.tags["seamless.decision"] == "reject"
    assert mv.tags["seamless.decision_reason"] == out.reason
    assert mv.tags["seamless.compliance"] == "fail"
    assert mv.tags["seamless.gate_decision"] == "promote"
    assert mv.description == f"reject: {out.reason}"
    assert sorted(mv.aliases) == [CHALLENGER]

    subject = audit.model_subject(name, version)
    [entry] = _entries(audit.REGISTRY_CHANGE, subject)
    assert entry["details"]["reason"] == out.reason
    assert entry["details"]["compliance"]["result"] == "fail"
    assert entry["details"]["compliance"]["reason"] == out.compliance.reason
    assert entry["details"]["gate"]["decision"] == "promote"
    assert _entries(audit.PROMOTION, subject) == []

    # What `seamless run training` prints at the end of such a run.
    summary = summarize(env["config"], env["validation"], since=0)
    assert (summary.version, summary.decision, summary.compliance) == (version, "reject", "fail")
    assert summary.reason == out.reason and summary.champion_version is None
    _print_outcome(summary.to_dict(), env["ws"])
    printed = capsys.readouterr().out
    assert f"reject: {out.reason}" in printed and out.card_uri in printed


def test_the_model_card_is_on_the_run_with_the_numbers_the_model_gives(
    env: dict[str, Any],
) -> None:
    out, config = env["outcome"], env["config"]
    run_id = env["model"]["run_id"]
    version_number = out.registration.version
    assert out.card_uri == f"runs:/{run_id}/model_card/v{version_number}"
    version = mlflow_client().get_model_version(config.model.name, out.registration.version)
    assert version.tags["seamless.model_card"] == out.card_uri
    card = model_card.read_card(run_id, version_number)
    assert card is not None and card == json.loads(json.dumps(out.card, default=str))
    # The Markdown on the run is the register step's KFP output, rendered from this JSON.
    with_md = mlflow_client().download_artifacts(
        run_id, f"model_card/v{version_number}/model_card.md", str(env["root"])
    )
    assert Path(with_md).read_text() == out.card_markdown == model_card.render_markdown(card)

    evaluation = json.loads((env["run"] / "decision.json").read_text())
    assert card["evaluation"]["holdout"] == evaluation["challenger_metrics"]
    for key, value in card["evaluation"]["holdout"].items():
        assert version.tags[f"holdout.{key}"] == f"{value:.6g}"

    holdout, y, p = _scores(env)
    overall = roc_auc_score(y, p)
    assert card["segments"]["overall"] == pytest.approx(overall)
    assert card["evaluation"]["holdout"]["roc_auc"] == pytest.approx(overall)
    regions, ages = card["segments"]["segments"]
    for group in regions["groups"]:
        mask = (holdout["region"] == group["group"]).to_numpy()
        assert group["rows"] == mask.sum()
        assert group["value"] == pytest.approx(roc_auc_score(y[mask], p[mask]))
        assert group["status"] == "within"
    for group, (low, high) in zip(ages["groups"], pairwise(AGE_BINS), strict=True):
        upper = holdout["age"] <= high if high == AGE_BINS[-1] else holdout["age"] < high
        mask = ((holdout["age"] >= low) & upper).to_numpy()
        assert group["rows"] == mask.sum()
        assert group["value"] == pytest.approx(roc_auc_score(y[mask], p[mask]))
        assert group["status"] == "outside"
        assert f"{group['value']:.4f}" in out.card_markdown

    data = card["data"]
    assert {s["table"] for s in data["sources"]} == set(config.tables)
    assert all(len(s["source_sha256"]) == 64 for s in data["sources"])
    assert data["data_sha256"] == env["features"]["data_sha256"]
    assert data["rows"]["holdout"] == len(holdout)
    ts = holdout[config.timestamp_key(config.labels.table)]
    assert data["label_period"]["last"] == ts.max().isoformat()
    assert data["label_period"]["holdout_from"] == ts.min().isoformat()
    assert data["rows"]["training"] + len(holdout) == env["features"]["rows"]
    assert card["features"]["columns"] == dict(config.feature_types())
    assert card["owners"] == ["risk-ml@example.com"]
    assert card["compliance"]["tag"] == "fail"
    [approval] = card["approvals"]
    assert approval["action"] == "registered" and approval["decision"] == "reject"
    assert approval["actor"] == "pipeline"


def test_promote_refuses_then_takes_an_admins_override_with_a_reason(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = env["config"], env["outcome"]
    version = out.registration.version
    args = ["promote", "--version", version, "-c", str(env["strict"]), "-w", str(env["ws"])]

    # As the user sees it: exit status 1 and one sentence, with the recorded reason.
    refused = run_cli(*args, cwd=env["root"], SEAMLESS_ROLE="ml_engineer", SEAMLESS_ACTOR="bob")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    message = refused.stderr.strip().removeprefix("error: ")
    assert_one_sentence(
        message, "Refusing to promote", out.compliance.reason, "--override-compliance"
    )
    assert champion_version(mlflow_client(), config.model.name, CHAMPION) is None

    runner = CliRunner()
    monkeypatch.setenv("SEAMLESS_ACTOR", "bob")
    monkeypatch.setenv("SEAMLESS_ROLE", "ml_engineer")
    no_reason = runner.invoke(app, [*args, "--override-compliance"])
    assert "--override-compliance needs --reason" in str(no_reason.exception)
    not_admin = runner.invoke(app, [*args, "--override-compliance", "--reason", "ship it"])
    assert "bob (role ml_engineer) may not override_compliance: needs one of admin" in str(
        not_admin.exception
    )
    subject = audit.model_subject(config.model.name, version)
    [denied] = _entries(audit.ACCESS_DENIED, subject)
    assert denied["actor"] == "bob" and denied["details"]["action"] == "override_compliance"
    assert champion_version(mlflow_client(), config.model.name, CHAMPION) is None

    why = "Risk committee 2026-12-01: age bands reviewed by hand"
    monkeypatch.setenv("SEAMLESS_ACTOR", "alice")
    monkeypatch.setenv("SEAMLESS_ROLE", "admin")
    done = runner.invoke(app, [*args, "--override-compliance", "--reason", why])
    assert done.exit_code == 0, done.output or done.exception
    assert f"champion v{version}" in done.output and "compliance policy overridden" in done.output
    assert str(champion_version(mlflow_client(), config.model.name, CHAMPION).version) == version

    [promotion] = _entries(audit.PROMOTION, subject)
    assert promotion["actor"] == "alice"
    assert promotion["details"]["reason"] == why
    assert promotion["details"]["compliance"] == {
        "result": "fail",
        "policy_reason": out.compliance.reason,
        "override_compliance": True,
        "override_reason": why,
    }
    card = model_card.read_card(env["model"]["run_id"], version)
    assert card is not None
    registered, manual = card["approvals"]
    assert registered["action"] == "registered"
    assert manual["action"] == "manual_promotion" and manual["override_compliance"] is True
    assert manual["actor"] == "alice" and manual["reason"] == why
    assert manual["audit_seq"] == promotion["seq"]


def test_a_compliant_model_is_promoted_with_its_card(env: dict[str, Any]) -> None:
    """The same model and evaluation under a policy it meets: promoted, `pass` recorded."""
    relaxed = load_config(write_config(env["root"] / "relaxed.yaml", age_gap=0.5))
    out = run_registration(
        relaxed,
        env["model"],
        str(env["run"] / "decision.json"),
        "promote",
        env["validation"],
        env["features"]["feature_service"],
        RUN,
    )
    assert out.decision == "promote" and out.registration.promoted, out.reason
    assert out.compliance.tag == "pass" and out.compliance.failures() == []
    assert out.reason == f"{env['gate'].reason}; {out.compliance.reason}"
    assert out.compliance.counts["measured"] == len(REGIONS) + len(AGE_BINS) - 1
    champ = champion_version(mlflow_client(), relaxed.model.name, CHAMPION)
    assert str(champ.version) == out.registration.version
    assert champ.tags["seamless.compliance"] == "pass"
    assert "**Compliance: passed.**" in out.card_markdown
