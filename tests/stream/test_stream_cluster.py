"""The consumer's newer-only Redis writer on a real Redis Cluster (three masters on
loopback) through Feast's `redis_cluster` online store: values readable by Feast,
older writes refused, keys spread over the cluster's nodes. The stream itself stays on
a standalone Redis: a consumer pointed at a cluster for its stream refuses to start in
one sentence (its commit script spans several keys)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.features.features import online_features
from components.features.store import open_store
from components.stream.consumer import Consumer, StreamSettings
from components.stream.events import encode
from components.stream.online import NewerOnlyRedisOnlineStore
from tests.stream.redis_cluster import move_slot
from tests.stream.world import build_repo, event

pytestmark = [pytest.mark.slow, pytest.mark.stream]

ENTITIES = list(range(101, 125))  # their keys fall in all three masters' slot ranges


@pytest.fixture(scope="module")
def cluster_repo(
    cluster: list[int], stream_config: SeamlessConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    nodes = ",".join(f"127.0.0.1:{p}" for p in cluster)
    online = {"type": "redis", "redis_type": "redis_cluster", "connection_string": nodes}
    return build_repo(tmp_path_factory.mktemp("cluster-repo"), stream_config, None, online)


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def nodes_holding(store: Any, entities: list[int]) -> set[str]:
    """The cluster nodes whose slots hold these entities' Feast keys."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    online = store._get_provider().online_store
    client = online._get_client(store.config.online_store)
    version = store.config.entity_key_serialization_version
    nodes = set()
    for entity in entities:
        key = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=entity)])
        raw = _redis_key(store.config.project, key, entity_key_serialization_version=version)
        assert client.exists(raw) == 1
        nodes.add(client.get_node_from_key(raw).name)
    return nodes


def test_the_consumer_writes_online_through_feasts_redis_cluster_store(
    cluster_repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    stream = "s:cluster-online"
    client.delete(stream)
    for n, entity in enumerate(ENTITIES):
        client.xadd(stream, encode(event(f"cl-{entity}", entity, ago(30), score=float(n))))
    settings = StreamSettings(stream=stream, block_ms=100)
    consumer = Consumer(stream_config, cluster_repo, open_store(cluster_repo), client, settings)
    writer = consumer.store._get_provider().online_store
    assert consumer.newer_only and isinstance(writer, NewerOnlyRedisOnlineStore)
    done = consumer.run(idle_exit_s=0.3)
    assert (done.written, done.events) == (len(ENTITIES), len(ENTITIES)), done.summary()
    assert writer.written == len(ENTITIES)
    assert len(nodes_holding(consumer.store, ENTITIES)) == 3  # every master holds some
    scores = online_features(cluster_repo, stream_config, ENTITIES)["score"].tolist()
    assert scores == [float(n) for n in range(len(ENTITIES))]
    # An older event is late for the consumer; an older write sent anyway is refused by
    # the store's compare-and-set on its node, a newer one is written.
    client.xadd(stream, encode(event("cl-old", ENTITIES[0], ago(60), score=-1.0)))
    late = consumer.run(idle_exit_s=0.3)
    assert (late.late, late.written) == (1, 0), late.summary()

    def write(entity: int, seconds_ago: float, score: float) -> None:
        frame = pd.DataFrame({"customer_id": [entity], "score": [score], "tier": ["w"],
                              "event_timestamp": [pd.Timestamp(ago(seconds_ago))]})  # fmt: skip
        consumer.store.write_to_online_store("facts_view", frame)

    written = writer.written
    write(ENTITIES[1], 45, -2.0)
    write(ENTITIES[2], 45, -3.0)
    assert writer.written == written
    write(ENTITIES[3], 5, 42.0)
    assert writer.written == written + 1
    scores = online_features(cluster_repo, stream_config, ENTITIES[:4])["score"].tolist()
    assert scores == [0.0, 1.0, 2.0, 42.0]


def test_a_consumer_refuses_a_stream_on_a_redis_cluster(
    cluster: list[int], cluster_repo: Path, stream_config: SeamlessConfig
) -> None:
    import redis as redis_py

    on_cluster = redis_py.Redis(host="127.0.0.1", port=cluster[0], decode_responses=True)
    try:
        with pytest.raises(SeamlessError, match="is a Redis Cluster") as refused:
            Consumer(stream_config, cluster_repo, open_store(cluster_repo), on_cluster,
                     StreamSettings(stream="s:on-cluster")).run(idle_exit_s=0)  # fmt: skip
        assert str(refused.value).count(". ") == 0  # one sentence
    finally:
        on_cluster.close()


def test_a_write_follows_a_slot_moved_since_the_writer_mapped_it(
    cluster: list[int], cluster_repo: Path, stream_config: SeamlessConfig
) -> None:
    """The writer's per-node pipeline meets a MOVED reply: that entry goes again
    through the cluster client, which follows it; the compare-and-set still holds."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from components.stream.online import guard_writes

    store = open_store(cluster_repo)
    assert guard_writes(store)
    writer = store._get_provider().online_store
    moved, stays = 130, 124

    def write(entity: int, seconds_ago: float, score: float) -> None:
        frame = pd.DataFrame({"customer_id": [entity], "score": [score], "tier": ["m"],
                              "event_timestamp": [pd.Timestamp(ago(seconds_ago))]})  # fmt: skip
        store.write_to_online_store("facts_view", frame)

    write(moved, 20, 1.0)
    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=moved)])
    raw = bytes(_redis_key(store.config.project, key, entity_key_serialization_version=3))
    client = writer._get_client(store.config.online_store)
    src = client.get_node_from_key(raw).port
    dst = move_slot(cluster, raw, src)
    assert client.get_node_from_key(raw).port == src  # the writer's map is stale now
    written = writer.written
    frame = pd.DataFrame({"customer_id": [moved, stays], "score": [3.0, 4.0], "tier": ["m"] * 2,
                          "event_timestamp": [pd.Timestamp(ago(10))] * 2})  # fmt: skip
    store.write_to_online_store("facts_view", frame)  # newer; one key's slot moved
    assert writer.written == written + 2
    assert client.get_node_from_key(raw).port == dst  # the redirection updated the map
    write(moved, 30, 2.0)  # older: refused on its new node
    assert writer.written == written + 2
    scores = online_features(cluster_repo, stream_config, [moved, stays])["score"].tolist()
    assert scores == [3.0, 4.0]
