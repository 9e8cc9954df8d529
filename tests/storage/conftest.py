"""One real S3 server (Ceph RGW on loopback) for the whole session, and its environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.certs import ours_and_other
from tests.storage.rgw import RadosGateway, running


@pytest.fixture(scope="session")
def s3_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our CA with `minio` certified for its Service names and 127.0.0.1 (not `localhost`:
    the wrong name), and another CA with the same names (manifests/tools/gen_certs.py)."""
    return ours_and_other(tmp_path_factory.mktemp("s3-tls"), "minio")


@pytest.fixture(scope="session")
def rgw(
    tmp_path_factory: pytest.TempPathFactory, s3_certs: dict[str, Path]
) -> Iterator[RadosGateway]:
    """Plain HTTP on `endpoint`, HTTPS with our `minio` certificate on `tls_endpoint`."""
    ours = s3_certs["ours"]
    tls = (ours / "minio.crt", ours / "minio.key")
    with running(Path(tmp_path_factory.mktemp("rgw")), tls=tls) as server:
        yield server


@pytest.fixture()
def s3_env(rgw: RadosGateway, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's credentials and endpoint in the environment, as a cluster's Secret sets them."""
    for key in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    env = rgw.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture()
def bucket(s3_env: dict[str, str]) -> str:
    """A new empty bucket (names are unique, so tests never see each other's objects)."""
    import boto3

    name = f"seamless-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=s3_env["AWS_DEFAULT_REGION"],
    ).create_bucket(Bucket=name)
    return name
