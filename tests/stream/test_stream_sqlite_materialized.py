"""After materialization, the consumer's newer-only SQLite writer still compares event
times to the microsecond: real Feast repos (SQLite online store), real materialization
of offline rows with sub-second event times through each writer Seamless uses (the
column-wise load, the batched writer) and through Feast's own, then stream writes
microseconds older, newer and equal. Feast's own writer leaves no precise time: its
value counts as the end of its second (docs/streaming.md, "SQLite: microseconds")."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from components.common.config import SeamlessConfig
from components.common.tables import content_hash
from components.features.features import build_features, online_features
from components.features.sqlite_writer import BatchedSqliteOnlineStore, micros
from components.features.store import open_store, windows_from_json
from components.stream.consumer import Consumer, StreamSettings
from components.stream.events import encode
from components.stream.online_sqlite import SIDE_TABLE
from tests.helpers.online_writers import WRITERS, materialize_with
from tests.stream.world import T1, build_repo, event, guarded, labels, write

pytestmark = [pytest.mark.slow, pytest.mark.stream]

S = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)
"""A whole second, recent enough for the consumer's checks."""
M = S + timedelta(microseconds=600_000)
"""The materialized value's event time: sub-second, lost in Feast's column."""
US = timedelta(microseconds=1)


@pytest.fixture()
def repo(stream_config: SeamlessConfig, tmp_path: Path) -> Path:
    return build_repo(tmp_path, stream_config, None)


def materialize(repo: Path, config: SeamlessConfig, rows: dict[int, tuple[datetime, float]],
                writer: str) -> None:  # fmt: skip
    """Publish `facts` with customer -> (event time, score) as its latest rows and load
    the online store through `writer`, as the features and materialize steps do."""
    facts = pd.DataFrame(
        {
            "customer_id": [2, *rows],
            "event_timestamp": [T1, *(pd.Timestamp(t) for t, _ in rows.values())],
            "score": [5.0, *(s for _, s in rows.values())],
            "tier": ["z", *(f"t{s:g}" for _, s in rows.values())],
        }
    )
    tables = {"facts": facts, "labels": labels()}
    hashes = {name: content_hash(df) for name, df in tables.items()}
    _, info = build_features(config, tables, hashes, repo, online=False)
    windows = windows_from_json(info["online_windows"])
    store = open_store(repo)
    materialize_with(store, windows, writer)
    kind = {"columnar": BatchedSqliteOnlineStore, "batched": BatchedSqliteOnlineStore,
            "feast": SqliteOnlineStore}[writer]  # fmt: skip
    assert type(store._get_provider().online_store) is kind


def score(repo: Path, config: SeamlessConfig, entity: int) -> float:
    return float(online_features(repo, config, [entity])["score"].tolist()[0])


def stored_time(store: Any, entity: int) -> datetime | None:
    """The time the consumer's late rule reads (the provider's `online_read`)."""
    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=entity)])
    view = store.get_feature_view("facts_view")
    ((ts, _),) = store._get_provider().online_read(store.config, view, [key])
    return ts  # type: ignore[no-any-return]


@pytest.mark.parametrize("writer", WRITERS)
def test_after_materialization_a_microsecond_decides(
    repo: Path, stream_config: SeamlessConfig, writer: str
) -> None:
    """Customer 1 was written by the consumer before (its side row goes stale), customer
    3 never was; the side table exists when materialization runs."""
    store = guarded(repo)
    write(store, 1, S - timedelta(seconds=30), 1.0)
    materialize(repo, stream_config, {1: (M, 10.0), 3: (M, 30.0)}, writer)
    exact = writer != "feast"
    for entity, base in ((1, 10.0), (3, 30.0)):
        # What the late rule reads: the materialized time, or the end of its second.
        assert stored_time(store, entity) == (M if exact else S + timedelta(seconds=1) - US)
        write(store, entity, M - US, base + 1)  # a microsecond older: refused
        assert score(repo, stream_config, entity) == base
        write(store, entity, M, base + 2)  # the same time: written by the writers that
        # keep it (a redone write), refused after Feast's (its value may be later)
        assert score(repo, stream_config, entity) == (base + 2 if exact else base)
        write(store, entity, M + US, base + 3)  # a microsecond newer
        assert score(repo, stream_config, entity) == (base + 3 if exact else base)
        write(store, entity, S + timedelta(seconds=1), base + 4)  # the next second
        assert score(repo, stream_config, entity) == base + 4
        write(store, entity, S + timedelta(seconds=1) - US, base + 5)  # the consumer's own
        assert score(repo, stream_config, entity) == base + 4


@pytest.mark.parametrize("writer", WRITERS)
def test_a_materialized_older_value_still_replaces_the_consumers(
    repo: Path, stream_config: SeamlessConfig, writer: str
) -> None:
    """Materialization overwrites (Feast's contract), here with a value a microsecond
    older than the consumer's of the same second: afterwards the times compared are the
    materialized one's, not the consumer's stale side row."""
    store = guarded(repo)
    write(store, 1, M + US, 1.0)
    materialize(repo, stream_config, {1: (M, 10.0)}, writer)
    assert score(repo, stream_config, 1) == 10.0
    # Seamless' writers left the materialized time; Feast's left the consumer's, stale.
    assert side_times(repo)[1] == micros(M if writer != "feast" else M + US)
    write(store, 1, M + US, 11.0)  # newer than the materialized value
    assert score(repo, stream_config, 1) == (11.0 if writer != "feast" else 10.0)


def side_times(repo: Path) -> dict[int, int]:
    """The side table's microsecond times by customer (the key's last 8 bytes)."""
    with sqlite3.connect(repo / "online_store.db") as conn:
        rows = conn.execute(f'SELECT entity_key, event_us FROM "{SIDE_TABLE}"').fetchall()
    return {int.from_bytes(k[-8:], "little", signed=True): us for k, us in rows}


def test_materialization_without_the_side_table_creates_none(
    repo: Path, stream_config: SeamlessConfig
) -> None:
    """Where no consumer wrote (no side table), the load writes Feast's tables only; its
    values' times count as the end of their second."""
    materialize(repo, stream_config, {1: (M, 10.0)}, "columnar")
    with sqlite3.connect(repo / "online_store.db") as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert SIDE_TABLE not in names
    store = guarded(repo)
    write(store, 1, M + US, 11.0)  # same second as a value known to the second: refused
    assert score(repo, stream_config, 1) == 10.0
    write(store, 1, S + timedelta(seconds=1), 12.0)
    assert score(repo, stream_config, 1) == 12.0


def test_the_consumer_counts_a_same_second_event_after_feasts_writer_late(
    repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    """The late rule and the writer agree: an event the writer would refuse is counted
    late (and kept offline), never counted written while the store refused it."""
    materialize(repo, stream_config, {1: (M, 10.0)}, "feast")
    stream = f"s:materialized:{repo.parent.name}"
    client.delete(stream)
    consumer = Consumer(stream_config, repo, open_store(repo), client,
                        StreamSettings(stream=stream, block_ms=100))  # fmt: skip
    client.xadd(stream, encode(event("m-1", 1, (M + US).isoformat(), score=11.0, tier="n")))
    done = consumer.run(idle_exit_s=0.3)
    assert (done.late, done.written) == (1, 0), done.summary()
    assert score(repo, stream_config, 1) == 10.0
    client.xadd(stream, encode(event("m-2", 1, (S + timedelta(seconds=1)).isoformat(),
                                     score=12.0, tier="n")))  # fmt: skip
    done = consumer.run(idle_exit_s=0.3)
    assert (done.late, done.written) == (0, 1), done.summary()
    assert score(repo, stream_config, 1) == 12.0
