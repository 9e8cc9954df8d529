"""The mini world's Feast repo on the module's redis-server (`redis`: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.common.config import SeamlessConfig
from tests.serving.redis_store import RedisServer
from tests.stream.world import STREAM_CONFIG, build_repo


@pytest.fixture(scope="module")
def stream_config() -> SeamlessConfig:
    return STREAM_CONFIG()


@pytest.fixture(scope="module")
def redis_repo(
    redis: RedisServer, stream_config: SeamlessConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The mini world published, its online store the module's redis-server."""
    return build_repo(
        tmp_path_factory.mktemp("stream-repo"), stream_config, redis.connection_string
    )


@pytest.fixture()
def client(redis: RedisServer) -> Iterator[Any]:
    import redis as redis_py

    c = redis_py.Redis(host=redis.host, port=redis.port, decode_responses=True)
    yield c
    c.close()
