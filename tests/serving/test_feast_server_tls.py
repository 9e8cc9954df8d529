"""The Feast feature server over TLS, the way the manifests run it: a real `feast serve
--cert --key` on loopback with a certificate from manifests/tools/gen_certs.py, over a
repo the features stage applied and materialized.

Feast's client (online store type `remote` with `cert:` the CA file) reads features
through it; with another CA or a name the certificate lacks it refuses the server.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from components.common.config import SeamlessConfig
from tests.helpers.certs import certs_fixture
from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon
from tests.serving.workspace import clean_endpoints

pytestmark = [pytest.mark.serving, pytest.mark.slow]

FEAST = Path(sys.executable).parent / "feast"

certs = certs_fixture("feast-server")


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory: pytest.TempPathFactory, serve_config: SeamlessConfig
) -> tuple[Path, list[int]]:
    """A local Feast repo (SQL registry, SQLite online store) with the demo features
    materialized; returns it and the entity ids it holds."""
    from components.features.features import build_features
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("feast-repo")
    paths = generate(root / "data", n_rows=600, seed=5)
    tables = {name: pd.read_parquet(p) for name, p in paths.items()}
    hashes = {name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for name, p in paths.items()}
    with clean_endpoints():
        build_features(serve_config, tables, hashes, root / "feast")
    ids = sorted(int(x) for x in tables["profiles"][serve_config.entity_key()].unique())
    return root / "feast", ids[:5]


@pytest.fixture(scope="module")
def https_feast(
    repo: tuple[Path, list[int]], certs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """`feast serve` with the arguments of manifests/base/feast/feature-server.yaml."""
    logs = tmp_path_factory.mktemp("feast-server")
    port, ours = free_port(), certs["ours"]
    cmd = [
        str(FEAST), "--chdir", str(repo[0]), "serve", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--max-requests", "0", "--no-access-log",
        f"--cert={ours / 'feast-server.crt'}", f"--key={ours / 'feast-server.key'}",
    ]  # fmt: skip
    env = {**os.environ, "FEAST_USAGE": "False", "HOME": str(logs)}
    ready = ssl.create_default_context(cafile=str(ours / "ca.crt"))
    with http_daemon(cmd, logs / "server.log", f"https://127.0.0.1:{port}/health",
                     timeout_s=120, grace_s=3, tls=ready, group=True, env=env):  # fmt: skip
        yield port


def client_store(repo: Path, dest: Path, url: str, ca: Path) -> Any:
    """A Feast client on the same registry whose online reads go through the server
    (online store `remote`), verifying it against `ca`, as on the cluster."""
    from feast import FeatureStore

    cfg = yaml.safe_load((repo / "feature_store.yaml").read_text())
    cfg["online_store"] = {"type": "remote", "path": url, "cert": str(ca)}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "feature_store.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return FeatureStore(repo_path=str(dest))


def online(store: Any, config: SeamlessConfig, ids: list[int]) -> Any:
    service = store.get_feature_service(config.features.service)
    rows = [{config.entity_key(): i} for i in ids]
    return store.get_online_features(features=service, entity_rows=rows).to_df()


@pytest.fixture()
def read_through(
    https_feast: int,
    repo: tuple[Path, list[int]],
    certs: dict[str, Path],
    serve_config: SeamlessConfig,
    tmp_path: Path,
) -> Callable[[str, str], pd.DataFrame]:
    """Reads the repo's entities through the server dialled as `host`, trusting the CA of
    `which` (`ours` or `other`)."""

    def read(host: str, which: str) -> pd.DataFrame:
        url = f"https://{host}:{https_feast}"
        ca = certs[which] / "ca.crt"
        return online(
            client_store(repo[0], tmp_path / f"{which}-{host}", url, ca), serve_config, repo[1]
        )

    return read


def test_client_with_the_ca_reads_features_over_https(
    read_through: Callable[[str, str], pd.DataFrame],
    https_feast: int,
    repo: tuple[Path, list[int]],
    serve_config: SeamlessConfig,
) -> None:
    path, ids = repo
    frame = read_through("127.0.0.1", "ours")
    assert list(frame[serve_config.entity_key()]) == ids
    features = [c for c in frame.columns if c != serve_config.entity_key()]
    # The same values a direct read of the online store gives (the demo data has gaps).
    from feast import FeatureStore

    direct = online(FeatureStore(repo_path=str(path)), serve_config, ids)
    assert len(frame.columns) > 5 and frame[features].notna().any(axis=None), frame
    pd.testing.assert_frame_equal(
        frame[sorted(frame.columns)], direct[sorted(direct.columns)], check_dtype=False
    )
    # Plain HTTP to the TLS port gets no answer a client could take for Feast's.
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{https_feast}/health", timeout=10)


def test_client_refuses_another_ca_and_another_name(
    read_through: Callable[[str, str], pd.DataFrame],
) -> None:
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        read_through("127.0.0.1", "other")
    # Our CA, but a name the certificate does not carry.
    with pytest.raises(requests.exceptions.SSLError, match=r"Hostname mismatch|doesn.t match"):
        read_through("localhost", "ours")
