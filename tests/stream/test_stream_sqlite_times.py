"""The consumer's newer-only SQLite writer compares event times to the microsecond,
while Feast's table keeps Feast's whole seconds: of two events of one entity within the
same second the newer stays online, whichever is written last. Feast's reads and
serving's direct reads see the right value; after materialization (which always
overwrites) the batched writer's value is compared to the microsecond and Feast's own
writer's as the end of its second (test_stream_sqlite_materialized.py: real loads).
Real SQLite files, real Feast repos, a real redis-server for the stream."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from components.common.config import SeamlessConfig
from components.features.features import online_features
from components.features.sqlite_writer import BatchedSqliteOnlineStore
from components.features.store import open_store
from components.stream.consumer import Consumer, StreamSettings
from components.stream.events import encode
from components.stream.online_sqlite import SIDE_TABLE, end_of_second
from tests.stream.world import T3, build_repo, event, guarded, write

pytestmark = [pytest.mark.slow, pytest.mark.stream]

S = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
"""A whole second, recent enough for the consumer's checks."""


def at(ms: int) -> datetime:
    return S + timedelta(milliseconds=ms)


@pytest.fixture()
def repo(stream_config: SeamlessConfig, tmp_path: Path) -> Path:
    return build_repo(tmp_path, stream_config, None)


def served(repo: Path, config: SeamlessConfig, ids: list[int]) -> list[list[Any]]:
    """What serving's own lookup (direct reads of Feast's table) returns for `ids`."""
    from components.serve.lookup.features import OnlineFeatures

    return OnlineFeatures(repo, config).fetch_rows(ids)


def materialize_row(repo: Path, writer: Any, entity: int, when: datetime, score: float) -> None:
    """What materialization's writer does with one row: overwrite, whatever is stored."""
    store = open_store(repo)
    view = store.get_feature_view("facts_view")
    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=entity)])
    values = {"score": Value(double_val=score), "tier": Value(string_val=f"t{score:g}")}
    writer.online_write_batch(store.config, view, [(key, values, when, None)], None)


def score(repo: Path, config: SeamlessConfig, entity: int) -> float:
    sdk = online_features(repo, config, [entity])["score"].tolist()
    direct = served(repo, config, [entity])
    assert [row[0] for row in direct] == sdk  # serving's direct read agrees with Feast's
    return float(sdk[0])


def test_within_one_second_the_newer_event_stays_whichever_comes_last(
    repo: Path, stream_config: SeamlessConfig
) -> None:
    store = guarded(repo)
    writer = store._get_provider().online_store
    write(store, 7, at(500), 1.0)
    write(store, 7, at(200), 2.0)  # same second, older: refused
    assert score(repo, stream_config, 7) == 1.0
    write(store, 7, at(500), 3.0)  # the same time: written (a redone batch)
    assert score(repo, stream_config, 7) == 3.0
    write(store, 7, at(800), 4.0)  # same second, newer: written
    write(store, 7, at(800) - timedelta(microseconds=1), 5.0)  # 1 µs older: refused
    assert score(repo, stream_config, 7) == 4.0
    assert writer.written == 3
    # Feast's table keeps Feast's format: whole epoch seconds, read back by Feast as such.
    db = repo / "online_store.db"
    with sqlite3.connect(db) as conn:
        stamps = conn.execute(
            "SELECT DISTINCT typeof(event_ts), event_ts FROM mini_facts_view"
            " WHERE event_ts = ?", (int(S.timestamp()),),
        ).fetchall()  # fmt: skip
        side = conn.execute(f'SELECT event_us FROM "{SIDE_TABLE}"').fetchall()
    assert stamps == [("integer", int(S.timestamp()))]
    assert side == [(int(at(800).timestamp() * 1_000_000),)]
    feast_read = (
        open_store(repo)
        .get_online_features(features=["facts_view:score"], entity_rows=[{"customer_id": 7}])
        .to_dict()
    )
    assert feast_read["score"] == [4.0]
    # The consumer's late rule reads the precise time back.
    (ts, _), = writer.online_read(store.config, store.get_feature_view("facts_view"),
                                  [EntityKey(join_keys=["customer_id"],
                                             entity_values=[Value(int64_val=7)])])  # fmt: skip
    assert ts == at(800)


@pytest.mark.parametrize(
    "materializer", [SqliteOnlineStore, BatchedSqliteOnlineStore], ids=["feast", "batched"]
)
def test_after_materialization_the_stored_time_is_exact_or_the_end_of_its_second(
    repo: Path, stream_config: SeamlessConfig, materializer: type
) -> None:
    """The batched writer keeps the side table in step: its value's time is compared to
    the microsecond. Feast's own leaves none: its value counts as the end of its second,
    so no older event replaces it and an event of that second is refused."""
    exact = materializer is BatchedSqliteOnlineStore
    store = guarded(repo)
    write(store, 8, at(900), 1.0)
    # Materialization overwrites with an older time of the same second.
    materialize_row(repo, materializer(), 8, at(100), 2.0)
    assert score(repo, stream_config, 8) == 2.0
    write(store, 8, at(500), 3.0)  # newer than .100, within the second
    assert score(repo, stream_config, 8) == (3.0 if exact else 2.0)
    write(store, 8, at(100) - timedelta(microseconds=1), 4.0)  # older than .100
    assert score(repo, stream_config, 8) == (3.0 if exact else 2.0)
    materialize_row(repo, materializer(), 8, at(-1500), 5.0)  # an older second (.500)
    write(store, 8, at(-2100), 6.0)  # the second before: refused
    write(store, 8, at(-1900), 7.0)  # same second, older: refused
    assert score(repo, stream_config, 8) == 5.0
    write(store, 8, at(-1200), 8.0)  # same second, newer: written where the time is known
    assert score(repo, stream_config, 8) == (8.0 if exact else 5.0)
    write(store, 8, at(-1000), 9.0)  # the next second: written
    assert score(repo, stream_config, 8) == 9.0
    # A value only materialization ever wrote, before the side table existed (customer 1
    # at T3, a whole second, no side row): the end of its second.
    write(store, 1, T3 - timedelta(milliseconds=500), 10.0)  # the second before: refused
    write(store, 1, T3 + timedelta(milliseconds=500), 11.0)  # its second: refused
    assert score(repo, stream_config, 1) == 2.0
    write(store, 1, T3 + timedelta(seconds=1), 12.0)
    assert score(repo, stream_config, 1) == 12.0


def test_the_consumer_counts_an_older_event_of_the_same_second_late(
    repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    stream = f"s:subsecond:{repo.parent.name}"
    client.delete(stream)
    settings = StreamSettings(stream=stream, block_ms=100)
    consumer = Consumer(stream_config, repo, open_store(repo), client, settings)
    client.xadd(stream, encode(event("ss-new", 9, at(800).isoformat(), score=2.0, tier="n")))
    assert consumer.run(idle_exit_s=0.3).written == 1
    client.xadd(stream, encode(event("ss-old", 9, at(300).isoformat(), score=1.0, tier="o")))
    done = consumer.run(idle_exit_s=0.3)
    assert (done.late, done.written) == (1, 0), done.summary()
    assert score(repo, stream_config, 9) == 2.0
    assert served(repo, stream_config, [9]) == [[2.0, "n"]]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_the_end_of_a_stored_second_does_not_depend_on_the_machines_zone(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feast's column holds epoch seconds; its end in epoch microseconds is the same in
    every zone (it was shifted by the zone's offset outside UTC)."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        second = int(T3.timestamp())
        assert end_of_second(second) == second * 1_000_000 + 999_999
        assert end_of_second(-2) == -2_000_000  # truncated toward zero: an earlier end
    finally:
        monkeypatch.undo()
        time.tzset()
