"""The real serving app over the serving tests' tiny workspace (real MLflow and Feast)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from tests.serving.conftest import built, make_settings, serve_config  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def fuzz_client(
    built: dict,  # noqa: F811
    serve_config: SeamlessConfig,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    """Server exceptions surface as 500 responses, as they would in production."""
    from components.serve.api.app import create_app

    ws: Path = built["workspace"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEAMLESS_WORKSPACE", str(ws))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
        mp.setenv("SEAMLESS_FEAST_REPO", str(ws / "feast"))
        # A high concurrency limit: hypothesis is sequential, 429s would only hide bugs.
        settings = make_settings(tmp_path_factory.mktemp("fuzz-serve"), feast_repo=ws / "feast")
        app = create_app(settings, serve_config)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
