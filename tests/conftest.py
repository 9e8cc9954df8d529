"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.common.env import disable_telemetry
from tests.helpers.endpoints import ENDPOINT_KEYS

if TYPE_CHECKING:
    from tests.serving.redis_store import RedisServer
    from tests.stream.redis_cluster import Cluster


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`pytest -n N`: a module per unit of work, slowest tiers first (tests/helpers/parallel.py)."""
    from tests.helpers.parallel import ModuleScheduling

    return ModuleScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Hand each worker this process' terminal size variables (tests/helpers/parallel.py)."""
    from tests.helpers.parallel import terminal_size_env

    node.workerinput["terminal_size_env"] = terminal_size_env()


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker
        from tests.helpers.parallel import restore_terminal_size_env

        restore_terminal_size_env(workerinput.get("terminal_size_env") or {})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker; a serial run keeps its order
        from tests.helpers.parallel import order_for_workers

        order_for_workers(items)


@pytest.fixture(autouse=True)
def _isolated_environment() -> Iterator[None]:
    """Telemetry off; endpoints a test points at its workspace do not leak into the next."""
    saved = dict(os.environ)
    for key in ENDPOINT_KEYS:
        os.environ.pop(key, None)
    disable_telemetry()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module", autouse=True)
def _module_environment() -> Iterator[None]:
    """What a module's fixtures put in the environment (a Spark session's PYSPARK_PYTHON,
    say) ends with the module: on an xdist worker any module may come next."""
    from tests.helpers.environ import restored_environ

    with restored_environ():
        yield


@pytest.fixture(scope="module", autouse=True)
def _no_spark_left_running() -> Iterator[None]:
    """End any Spark session and JVM a module's tests started in this process (>1 GB idle)."""
    yield
    if "pyspark" not in sys.modules:
        return
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
    context = SparkContext._active_spark_context  # started on another thread, say
    if context is not None:
        context.stop()
    # A stopped context leaves its JVM running with the heap it grew; end it too.
    gateway = SparkContext._gateway
    if gateway is not None:
        gateway.shutdown()
        gateway.proc.kill()
        gateway.proc.wait()
        SparkContext._gateway = None
        SparkContext._jvm = None


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """A real redis-server on loopback, per test module (tests/serving/redis_store.py)."""
    from tests.serving.redis_store import redis_server

    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A real Redis Cluster, three masters on loopback, per test module
    (tests/stream/redis_cluster.py)."""
    from tests.stream.redis_cluster import redis_cluster

    with redis_cluster() as ports:
        yield ports


@pytest.fixture()
def config() -> SeamlessConfig:
    """The bundled credit-risk config."""
    return load_config(default_config_path())


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded-mode workspace; endpoints point into it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SEAMLESS_FEAST_REPO", raising=False)
    return ws


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo data set (same generator as `make demo`)."""
    from pipelines.demo_data import generate

    out = tmp_path_factory.mktemp("demo-data")
    generate(out, n_rows=6000, seed=3)
    out.chmod(0o755)  # pytest's 0700 would keep the docker runner's non-root steps out
    return out


def write_quick_config(path: Path) -> Path:
    """The bundled config with a smaller search, so a pipeline run takes seconds."""
    raw = yaml.safe_load(default_config_path().read_text())
    raw["model"]["search"].update({"n_iter": 2, "cv": 2})
    raw["model"]["search"]["space"] = {"learning_rate": [0.05, 0.1], "max_iter": [60]}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture()
def quick_config(tmp_path: Path) -> Path:
    return write_quick_config(tmp_path / "quick.yaml")


@pytest.fixture(scope="session")
def quick_trained(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> dict[str, Any]:
    """The quick config trained once on the demo data (subprocess runner) in a workspace of
    its own: for tests that compare another run with it, or go on from it (a pipeline run
    is a minute or two here). Keys: outcome, workspace, config. test_training_pipeline
    trains a second version into that workspace: others use the outcome only."""
    from pipelines.local import run_training

    root = tmp_path_factory.mktemp("quick-trained")
    config, ws = write_quick_config(root / "quick.yaml"), root / "ws"
    ws.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for key in ENDPOINT_KEYS:
            mp.delenv(key, raising=False)
        mp.setenv("SEAMLESS_WORKSPACE", str(ws))
        outcome = run_training(config, demo_data, ws)
    return {"outcome": outcome, "workspace": ws, "config": config}
