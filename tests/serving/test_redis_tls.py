"""Redis over TLS, as on the cluster: a real `redis-server` serving TLS only
(`--port 0 --tls-port`), certificates from manifests/tools/gen_certs.py, and the Feast
connection string the manifests use (`...,ssl=true,ssl_ca_certs=<ca.crt>`).

Feast's client (redis-py: materialization writes, SDK reads) and serving's own client
(resp.py on the event loop) read over TLS with the right CA; each refuses a server whose
certificate comes from another CA or does not name the address dialled; TLS options that
would be ignored or a CA file that cannot be read stop the store in one sentence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.serve.lookup.resp import AsyncRedis, RespUnavailable
from tests.helpers.certs import ours_and_other, wrong_name
from tests.serving.conftest import serving_client
from tests.serving.redis_store import RedisServer, redis_server, repo_variant

pytestmark = [pytest.mark.serving, pytest.mark.slow]

MISMATCH = "Hostname mismatch|doesn't match|IP address mismatch"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`ours/` (our CA, `redis` certified for its Service names and 127.0.0.1), `other/`
    (another CA, the same names) and `wrong-name/` (our CA, Service names only)."""
    out = tmp_path_factory.mktemp("redis-tls")
    ours_and_other(out, "redis")
    ours = out / "ours" / "secrets" / "tls"
    wrong = wrong_name(ours, "redis", out / "wrong-name")
    return {"ours": ours, "other": out / "other" / "secrets" / "tls", "wrong-name": wrong}


@pytest.fixture(scope="module")
def redis(certs: dict[str, Path]) -> Iterator[RedisServer]:
    """The module's Redis serves TLS only, with our CA's certificate: tests/serving/conftest.py's
    `redis_repo` is applied and materialized on it through Feast's own client, over TLS."""
    ours = certs["ours"]
    with redis_server((ours / "redis.crt", ours / "redis.key", ours / "ca.crt")) as server:
        yield server


@pytest.fixture(scope="module")
def wrong_name_redis(certs: dict[str, Path]) -> Iterator[RedisServer]:
    """Our CA's certificate, but not for 127.0.0.1 (the address the clients dial)."""
    wrong, ours = certs["wrong-name"], certs["ours"]
    with redis_server((wrong / "redis.crt", wrong / "redis.key", ours / "ca.crt")) as server:
        yield server


def serving_aclient(connection_string: str) -> AsyncRedis:
    """Serving's event-loop client, built from the connection string as serving builds it."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    nodes, kwargs = RedisOnlineStore._parse_connection_string(connection_string)
    client = AsyncRedis.from_redis_kwargs(nodes[0]["host"], nodes[0]["port"], kwargs)
    assert client is not None, f"serving would fall back to redis-py for {connection_string}"
    return client


async def _ping(client: AsyncRedis) -> None:
    try:
        await client.ping()
    finally:
        client.close()


def feast_read(repo: Path, config: SeamlessConfig, ids: list[int]) -> dict[str, list]:
    """The feature service's values through Feast's SDK (redis-py underneath)."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    service = store.get_feature_service(config.features.service)
    rows = [{config.entity_key(): i} for i in ids]
    return store.get_online_features(features=service, entity_rows=rows).to_dict()


@dataclass
class Variants:
    """`redis_repo` made for other connection strings, and how serving and Feast fare
    with one."""

    redis_repo: Path
    built: dict
    config: SeamlessConfig
    tmp_path: Path

    def repo(self, conn: str, name: str) -> Path:
        """A copy of `redis_repo` (in `tmp_path / name`) whose store dials `conn`."""
        return repo_variant(self.redis_repo, self.tmp_path / name, conn)

    def both_clients_refuse(self, conn: str, repo: Path, match: str) -> None:
        """Serving's own client (connection string `conn`) and Feast's SDK (`repo`, made for
        `conn`) both refuse the server, saying `match`."""
        with pytest.raises(RespUnavailable, match=match):
            asyncio.run(_ping(serving_aclient(conn)))
        with pytest.raises(RedisConnectionError, match=match):
            feast_read(repo, self.config, self.built["entities"][:1])

    def serving_not_ready(self, repo: Path, says: str) -> None:
        """Serving over `repo` answers 503 naming `says` (where the operator looks), not a
        prediction."""
        with serving_client(self.tmp_path, self.config, feast_repo=repo) as c:
            r = c.post("/v1/predict", json={"entity_ids": self.built["entities"][:1]})
            assert r.status_code == 503 and says in r.json()["detail"], r.text


@pytest.fixture()
def variants(
    redis_repo: Path, built: dict, serve_config: SeamlessConfig, tmp_path: Path
) -> Variants:
    return Variants(redis_repo, built, serve_config, tmp_path)


def test_feast_and_serving_read_over_tls(
    ws: Path,
    redis: RedisServer,
    redis_repo: Path,
    built: dict,
    serve_config: SeamlessConfig,
    tmp_path: Path,
) -> None:
    assert int(redis.command("DBSIZE").lstrip(b":")) > 100  # materialized over TLS
    ids = built["entities"][:5]
    values = feast_read(redis_repo, serve_config, ids)
    features = [k for k in values if k != serve_config.entity_key()]
    assert features and all(v is not None for k in features for v in values[k]), values

    with serving_client(tmp_path, serve_config, feast_repo=redis_repo) as c:
        r = c.post("/v1/predict", json={"entity_ids": ids})
        assert r.status_code == 200, r.text
        reader = c.app.state.service.features._reader  # type: ignore[attr-defined]
        assert c.app.state.service.features.read_path == "redis"  # type: ignore[attr-defined]
        assert reader.aclient.ssl and reader.aclient.connects >= 1  # resp.py, over TLS
        # The SDK path of serving (frames) reads the same through redis-py.
        frame = c.app.state.service.features.fetch(ids)  # type: ignore[attr-defined]
        assert not frame[features].isna().any().any()


def test_clients_refuse_a_server_certified_by_another_ca(
    redis: RedisServer, certs: dict[str, Path], variants: Variants
) -> None:
    other_ca = certs["other"] / "ca.crt"
    conn = f"127.0.0.1:{redis.port},ssl=true,ssl_ca_certs={other_ca}"
    repo = variants.repo(conn, "feast-other-ca")
    variants.both_clients_refuse(conn, repo, "CERTIFICATE_VERIFY_FAILED")
    variants.serving_not_ready(repo, "CERTIFICATE_VERIFY_FAILED")


def test_clients_refuse_a_certificate_for_another_name(
    wrong_name_redis: RedisServer, certs: dict[str, Path], variants: Variants
) -> None:
    conn = f"127.0.0.1:{wrong_name_redis.port},ssl=true,ssl_ca_certs={certs['ours'] / 'ca.crt'}"
    repo = variants.repo(conn, "feast-wrong-name")
    variants.both_clients_refuse(conn, repo, MISMATCH)


def test_plaintext_client_gets_no_answer(redis: RedisServer) -> None:
    """The TLS port does not speak plaintext RESP: a client without ssl=true fails."""
    with pytest.raises(RespUnavailable):
        asyncio.run(_ping(AsyncRedis("127.0.0.1", redis.port, timeout_s=2)))


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        (",ssl_ca_certs={ca}", "option ssl_ca_certs is set but ssl is not true"),
        (",ssl=true,ssl_ca_certs={missing}", "option ssl_ca_certs names '{missing}', which is"),
        (",ssl=true,ssl_certfile={missing}", "option ssl_certfile names '{missing}', which is"),
    ],
)
def test_bad_tls_options_are_one_sentence(
    redis: RedisServer,
    certs: dict[str, Path],
    variants: Variants,
    tmp_path: Path,
    options: str,
    sentence: str,
) -> None:
    from components.features.store import open_store

    paths = {"ca": certs["ours"] / "ca.crt", "missing": tmp_path / "nope.crt"}
    conn = f"127.0.0.1:{redis.port}" + options.format(**paths)
    expected = sentence.format(**paths)
    repo = variants.repo(conn, "feast-bad")
    # The pipeline's features step and the materialization job open the store this way.
    with pytest.raises(SeamlessError) as caught:
        open_store(repo)
    message = str(caught.value)
    assert expected in message and "feature_store.yaml: online_store.connection_string" in message
    # Serving: not ready, and the same sentence.
    variants.serving_not_ready(repo, expected)
