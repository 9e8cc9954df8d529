"""The real serving app in-process over the serving tests' tiny workspace (real MLflow
and Feast), for tests that throw many requests at it (fuzzing, the input corpus).

Import the fixture with the serving tests' own:
`from tests.serving.conftest import built, serve_config` and
`from tests.helpers.serving_app import served_app_client`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig


@pytest.fixture(scope="module")
def served_app_client(
    built: dict[str, Any], serve_config: SeamlessConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """A client of the app over `built` (tests/serving/conftest.py's workspace), for the
    module. Server exceptions come back as 500 responses, as they would in production."""
    from components.serve.api.app import create_app
    from tests.serving.conftest import make_settings

    ws: Path = built["workspace"]
    logs = tmp_path_factory.mktemp("served-app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEAMLESS_WORKSPACE", str(ws))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
        mp.setenv("SEAMLESS_FEAST_REPO", str(ws / "feast"))
        settings = make_settings(logs, feast_repo=ws / "feast")
        app = create_app(settings, serve_config)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
