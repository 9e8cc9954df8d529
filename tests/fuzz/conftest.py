"""The real serving app over the serving tests' tiny workspace (real MLflow and Feast)."""

from __future__ import annotations

from tests.helpers.serving_app import served_app_client  # noqa: F401 (fixture)
from tests.serving.conftest import built, serve_config  # noqa: F401 (fixtures)
