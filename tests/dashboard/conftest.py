"""One small real workspace for the whole dashboard tier (tests/dashboard/workspace.py),
built on first use; each test points the environment at it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.workspace import build
from tests.helpers.environ import enter_env


@pytest.fixture(scope="session")
def dash(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture()
def dash_env(dash: dict[str, Any]) -> dict[str, Any]:
    return enter_env(dash)
