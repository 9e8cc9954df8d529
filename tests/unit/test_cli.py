"""The `seamless` CLI as a user runs it: help with examples, one-sentence errors, exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.common.config import default_config_path
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.unit


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd)


@pytest.mark.parametrize(
    "command", [[], ["run", "training"], ["datasets", "generate"], ["status"], ["compile"]]
)
def test_help_has_examples(command: list[str], tmp_path: Path) -> None:
    result = _run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if command:
        assert "Example" in result.stdout


def test_generate_writes_tables(tmp_path: Path) -> None:
    result = _run(
        "datasets", "generate", "--out", "d", "--rows", "400", "--seed", "1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_parquet(tmp_path / "d" / "labels.parquet")) == 400


def test_bad_config_is_one_sentence_and_exit_1(tmp_path: Path) -> None:
    raw = yaml.safe_load(default_config_path().read_text())
    raw["promotion"]["metrc"] = "roc_auc"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = _run("run", "training", "--config", str(bad), "--workspace", "ws", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown key 'promotion.metrc'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "ws").exists(), "a bad config must fail before anything is written"


def test_missing_data_fails_at_ingest_with_nothing_registered(tmp_path: Path) -> None:
    result = _run("run", "training", "--data-dir", "nowhere", "--workspace", "ws", cwd=tmp_path)
    assert result.returncode == 1
    err = " ".join(result.stderr.split())
    assert "seamless ingest failed:" in err and "profiles.parquet" in err
    status = _run("status", "--workspace", "ws", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert '"champion": null' in status.stdout


def test_status_without_champion(tmp_path: Path) -> None:
    result = _run("status", "--workspace", "ws", cwd=tmp_path)
    assert result.returncode == 0
    assert "No champion" in result.stdout


def test_tables_are_not_cut_when_piped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #13 item 15: piped output is as wide as its content (rich assumed 80 columns)."""
    from components.governance.audit import FileAuditLog

    subject = "model:" + "a_rather_long_model_name_" * 3 + "/12"
    FileAuditLog(tmp_path / "ws" / "audit").append(
        "promotion", subject, {"reason": "approved by the risk committee " * 3}, actor="alice"
    )
    monkeypatch.setenv("SEAMLESS_ROLE", "admin")
    monkeypatch.delenv("COLUMNS", raising=False)
    result = _run("audit", "show", "--workspace", "ws", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "promotion" in line]
    assert len(rows) == 1 and subject in rows[0], result.stdout
    assert "approved by the risk committee approved by" in rows[0]
    # COLUMNS, when set, still decides.
    monkeypatch.setenv("COLUMNS", "80")
    narrow = _run("audit", "show", "--workspace", "ws", cwd=tmp_path)
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
