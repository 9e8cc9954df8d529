"""The Spark image's lock (docker/spark/requirements.lock) pins what the tests run."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_spark_lock_matches_the_extra_and_the_dev_venv() -> None:
    lines = (ROOT / "docker" / "spark" / "requirements.lock").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert set(pins) == {"pyspark", "py4j"}
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extra["optional-dependencies"]["spark"] == [f"pyspark=={pins['pyspark']}"]
    for name, pinned in pins.items():
        assert version(name) == pinned, (
            f"{name}: the dev venv has {version(name)}, the lock {pinned}"
        )
