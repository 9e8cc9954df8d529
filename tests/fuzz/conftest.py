"""The real serving app over the serving tests' tiny workspace (real MLflow and Feast)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from tests.helpers.serving_app import serving_client
from tests.serving.conftest import built, serve_config  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def fuzz_client(
    built: dict,  # noqa: F811
    serve_config: SeamlessConfig,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    """Server exceptions surface as 500 responses, as they would in production."""
    with serving_client(built, serve_config, tmp_path_factory.mktemp("fuzz-serve")) as client:
        yield client
