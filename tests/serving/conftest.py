"""One tiny serving workspace per test session: real Feast online store, real MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.serve.api.app import create_app
from components.serve.settings import ServeSettings
from tests.helpers.postgres import PostgresServer
from tests.serving.pg_control import fresh_database
from tests.serving.redis_store import RedisServer, build_redis_repo
from tests.serving.workspace import build_workspace, clean_endpoints, small_config


def pytest_configure(config: pytest.Config) -> None:
    # Harmless duplicate once pyproject registers it; lets this folder run on its own.
    config.addinivalue_line("markers", "serving: the online serving app (real MLflow/Feast)")


@pytest.fixture(scope="session")
def serve_config() -> SeamlessConfig:
    return small_config(load_config(default_config_path()))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, serve_config: SeamlessConfig) -> dict:
    """Data, Feast repo and a champion; the process environment is restored afterwards."""
    with clean_endpoints():
        return build_workspace(tmp_path_factory.mktemp("serving"), serve_config)


@pytest.fixture()
def ws(built: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test's process environment at the shared workspace."""
    root: Path = built["workspace"]
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("SEAMLESS_FEAST_REPO", str(root / "feast"))
    return root


def make_settings(tmp_path: Path, **overrides: Any) -> ServeSettings:
    """Settings with logs in this test's own folder and auth off unless overridden."""
    base: dict[str, Any] = {
        "poll_seconds": 0,
        "auth_disabled": True,
        "predictions_dir": tmp_path / "predictions",
        "feedback_dir": tmp_path / "feedback",
        "spool_dir": tmp_path / "spool",
        # Shedding answers 503 whenever the machine is busy (a loaded CI run lags the
        # loop past 50 ms): off unless a test sets a budget (test_overload.py does).
        "max_queue_ms": 0,
    }
    base.update(overrides)
    return ServeSettings(**base)


@contextmanager
def serving_client(
    tmp_path: Path, config: SeamlessConfig, **overrides: Any
) -> Iterator[TestClient]:
    """A client of the app with `make_settings(tmp_path, **overrides)`, started."""
    app = create_app(make_settings(tmp_path, **overrides), config)
    with TestClient(app) as c:  # runs the lifespan: model loaded, logs open
        yield c


@pytest.fixture()
def client(ws: Path, tmp_path: Path, serve_config: SeamlessConfig) -> Iterator[TestClient]:
    with serving_client(tmp_path, serve_config) as c:
        yield c


@pytest.fixture()
def pg_url(pg_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database of this test on the module's `pg_server` (a module using it imports
    `pg_server` from tests.helpers.postgres)."""
    return fresh_database(pg_server, f"serve_{request.node.name[5:35].lower()}")


@pytest.fixture()
def pg_client(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig, pg_url: str
) -> Iterator[TestClient]:
    """A client whose prediction log is `pg_url`, spooling to the test's own folder (the
    default spool is in the shared workspace)."""
    spool = tmp_path / "spool"
    with serving_client(tmp_path, serve_config, log_url=pg_url, spool_dir=spool) as c:
        yield c


@pytest.fixture(scope="module")
def redis_repo(
    redis: RedisServer,
    built: dict,
    serve_config: SeamlessConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The served Feast repo with Redis as its online store, the demo features materialized."""
    return build_redis_repo(
        tmp_path_factory.mktemp("redis-repo"), serve_config, redis.connection_string
    )
