"""Direct reads of Feast's Redis online store, against a real `redis-server` on
loopback: the hash keys are the ones Feast wrote, and the values equal the SDK's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from components.common.config import SeamlessConfig
from components.serve.lookup.direct_store import redis_keys
from components.serve.lookup.features import OnlineFeatures
from tests.serving.redis_store import RedisServer
from tests.serving.test_fastpath import same_value

pytestmark = [pytest.mark.serving, pytest.mark.slow]


def test_direct_redis_reads_equal_the_feast_sdk(
    redis: RedisServer, redis_repo: Path, serve_config: SeamlessConfig, built: dict
) -> None:
    features = OnlineFeatures(redis_repo, serve_config)
    ids = [*built["entities"][:200], -1, 42]
    rows = features.fetch_rows(ids)
    assert features.read_path == "redis", features.read_path
    frame = features.fetch(ids)[features.features]
    sdk = frame.astype(object).where(frame.notna(), None).values.tolist()
    for i, (mine, theirs) in enumerate(zip(rows, sdk, strict=True)):
        assert all(map(same_value, mine, theirs)), (ids[i], mine, theirs)
    assert all(v is None for v in rows[-1]) and any(v is not None for v in rows[0])
    # The keys are Feast's own: the hash of a known entity exists under exactly that key.
    reader = features._reader
    key = redis_keys(reader.plan, [ids[0]])[0]
    assert reader.client.exists(key) == 1
    assert reader.client.exists(redis_keys(reader.plan, [42])[0]) == 0
    # The event loop's reads (the asyncio client, resp.py) give the same rows, one entity
    # (one HMGET) or many (pipelined), duplicates included.
    assert reader.aclient is not None

    async def on_the_loop() -> list[list[list[object]]]:
        one = [await features.fetch_rows_async([i]) for i in ids[:5]]
        return [*one, await features.fetch_rows_async([*ids, ids[0]])]

    *singles, batch = asyncio.run(on_the_loop())
    assert [r[0] for r in singles] == rows[:5]
    assert batch == [*rows, rows[0]]


def test_redis_outage_is_unavailable_then_recovers(
    redis: RedisServer, redis_repo: Path, serve_config: SeamlessConfig, built: dict
) -> None:
    from components.serve.lookup.features import FeatureStoreUnavailable

    features = OnlineFeatures(redis_repo, serve_config)
    ids = built["entities"][:2]
    before = features.fetch_rows(ids)

    async def on_the_loop() -> list[list[object]] | None:
        return await features.fetch_rows_async(ids)

    assert asyncio.run(on_the_loop()) == before
    redis.stop()
    try:
        with pytest.raises(FeatureStoreUnavailable, match=r"lookup failed.*Connection refused"):
            asyncio.run(on_the_loop())
        with pytest.raises(FeatureStoreUnavailable, match="lookup failed"):
            features.fetch_rows(ids)
    finally:
        redis.start()
    assert features.fetch_rows(ids) == before
    assert asyncio.run(on_the_loop()) == before  # the asyncio client reconnected
