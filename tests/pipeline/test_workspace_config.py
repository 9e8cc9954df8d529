"""A workspace remembers the config it was trained with, and survives a move (issue #13,
items 8 and 9).

One workspace is trained through the CLI with a config that is not the demo's (another
model name and Feast project). Later commands run against it without --config (they
must use the workspace's config, not fall back to the bundled demo) and with a
conflicting --config (one sentence, exit 1). Then the workspace is moved and the old
path renamed away, so nothing can silently read the old stores: status, materialize,
serving (a real `seamless serve` process answering predictions), a second training
run, promote and rollback all work in the new place, and a copy gets stores of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from components.common.config import default_config_path, load_config
from tests.helpers.cli import SEAMLESS, run_cli
from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]
MODEL = "loan_default"
# Columns of an MLflow SQLite store that hold artifact locations.
LOCATIONS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
)


def _cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    drop = ["COLUMNS", "MLFLOW_TRACKING_URI", "SEAMLESS_FEAST_REPO", "SEAMLESS_WORKSPACE"]
    return run_cli(*args, cwd=cwd, timeout=timeout, drop=drop)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    return result.stdout


def _one_sentence_error(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err + result.stdout, err
    assert err.startswith("error: "), err
    sentence = " ".join(err.removeprefix("error: ").split())  # rich may wrap long lines
    assert sentence.endswith("."), sentence
    for part in parts:
        assert part in sentence, f"{part!r} not in: {sentence}"
    return sentence


def _loans_config(path: Path, **model: Any) -> Path:
    """The bundled config as another use case: model, experiment and Feast project renamed,
    a small search so a run takes seconds."""
    raw = yaml.safe_load(default_config_path().read_text())
    raw["name"] = "loans"
    raw["features"]["project"] = "loans"
    raw["model"].update({"name": MODEL, "experiment": MODEL, **model})
    raw["model"]["search"].update({"n_iter": 2, "cv": 2})
    raw["model"]["search"]["space"] = {"learning_rate": [0.05, 0.1], "max_iter": [60]}
    path.write_text("# loans: the demo tables as another use case\n" + yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[dict[str, Any]]:
    """A workspace trained once with the loans config (module-wide; `moved` relocates it)."""
    root = tmp_path_factory.mktemp("wsconf")
    original = root / "original"
    original.mkdir()
    config = _loans_config(root / "loans.yaml")
    trained = _cli(
        "run", "training", "--config", str(config), "--data-dir", str(demo_data),
        "--workspace", str(original / "ws"), cwd=root,
    )  # fmt: skip
    _ok(trained)
    yield {
        "root": root,
        "ws": original / "ws",
        "config": config,
        "data": demo_data,
        "training_stdout": trained.stdout,
    }


def test_training_records_the_config(env: dict[str, Any]) -> None:
    recorded = env["ws"] / "config.yaml"
    text = recorded.read_text()
    original = env["config"].read_text()
    assert text.endswith(original)
    assert f"# source: {env['config'].resolve()}" in text
    import hashlib

    assert f"# sha256: {hashlib.sha256(original.encode()).hexdigest()}" in text
    assert load_config(recorded) == load_config(env["config"])
    assert not list(env["ws"].glob(".config.yaml.*")), "a temporary file was left behind"


def test_training_summary_is_not_cut_when_piped(env: dict[str, Any]) -> None:
    """Item 15: a table printed to a pipe is as wide as its content, not 80 columns."""
    lines = env["training_stdout"].splitlines()
    decision = [line for line in lines if "│ decision" in line]
    assert len(decision) == 1, env["training_stdout"]
    assert "promote: no champion yet;" in decision[0] and "first champion" in decision[0]
    assert max(len(line) for line in lines) > 80


def test_status_uses_the_workspace_config(env: dict[str, Any]) -> None:
    status = json.loads(
        _ok(_cli("status", "--workspace", str(env["ws"]), "--json", cwd=env["root"]))
    )
    assert status["model_name"] == MODEL
    assert status["champion"]["version"] == "1"
    assert status["config"]["path"] == str((env["ws"] / "config.yaml").resolve())
    assert status["config"]["source"] == str(env["config"].resolve())
    text = _ok(_cli("status", "--workspace", str(env["ws"]), cwd=env["root"]))
    assert f"{MODEL} champion" in text and "No champion" not in text


def test_lineage_and_monitor_use_the_workspace_config(env: dict[str, Any]) -> None:
    ws = str(env["ws"])
    chain = json.loads(
        _ok(_cli("lineage", "--workspace", ws, "--version", "1", "--json", cwd=env["root"]))
    )
    assert chain["model_name"] == MODEL and chain["version"] == "1"
    report = json.loads(
        _ok(_cli("monitor", "run", "--workspace", ws, "--no-mlflow", "--json", cwd=env["root"]))
    )
    assert report["model_name"] == MODEL


COMMANDS = [
    ["status"],
    ["lineage", "--version", "1"],
    ["promote", "--version", "1"],
    ["rollback"],
    ["monitor", "run", "--no-mlflow"],
    ["features", "materialize"],
    ["run", "monitoring"],
    ["serve", "--no-auth", "--port", "9"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_a_config_for_another_model_is_refused(env: dict[str, Any], command: list[str]) -> None:
    result = _cli(
        *command, "--workspace", str(env["ws"]), "--config", str(default_config_path()),
        cwd=env["root"], timeout=120,
    )  # fmt: skip
    _one_sentence_error(result, "model 'credit_risk'", f"model '{MODEL}'", "config.yaml")


def test_a_config_with_other_settings_is_refused(env: dict[str, Any]) -> None:
    edited = _loans_config(env["root"] / "edited.yaml", threshold=0.3)
    for command in (["status"], ["serve", "--no-auth", "--port", "9"]):
        result = _cli(
            *command, "--workspace", str(env["ws"]), "--config", str(edited), cwd=env["root"]
        )
        _one_sentence_error(result, "differs from the config", "model.threshold")
    # The workspace's own config, from where it came or its copy, is fine.
    for config in (env["config"], env["ws"] / "config.yaml"):
        _ok(_cli("status", "--workspace", str(env["ws"]), "--config", str(config), cwd=env["root"]))


def test_training_another_model_into_the_workspace_is_refused(env: dict[str, Any]) -> None:
    before = (env["ws"] / "config.yaml").read_bytes()
    result = _cli(
        "run", "training", "--workspace", str(env["ws"]), "--config", str(default_config_path()),
        "--data-dir", str(env["data"]), cwd=env["root"],
    )  # fmt: skip
    _one_sentence_error(result, "model 'credit_risk'", "another --workspace")
    assert (env["ws"] / "config.yaml").read_bytes() == before


def test_a_workspace_without_record_does_not_pass_for_the_demo(
    env: dict[str, Any], tmp_path: Path
) -> None:
    """A workspace trained before workspaces recorded their config: no silent fallback."""
    legacy = tmp_path / "legacy"
    shutil.copytree(env["ws"], legacy)
    (legacy / "config.yaml").unlink()
    result = _cli("status", "--workspace", str(legacy), cwd=tmp_path)
    _one_sentence_error(result, "records no config", f"'{MODEL}'", "--config")
    assert (
        json.loads(
            _ok(
                _cli(
                    "status",
                    "--workspace",
                    str(legacy),
                    "--config",
                    str(env["config"]),
                    "--json",
                    cwd=tmp_path,
                )
            )
        )["champion"]["version"]
        == "1"
    )


# ------------------------------------------------------------------ item 9: relocation


def _locations(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [
            str(v)
            for table, column in LOCATIONS
            for (v,) in conn.execute(f"SELECT {column} FROM {table} WHERE {column} LIKE 'file:%'")
        ]


def _registry_path(ws: Path) -> str:
    return str(
        yaml.safe_load((ws / "feast" / "feature_store.yaml").read_text())["registry"]["path"]
    )


@pytest.fixture(scope="module")
def moved(env: dict[str, Any]) -> dict[str, Any]:
    """The workspace moved to another folder; its old folder renamed so nothing reads it."""
    if "old_ws" not in env:
        old_ws = env["ws"]
        new_ws = env["root"] / "elsewhere" / "moved-ws"
        new_ws.parent.mkdir()
        shutil.move(str(old_ws), str(new_ws))
        # The old parent goes away too: a store still pointing there cannot be read.
        env["root"].joinpath("original").rename(env["root"] / "gone")
        env.update(old_ws=old_ws, ws=new_ws)
    return env


def test_status_in_a_moved_workspace(moved: dict[str, Any]) -> None:
    ws, old = moved["ws"], moved["old_ws"]
    db = ws / "mlflow" / "mlflow.db"
    assert any(str(old) in loc for loc in _locations(db)), "the store should name its old place"
    assert str(old) in _registry_path(ws)

    result = _cli("status", "--workspace", str(ws), "--json", cwd=moved["root"])
    status = json.loads(_ok(result))
    assert status["model_name"] == MODEL and status["champion"]["version"] == "1"
    assert "moved or copied" in result.stderr and str(old) in result.stderr

    locations = _locations(db)
    assert locations and all(
        loc.startswith((ws / "mlflow" / "artifacts").as_uri()) for loc in locations
    )
    assert _registry_path(ws) == f"sqlite:///{ws / 'feast' / 'registry.db'}"
    # A second command finds nothing to rewrite.
    again = _cli("status", "--workspace", str(ws), cwd=moved["root"])
    assert "moved or copied" not in _ok(again) + again.stderr
    assert not moved["old_ws"].exists() and not (moved["root"] / "original").exists()


def test_materialize_in_a_moved_workspace(moved: dict[str, Any]) -> None:
    """The registry's file sources point into the moved repo (materialize reads them)."""
    ws = moved["ws"]
    out = _ok(_cli("features", "materialize", "--workspace", str(ws), cwd=moved["root"]))
    assert "materialized" in out
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(ws / "feast"))
    paths = [str(getattr(v.batch_source, "path", "")) for v in store.list_feature_views()]
    assert paths and all(p.startswith(f"{ws / 'feast'}/") for p in paths), paths


def test_serving_a_moved_workspace(moved: dict[str, Any], demo_data: Path) -> None:
    """`seamless serve` without --config serves the workspace's model from the new place."""
    ws, port = moved["ws"], free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "SEAMLESS_FEAST_REPO")
    }
    base = f"http://127.0.0.1:{port}"
    with http_daemon(
        [SEAMLESS, "serve", "--workspace", str(ws), "--port", str(port), "--no-auth",
         "--poll-seconds", "0", "--log-level", "warning"],
        moved["root"] / "serve.log", f"{base}/readyz", timeout_s=120, grace_s=0, poll_s=0.5,
        cwd=moved["root"], env=env,
    ):  # fmt: skip
        ids = pd.read_parquet(demo_data / "labels.parquet")["customer_id"].head(3).tolist()
        answer = requests.post(f"{base}/v1/predict", json={"entity_ids": ids}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_name"] == MODEL and str(body["model_version"]) == "1"
        assert all(0 <= p["score"] <= 1 for p in body["predictions"])


@pytest.fixture(scope="module")
def retrained(moved: dict[str, Any]) -> dict[str, Any]:
    """A second training run in the moved workspace, without --config."""
    if "second" not in moved:
        result = _cli(
            "run", "training", "--workspace", str(moved["ws"]), "--data-dir", str(moved["data"]),
            "--json", cwd=moved["root"],
        )  # fmt: skip
        moved["second"] = json.loads(_ok(result))
    return moved


def test_second_training_in_a_moved_workspace(retrained: dict[str, Any]) -> None:
    ws, second = retrained["ws"], retrained["second"]
    assert second["model_name"] == MODEL and second["version"] == "2", second
    assert second["run_dir"].startswith(f"{ws}/kfp/")
    locations = _locations(ws / "mlflow" / "mlflow.db")
    assert len(locations) >= 6
    assert all(loc.startswith((ws / "mlflow" / "artifacts").as_uri()) for loc in locations)
    assert not (retrained["root"] / "original").exists(), "something wrote to the old path"
    assert not retrained["old_ws"].exists()


def test_promote_and_rollback_use_the_workspace_config(retrained: dict[str, Any]) -> None:
    ws, root = str(retrained["ws"]), retrained["root"]
    out = _ok(_cli("promote", "--workspace", ws, "--version", "2", "--reason", "test", cwd=root))
    assert f"{MODEL}: champion v2" in out
    out = _ok(_cli("rollback", "--workspace", ws, "--reason", "test", cwd=root))
    assert f"{MODEL}: champion back to v1" in out
    status = json.loads(_ok(_cli("status", "--workspace", ws, "--json", cwd=root)))
    assert status["champion"]["version"] == "1"


def test_a_copied_workspace_gets_stores_of_its_own(
    retrained: dict[str, Any], tmp_path: Path
) -> None:
    ws = retrained["ws"]
    copy = tmp_path / "copy"
    shutil.copytree(ws, copy)
    _ok(_cli("status", "--workspace", str(copy), cwd=tmp_path))
    assert all(
        loc.startswith((copy / "mlflow" / "artifacts").as_uri())
        for loc in _locations(copy / "mlflow" / "mlflow.db")
    )
    # The original keeps its own.
    assert all(
        loc.startswith((ws / "mlflow" / "artifacts").as_uri())
        for loc in _locations(ws / "mlflow" / "mlflow.db")
    )
    assert _registry_path(copy) == f"sqlite:///{copy / 'feast' / 'registry.db'}"
    assert _registry_path(ws) == f"sqlite:///{ws / 'feast' / 'registry.db'}"
