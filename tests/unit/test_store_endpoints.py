"""Feast's network endpoints are awaited before first use (issue #14 A.1)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from components.common.connect import wait_for_tcp
from components.features.store import store_endpoints
from tests.helpers.postgres import free_port

pytestmark = pytest.mark.unit

CLUSTER_YAML = """
project: p
provider: local
registry:
  registry_type: sql
  path: postgresql+psycopg2://feast@postgres:5433/feast_registry
online_store:
  type: redis
  connection_string: redis:6380,password=x
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def test_the_cluster_config_names_registry_and_redis(tmp_path: Path) -> None:
    from feast import FeatureStore

    (tmp_path / "feature_store.yaml").write_text(CLUSTER_YAML)
    store = FeatureStore(repo_path=str(tmp_path))
    assert store_endpoints(store) == [
        ("postgres", 5433, "Feast registry database"),
        ("redis", 6380, "Feast online store (Redis)"),
    ]


def test_the_local_workspace_config_names_nothing(tmp_path: Path) -> None:
    from feast import FeatureStore

    local = CLUSTER_YAML.replace(
        "postgresql+psycopg2://feast@postgres:5433/feast_registry",
        f"sqlite:///{tmp_path}/registry.db",
    ).replace("type: redis\n  connection_string: redis:6380,password=x", "type: sqlite")
    (tmp_path / "feature_store.yaml").write_text(local)
    assert store_endpoints(FeatureStore(repo_path=str(tmp_path))) == []


def test_waits_for_a_port_that_opens_late_and_gives_up_quietly() -> None:
    port = free_port()

    def listen_later() -> None:
        time.sleep(1.0)
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(5)
            conn, _ = server.accept()
            conn.close()

    thread = threading.Thread(target=listen_later, daemon=True)
    thread.start()
    started = time.monotonic()
    assert wait_for_tcp("127.0.0.1", port, "late server", budget_s=10)
    assert time.monotonic() - started >= 0.8
    thread.join(timeout=5)
    assert not wait_for_tcp("127.0.0.1", free_port(), "never", budget_s=0.5)
