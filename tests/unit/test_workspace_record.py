"""The config a workspace records and how commands resolve theirs (issue #13 item 8).

The whole loop with real MLflow and Feast is in tests/pipeline/test_workspace_config.py;
these check the rules on their own, without a store.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from components.common.config import default_config_path, load_config
from components.common.errors import SeamlessError
from pipelines.workspace import (
    original_text,
    record_config,
    recorded_config,
    resolve_config,
    resolve_training_config,
)
from tests.helpers.configs import assert_one_sentence

pytestmark = pytest.mark.unit


def _config(path: Path, name: str = "loan_default", **model: object) -> Path:
    raw = yaml.safe_load(default_config_path().read_text())
    raw["model"].update({"name": name, **model})
    path.write_text("# mine\n" + yaml.safe_dump(raw))
    return path


def test_record_is_the_original_text_with_source_and_hash(tmp_path: Path) -> None:
    config = _config(tmp_path / "loans.yaml")
    ws = tmp_path / "ws"
    rec = record_config(ws, config)
    text = config.read_text()
    assert rec.path == ws / "config.yaml" and rec.source == str(config.resolve())
    assert rec.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert original_text(rec.path) == text
    assert recorded_config(ws) == rec
    assert load_config(rec.path) == load_config(config)
    # The same text from the same place, or the copy itself: nothing rewritten.
    mtime = rec.path.stat().st_mtime_ns
    assert record_config(ws, config) == rec and record_config(ws, rec.path) == rec
    assert rec.path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in ws.iterdir()) == ["config.yaml"]


def test_commands_use_the_recorded_config(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert resolve_config(None, ws) == default_config_path()
    assert not ws.exists(), "resolving must not create the workspace"
    config = _config(tmp_path / "loans.yaml")
    record_config(ws, config)
    assert resolve_config(None, ws) == ws / "config.yaml"
    assert resolve_config(config, ws) == config
    # Same settings in another file (other comments, other order) are the same config.
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()), sort_keys=True))
    assert resolve_config(same, ws) == same


def test_a_conflicting_config_is_one_sentence(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    record_config(ws, _config(tmp_path / "loans.yaml"))
    with pytest.raises(SeamlessError) as err:
        resolve_config(default_config_path(), ws)
    assert_one_sentence(
        str(err.value), "model 'credit_risk'", "model 'loan_default'", "config.yaml", "--config"
    )
    edited = _config(tmp_path / "edited.yaml", threshold=0.3, seed=1)
    with pytest.raises(SeamlessError) as err:
        resolve_config(edited, ws)
    assert_one_sentence(str(err.value), "differs from the config", "model.seed, model.threshold")


def test_a_config_that_only_adds_notification_receivers_is_used_as_given(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    record_config(ws, _config(tmp_path / "loans.yaml"))
    told = tmp_path / "told.yaml"
    raw = yaml.safe_load((tmp_path / "loans.yaml").read_text())
    raw["notifications"] = {"receivers": [{"name": "team", "url_env": "TEAM_HOOK_URL"}]}
    told.write_text(yaml.safe_dump(raw))
    assert resolve_config(told, ws) == told
    raw["model"]["threshold"] = 0.3  # ...but not with a model setting changed as well
    told.write_text(yaml.safe_dump(raw))
    with pytest.raises(SeamlessError) as err:
        resolve_config(told, ws)
    assert_one_sentence(str(err.value), "differs from the config", "in model.threshold;")


def test_training_may_edit_the_config_of_the_same_model(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    record_config(ws, _config(tmp_path / "loans.yaml"))
    edited = _config(tmp_path / "edited.yaml", threshold=0.3)

    def resolved(given: Path | None) -> tuple[Path, list[str]]:
        got = resolve_training_config(given, ws)
        assert got.config == load_config(got.path)  # loaded once, the file it names
        return got.path, got.changed

    assert resolved(edited) == (edited, ["model.threshold"])
    assert resolved(None) == (ws / "config.yaml", [])
    # Nothing registered yet for the recorded model (no store): another model may replace it.
    assert resolved(default_config_path()) == (default_config_path(), ["model.name"])
