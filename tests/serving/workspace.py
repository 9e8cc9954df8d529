"""Build a tiny serving workspace (Feast online store + a `champion` in MLflow) in seconds.

Runs the stages' logic functions directly instead of the whole pipeline: demo data,
features (Feast apply + materialize), a small training run, registration as champion.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import SeamlessConfig
from components.features.features import build_features
from components.register.registry import register
from components.train.run import train_and_log
from pipelines.demo_data import generate
from pipelines.local import use_workspace
from tests.helpers.endpoints import ENDPOINT_KEYS


def small_config(config: SeamlessConfig) -> SeamlessConfig:
    """The bundled config with a two-candidate search, so training takes a few seconds."""
    search = config.model.search.model_copy(
        update={"n_iter": 1, "cv": 2, "space": {"max_iter": [40]}}
    )
    model = config.model.model_copy(update={"search": search})
    return config.model_copy(update={"model": model})


def train_and_promote(
    config: SeamlessConfig, training: pd.DataFrame, tag: str = ""
) -> tuple[str, str]:
    """Train on `training`, register the result as champion; returns (version, model uri)."""
    result, _ = train_and_log(
        config,
        training,
        data_sha256="0" * 64,
        feature_service=config.features.service,
        pipeline_run_id=f"serving-test{tag}",
        source_uri="file:///serving-test",
    )
    reg = register(config.model.name, result.model_uri, "promote", {"seamless.test": "serving"})
    return reg.version, result.model_uri


def build_workspace(root: Path, config: SeamlessConfig, rows: int = 3000) -> dict[str, Any]:
    """Create `<root>/ws` with Feast and MLflow state; returns entity ids known online."""
    data = root / "data"
    paths = generate(data, n_rows=rows, seed=5)
    ws = root / "ws"
    use_workspace(ws)
    tables = {name: pd.read_parquet(p) for name, p in paths.items()}
    hashes = {name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for name, p in paths.items()}
    training, _ = build_features(config, tables, hashes, ws / "feast")
    version, model_uri = train_and_promote(config, training)
    known = sorted(int(x) for x in tables["profiles"][config.entity_key()].unique())
    return {
        "workspace": ws,
        "version": version,
        "model_uri": model_uri,
        "entities": known,
        "training": training,
    }


@contextmanager
def clean_endpoints() -> Iterator[None]:
    """For module/session fixtures, which run before the per-test environment reset:
    no endpoint of an earlier test's store leaks in, and the environment is restored."""
    saved = {k: os.environ.get(k) for k in ENDPOINT_KEYS}
    for key in ENDPOINT_KEYS:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def small_trained_workspace(root: Path, rows: int) -> tuple[SeamlessConfig, dict[str, Any]]:
    """The bundled config made small, and a workspace trained on it (`build_workspace`),
    for a module-scoped fixture (the process environment is restored afterwards)."""
    from components.common.config import default_config_path, load_config

    config = small_config(load_config(default_config_path()))
    with clean_endpoints():
        return config, build_workspace(root, config, rows=rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[SeamlessConfig, dict[str, Any]]:
    """A module's small trained workspace; import `trained`, `cfg` and `built` to use it."""
    return small_trained_workspace(tmp_path_factory.mktemp("trained"), rows=3000)


@pytest.fixture(scope="module")
def cfg(trained: tuple[SeamlessConfig, dict[str, Any]]) -> SeamlessConfig:
    return trained[0]


@pytest.fixture(scope="module")
def built(trained: tuple[SeamlessConfig, dict[str, Any]]) -> dict[str, Any]:
    return trained[1]
