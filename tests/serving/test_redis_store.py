"""Serving from a Feast repo whose online store is a real `redis-server`.

The demo features are materialized into Redis; predictions by entity id must equal
those computed from the same features through the SQLite store, an unknown entity is
a 404, and Redis going away is a 503 naming the online store, with recovery once it is
back, without restarting the app.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from tests.serving.conftest import serving_client
from tests.serving.redis_store import RedisServer, repo_variant, same_predictions

pytestmark = [pytest.mark.serving, pytest.mark.slow]


@pytest.fixture()
def redis_client(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig, redis_repo: Path
) -> Iterator[TestClient]:
    with serving_client(tmp_path, serve_config, feast_repo=redis_repo) as c:
        yield c


def test_materialized_into_redis(redis: RedisServer, redis_repo: Path) -> None:
    keys = int(redis.command("DBSIZE").lstrip(b":"))
    assert keys > 100, keys  # one hash per entity (and view)
    assert "type: redis" in (redis_repo / "feature_store.yaml").read_text()


def test_predictions_equal_the_sqlite_store(
    redis_client: TestClient, client: TestClient, built: dict
) -> None:
    ids = built["entities"][:25] + built["entities"][-25:]
    r, s = same_predictions(redis_client, client, ids)
    service = redis_client.app.state.service  # type: ignore[attr-defined]
    # The hot path read Redis on the event loop, with the asyncio client (resp.py).
    assert service.features._reader.aclient.connects >= 1
    assert service.features.fetch(ids).equals(
        client.app.state.service.features.fetch(ids)  # type: ignore[attr-defined]
    )
    assert r["model_version"] == s["model_version"] == built["version"]
    assert [p["decision"] for p in r["predictions"]] == [p["decision"] for p in s["predictions"]]
    # The Open Inference Protocol path reads Redis too.
    infer = redis_client.post(
        f"/v2/models/{r['model_name']}/infer",
        json={"inputs": [{"name": "customer_id", "shape": [3], "datatype": "INT64",
                          "data": ids[:3]}]},
    )  # fmt: skip
    assert infer.status_code == 200, infer.text
    scores = next(o for o in infer.json()["outputs"] if o["name"] == "score")["data"]
    assert scores == pytest.approx([p["score"] for p in s["predictions"][:3]], abs=1e-6)


def test_unknown_entity_is_404(redis_client: TestClient, built: dict) -> None:
    known = built["entities"][0]
    r = redis_client.post("/v1/predict", json={"entity_ids": [known, 42, 7]})
    assert r.status_code == 404, r.text
    assert r.json()["unknown_entity_ids"] == [42, 7]


# redis-py (7.x) retries a failed connection 3 times with exponential backoff by default
# (0-14 s); serving builds its Redis client without retries unless the connection
# string asks for them, so an outage is a prompt 503.
PROMPT_S = 3.0


def test_redis_down_is_503_and_recovers_without_restart(
    redis: RedisServer, redis_client: TestClient, built: dict
) -> None:
    """The online store as the manifests configure it (`host:port[,password=...]`)."""
    ids = built["entities"][:3]
    before = redis_client.post("/v1/predict", json={"entity_ids": ids})
    assert before.status_code == 200, before.text
    assert redis_client.get("/readyz").status_code == 200
    redis.stop()
    try:
        t0 = time.monotonic()
        down = redis_client.post("/v1/predict", json={"entity_ids": ids})
        elapsed = time.monotonic() - t0
        assert down.status_code == 503, down.text
        detail = down.json()["detail"]
        assert "online feature store is unavailable" in detail, detail
        assert "Connection refused" in detail and str(redis.port) in detail, detail
        assert down.headers.get("Retry-After")
    finally:
        redis.start()
    after = _until_ok(redis_client, ids)
    assert [p["score"] for p in after["predictions"]] == [
        p["score"] for p in before.json()["predictions"]
    ]
    assert redis_client.get("/readyz").status_code == 200
    service = redis_client.app.state.service  # type: ignore[attr-defined]
    assert service.features._reader.aclient.connects >= 2  # the event loop's client reconnected
    assert elapsed < PROMPT_S, f"the 503 took {elapsed:.1f} s (client-side retries?)"


@pytest.fixture()
def no_retry_client(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig, redis_repo: Path, redis: RedisServer
) -> Iterator[TestClient]:
    repo = repo_variant(
        redis_repo, tmp_path / "feast-no-retry", f"{redis.connection_string},retry=null"
    )
    with serving_client(tmp_path, serve_config, feast_repo=repo) as c:
        yield c


def test_redis_down_is_a_prompt_503_without_client_retries(
    redis: RedisServer, no_retry_client: TestClient, built: dict
) -> None:
    """`retry=null` spelled out in the connection string: every route answers 503 at once."""
    client = no_retry_client
    ids = built["entities"][:3]
    before = client.post("/v1/predict", json={"entity_ids": ids})
    assert before.status_code == 200, before.text
    name = before.json()["model_name"]
    redis.stop()
    try:
        for _ in range(2):  # and again: the reopened store fails just as cleanly
            t0 = time.monotonic()
            down = client.post("/v1/predict", json={"entity_ids": ids})
            assert time.monotonic() - t0 < PROMPT_S
            assert down.status_code == 503, down.text
            assert "online feature store is unavailable" in down.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["feature_store"] != "ok", ready.text
        oip = client.post(
            f"/v2/models/{name}/infer",
            json={"inputs": [{"name": "customer_id", "shape": [1], "datatype": "INT64",
                              "data": ids[:1]}]},
        )  # fmt: skip
        assert oip.status_code == 503 and "online feature store" in oip.json()["error"], oip.text
        # Liveness does not depend on the online store (no restart loop on an outage).
        assert client.get("/healthz").status_code == 200
    finally:
        redis.start()
    after = _until_ok(client, ids)
    assert after["request_id"] != before.json()["request_id"]
    assert client.get("/readyz").status_code == 200


def _until_ok(client: TestClient, ids: list[int], timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:  # the same app object: no restart
        r = client.post("/v1/predict", json={"entity_ids": ids})
        if r.status_code == 200:
            return dict(r.json())
        assert r.status_code == 503, r.text
        assert time.monotonic() < deadline, f"no recovery: {r.text}"
        time.sleep(0.2)
