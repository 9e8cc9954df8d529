"""Serving from a Feast repo whose online store is a Redis Cluster (`redis_type:
redis_cluster`), three real masters on loopback (tests/stream/redis_cluster.py).

Serving reads the cluster directly, through redis-py's cluster client as Feast builds it,
in worker threads (`read_path` / readyz `feature_reads` say `redis-cluster`): rows equal
Feast's own `get_online_features` for the same entities, each key is read from the
master serving its slot, a slot in migration (ASK) or moved (MOVED) is followed on both
the one-entity and the batch path, and a stopped master is a prompt 503 that recovers
once it is back, without restarting the app.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.serve.lookup.direct_store import redis_keys
from components.serve.lookup.features import OnlineFeatures
from tests.serving.conftest import serving_client
from tests.serving.redis_store import redis_repo_config, same_predictions
from tests.serving.workspace import clean_endpoints
from tests.stream.redis_cluster import Cluster, migrating, node_port

pytestmark = [pytest.mark.serving, pytest.mark.slow]

PROMPT_S = 3.0
"""As for a plain Redis (test_redis_store.py): an outage answers 503 within this."""


@pytest.fixture(scope="module")
def cluster_repo(
    cluster: Cluster, built: dict, serve_config: SeamlessConfig, tmp_path_factory: Any
) -> Path:
    """The served features (the workspace's rows and seed) materialized into the cluster."""
    import pandas as pd

    from components.features.features import build_features
    from components.features.repo import FEATURE_STORE_YAML
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("cluster-repo")
    repo = root / "feast"
    repo.mkdir()
    cfg = redis_repo_config(
        serve_config.features.project, repo, ",".join(f"127.0.0.1:{p}" for p in cluster)
    )
    cfg["online_store"]["redis_type"] = "redis_cluster"
    (repo / FEATURE_STORE_YAML).write_text(yaml.safe_dump(cfg, sort_keys=False))
    paths = generate(root / "data", n_rows=3000, seed=5)
    tables = {name: pd.read_parquet(p) for name, p in paths.items()}
    hashes = {name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for name, p in paths.items()}
    with clean_endpoints():
        build_features(serve_config, tables, hashes, repo)
    return repo


def sdk_rows(features: OnlineFeatures, ids: list[Any]) -> list[list[Any]]:
    """Feast's own answer (`get_online_features(...).to_dict()`), in the service's order."""
    store, service = features._open()
    got = store.get_online_features(features=service, entity_rows={features.key: ids}).to_dict()
    assert got[features.key] == ids
    return [list(row) for row in zip(*(got[f] for f in features.features), strict=True)]


def equal(mine: list[list[Any]], feast: list[list[Any]]) -> bool:
    """The same values of the same types (NaN equal to NaN)."""

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
            return math.isnan(b)
        return type(a) is type(b) and a == b

    return len(mine) == len(feast) and all(
        len(r) == len(s) and all(map(same, r, s)) for r, s in zip(mine, feast, strict=True)
    )


def test_cluster_reads_equal_the_feast_sdk_from_every_master(
    cluster: Cluster, cluster_repo: Path, serve_config: SeamlessConfig, built: dict
) -> None:
    import redis as redis_py

    features = OnlineFeatures(cluster_repo, serve_config)
    ids = [*built["entities"][:200], -1, 42, built["entities"][0]]
    rows = features.fetch_rows(ids)
    assert features.read_path == "redis-cluster", features.read_path
    assert equal(rows, sdk_rows(features, ids))
    assert any(v is not None for v in rows[0]) and all(v is None for v in rows[-2])
    # One entity is one HMGET (no pipeline): the same rows.
    for i in [0, 1, 2, 200]:
        assert features.fetch_rows([ids[i]]) == [rows[i]]
    # Keys hashed as the cluster does: the entities live on every master, and each hash
    # is on the master the cluster itself names for its slot, where the reader goes.
    reader = features._reader
    keys = redis_keys(reader.plan, ids[:200])
    where = {key: node_port(cluster, key) for key in keys}
    assert set(where.values()) == set(cluster)
    masters = {p: redis_py.Redis(host="127.0.0.1", port=p) for p in cluster}
    try:
        for key, port in list(where.items())[:30]:
            assert masters[port].exists(key) == 1
            assert reader.client.get_node_from_key(key).port == port
    finally:
        for m in masters.values():
            m.close()
    # No asyncio client for a cluster: the event loop hands the read to a worker thread.
    assert reader.aclient is None
    assert asyncio.run(features.fetch_rows_async(ids[:3])) is None


def test_reads_follow_a_slot_in_migration_then_moved(
    cluster: Cluster, cluster_repo: Path, serve_config: SeamlessConfig, built: dict
) -> None:
    """ASK while the slot migrates (the old master still owns it, its keys are on the new
    one), MOVED once it is the new master's; one reader follows it in a batch (pipeline),
    another for one entity (HMGET)."""
    import redis as redis_py

    batch = OnlineFeatures(cluster_repo, serve_config)
    single = OnlineFeatures(cluster_repo, serve_config)
    ids = built["entities"][200:260]
    entity = ids[0]
    before = batch.fetch_rows(ids)
    assert single.fetch_rows([entity]) == [before[0]]
    readers = (batch._reader, single._reader)
    key = redis_keys(batch._reader.plan, [entity])[0]
    src = node_port(cluster, key)
    old = redis_py.Redis(host="127.0.0.1", port=src)
    try:
        with migrating(cluster, key, src) as dst:
            with pytest.raises(redis_py.exceptions.AskError):
                old.hmget(key, batch._reader._fields)
            assert batch.fetch_rows(ids) == before
            assert single.fetch_rows([entity]) == [before[0]]
            assert batch._reader.client.get_node_from_key(key).port == src  # ASK: no remap
        with pytest.raises(redis_py.exceptions.MovedError):
            old.hmget(key, batch._reader._fields)
    finally:
        old.close()
    assert batch.fetch_rows(ids) == before
    assert single.fetch_rows([entity]) == [before[0]]
    assert batch._reader is readers[0] and single._reader is readers[1]  # never reopened
    for features in (batch, single):
        assert features._reader.client.get_node_from_key(key).port == dst  # MOVED: remapped
        assert features.read_path == "redis-cluster"
    assert equal(before, sdk_rows(batch, ids))


@pytest.fixture()
def cluster_client(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig, cluster_repo: Path
) -> Iterator[TestClient]:
    with serving_client(tmp_path, serve_config, feast_repo=cluster_repo) as c:
        yield c


def test_predictions_equal_the_sqlite_store(
    cluster_client: TestClient, client: TestClient, built: dict
) -> None:
    ids = built["entities"][:25] + built["entities"][-25:]
    same_predictions(cluster_client, client, ids)
    unknown = cluster_client.post("/v1/predict", json={"entity_ids": [ids[0], 42]})
    assert unknown.status_code == 404 and unknown.json()["unknown_entity_ids"] == [42]
    ready = cluster_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["feature_reads"] == "redis-cluster"


class OneEntity:
    """Predictions for one entity through the cluster app: the first answer, and the
    port of the master that holds the entity's key."""

    def __init__(self, cluster: Cluster, client: TestClient, entity: Any) -> None:
        self.client, self.entity, self.cluster = client, entity, cluster
        self.features = client.app.state.service.features  # type: ignore[attr-defined]
        self.before = self.predict()
        assert self.before.status_code == 200, self.before.text
        self.port = node_port(cluster, redis_keys(self.features._reader.plan, [entity])[0])

    def predict(self) -> Any:
        return self.client.post("/v1/predict", json={"entity_ids": [self.entity]})

    def refused_naming_the_master(self, answer: Any) -> None:
        assert answer.status_code == 503, answer.text
        assert str(self.port) in answer.json()["detail"], answer.json()

    def comes_back(self) -> None:
        """Once the cluster is whole again, the same scores, read directly again."""
        self.cluster.wait_ok()
        deadline = time.monotonic() + 30
        while (after := self.predict()).status_code != 200:
            assert time.monotonic() < deadline, after.text
            time.sleep(0.1)
        score = [p["score"] for p in after.json()["predictions"]]
        assert score == [p["score"] for p in self.before.json()["predictions"]]
        assert self.features.read_path == "redis-cluster"


def test_a_stopped_master_is_a_prompt_503_then_recovers(
    cluster: Cluster, cluster_client: TestClient, built: dict
) -> None:
    one = OneEntity(cluster, cluster_client, built["entities"][0])
    cluster.stop(one.port)
    try:
        for _ in range(2):  # and again: the reopened store fails just as cleanly
            t0 = time.monotonic()
            down = one.predict()
            assert time.monotonic() - t0 < PROMPT_S
            one.refused_naming_the_master(down)
    finally:
        cluster.start(one.port)
    one.comes_back()


HUNG_S = 10.0
"""A master that hangs (accepts, never answers) is a 503 within this: the 1 s socket
timeout serving gives redis-py's cluster client, times redis-py's few attempts."""


def test_a_hung_master_is_a_503_within_the_socket_timeout(
    cluster: Cluster, cluster_client: TestClient, built: dict
) -> None:
    """SIGSTOP leaves the master's port accepting connections with no reply (what a
    wedged node or a black-holed route looks like): without a socket timeout a worker
    thread waits for ever; with it the request fails in seconds, naming the master."""
    one = OneEntity(cluster, cluster_client, built["entities"][1])
    answers: list[Any] = []
    cluster.procs[one.port].send_signal(signal.SIGSTOP)
    try:
        asking = threading.Thread(target=lambda: answers.append(one.predict()), daemon=True)
        t0 = time.monotonic()
        asking.start()
        asking.join(HUNG_S)
        waited = time.monotonic() - t0
    finally:
        cluster.procs[one.port].send_signal(signal.SIGCONT)
    assert answers, f"no answer within {HUNG_S:g} s from a hung master"
    assert waited < HUNG_S
    one.refused_naming_the_master(answers[0])
    one.comes_back()
