"""One real S3 server (Ceph RGW on loopback) for the whole session, and its environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage.rgw import RadosGateway


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadosGateway]:
    server = RadosGateway(Path(tmp_path_factory.mktemp("rgw")))
    try:
        server.start()
        yield server
    finally:
        server.stop()


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
