"""Config loading: strict keys and types, env expansion, errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.common.config import default_config_path, load_config, parse_config
from components.common.errors import SeamlessError

pytestmark = pytest.mark.unit


def _bundled() -> dict:
    return yaml.safe_load(default_config_path().read_text())


def test_bundled_config_loads() -> None:
    config = load_config(default_config_path())
    assert config.entity_key() == "customer_id"
    assert "credit_score" in config.feature_types()


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    raw = _bundled()
    raw["model"]["n_estimatorz"] = 5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SeamlessError, match=r"bad\.yaml: unknown key 'model\.n_estimatorz'"):
        load_config(path)


def test_wrong_type_names_key() -> None:
    raw = _bundled()
    raw["tables"]["labels"]["max_invalid_fraction"] = "lots"
    with pytest.raises(SeamlessError, match=r"key 'tables\.labels\.max_invalid_fraction'"):
        parse_config(yaml.safe_dump(raw), origin="cfg.yaml")


def test_missing_required_key() -> None:
    raw = _bundled()
    del raw["labels"]
    with pytest.raises(SeamlessError, match=r"required key 'labels' is missing"):
        parse_config(yaml.safe_dump(raw), origin="cfg.yaml")


def test_dangling_reference_is_named() -> None:
    raw = _bundled()
    raw["features"]["views"][0]["table"] = "nope"
    with pytest.raises(SeamlessError, match=r"customer_profile.*'nope'"):
        parse_config(yaml.safe_dump(raw), origin="cfg.yaml")


def test_feature_not_declared_as_column() -> None:
    raw = _bundled()
    raw["features"]["views"][0]["features"].append("shoe_size")
    with pytest.raises(SeamlessError, match=r"shoe_size"):
        parse_config(yaml.safe_dump(raw), origin="cfg.yaml")


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _bundled()
    raw["tables"]["labels"]["source"] = {
        "kind": "sql",
        "url": "postgresql+psycopg2://u:${PGPASS}@h/db",
        "query": "select 1",
    }
    monkeypatch.setenv("PGPASS", "s3cret")
    config = parse_config(yaml.safe_dump(raw))
    assert "s3cret" in config.tables["labels"].source.url  # type: ignore[union-attr]
    monkeypatch.delenv("PGPASS")
    with pytest.raises(SeamlessError, match=r"PGPASS is not set"):
        parse_config(yaml.safe_dump(raw), origin="cfg.yaml")


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SeamlessError, match=r"does not exist"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SeamlessError, match=r"broken\.yaml: not valid YAML"):
        load_config(bad)
