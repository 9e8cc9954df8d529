"""The real serving app in-process over the serving tests' tiny workspace (real MLflow
and Feast), for tests that throw many requests at it (fuzzing, the input corpus)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig


@contextmanager
def serving_client(
    built: dict[str, Any], serve_config: SeamlessConfig, logs: Path
) -> Iterator[TestClient]:
    """A client of the app over `built` (tests/serving/conftest.py's workspace), its
    prediction logs under `logs`. Server exceptions come back as 500 responses, as they
    would in production."""
    from components.serve.api.app import create_app
    from tests.serving.conftest import make_settings

    ws: Path = built["workspace"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEAMLESS_WORKSPACE", str(ws))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
        mp.setenv("SEAMLESS_FEAST_REPO", str(ws / "feast"))
        settings = make_settings(logs, feast_repo=ws / "feast")
        app = create_app(settings, serve_config)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
