"""Fixtures for tests that run whole pipelines or components through kfp.local."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.common.config import default_config_path
from pipelines.demo_data import generate


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo data set (same generator as `make demo`)."""
    out = tmp_path_factory.mktemp("demo-data")
    generate(out, n_rows=6000, seed=3)
    return out


@pytest.fixture()
def quick_config(tmp_path: Path) -> Path:
    """The bundled config with a smaller search, so a pipeline run takes seconds."""
    raw = yaml.safe_load(default_config_path().read_text())
    raw["model"]["search"].update({"n_iter": 2, "cv": 2})
    raw["model"]["search"]["space"] = {"learning_rate": [0.05, 0.1], "max_iter": [60]}
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
