"""The monitor tests' MLflow store: one per test module, its model trained and
registered once (the module's `_trained` fixture, e.g. `train_and_register_once`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module: training + registering once saves ~10 s a test."""
    return tmp_path_factory.mktemp("monitor-mlflow")


@pytest.fixture()
def registered(_trained: dict[str, Any], store: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The module's trained and registered (promoted) version, its store this test's
    workspace."""
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(store))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return _trained
