"""The Spark tier needs pyspark and Java: missing, it skips with what to install (fails in CI)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.engines import engine_config
from tests.helpers.require import require_module, unavailable

require_module("pyspark", "pyspark is not installed: pip install -e '.[dev,spark]' (make venv)")
_java_home = os.environ.get("JAVA_HOME", "")
if not shutil.which("java") and not os.path.isfile(os.path.join(_java_home, "bin", "java")):
    unavailable("no Java for Spark: apt-get install openjdk-17-jre-headless")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One Spark session for the test module (local[2]), stopped after it."""
    from components.common.spark import spark_session

    session = spark_session(engine_config("spark"))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def dataset(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data ingested by the local engine: the snapshot both engines then read."""
    from components.common.config import default_config_path, load_config
    from components.ingest.stage import ingest_tables

    out = tmp_path_factory.mktemp("snapshot") / "dataset"
    ingest_tables(load_config(default_config_path()), demo_data, out)
    return out
