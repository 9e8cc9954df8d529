"""components.common.storage against a real S3 server (Ceph RGW on loopback, see rgw.py)."""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest

from components.common import storage
from components.common.errors import SeamlessError

pytestmark = pytest.mark.storage


def _client(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def test_round_trip(bucket: str) -> None:
    uri = f"s3://{bucket}/a/b.bin"
    storage.write_bytes(uri, b"hello \x00 world")
    assert storage.read_bytes(uri) == b"hello \x00 world"
    assert storage.exists(uri)
    assert storage.size(uri) == 13


def test_listing_a_prefix(bucket: str) -> None:
    for key in ("data/x.csv", "data/sub/y.parquet", "other/z.csv"):
        storage.write_bytes(f"s3://{bucket}/{key}", b"1")
    assert storage.list_files(f"s3://{bucket}/data") == [
        f"s3://{bucket}/data/sub/y.parquet",
        f"s3://{bucket}/data/x.csv",
    ]
    assert storage.list_files(f"s3://{bucket}/nothing-here") == []


def test_large_object_goes_up_as_multipart(bucket: str, s3_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(20 * 1024 * 1024 + 17)  # 3 parts of PART_SIZE (8 MiB)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    storage.put_file(local, f"s3://{bucket}/big.bin")
    head = _client(s3_env).head_object(Bucket=bucket, Key="big.bin")
    # A multipart object's ETag is "<md5 of part md5s>-<part count>".
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(data)
    assert hashlib.sha256(storage.read_bytes(f"s3://{bucket}/big.bin")).digest() == (
        hashlib.sha256(data).digest()
    )


def test_missing_bucket_is_one_sentence(s3_env: dict[str, str]) -> None:
    with pytest.raises(SeamlessError) as err:
        storage.read_bytes("s3://no-such-bucket-here/k.csv")
    assert str(err.value) == (
        "Cannot read s3://no-such-bucket-here/k.csv: bucket 'no-such-bucket-here' does not exist."
    )
    with pytest.raises(SeamlessError, match="bucket 'no-such-bucket-here' does not exist"):
        storage.list_files("s3://no-such-bucket-here/prefix")
    with pytest.raises(SeamlessError, match="bucket 'no-such-bucket-here' does not exist"):
        storage.write_bytes("s3://no-such-bucket-here/k.csv", b"x")


def test_missing_key_is_one_sentence(bucket: str) -> None:
    with pytest.raises(SeamlessError) as err:
        storage.read_bytes(f"s3://{bucket}/missing.csv")
    assert str(err.value) == f"Cannot read s3://{bucket}/missing.csv: no such object."


def test_wrong_credentials_are_one_sentence(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(SeamlessError) as err:
        storage.read_bytes(f"s3://{bucket}/k.csv")
    assert str(err.value) == (
        f"Cannot read s3://{bucket}/k.csv: the server refused the credentials "
        "(SignatureDoesNotMatch); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY")
    with pytest.raises(SeamlessError, match=r"refused the credentials \(InvalidAccessKeyId\)"):
        storage.list_files(f"s3://{bucket}/")


def test_no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SeamlessError) as err:
        storage.read_bytes("s3://bkt/k.csv")
    assert str(err.value) == (
        "s3://bkt/k.csv needs S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "in the environment (on a cluster, from a Secret)."
    )


def test_unreachable_endpoint_is_one_sentence(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.common.net import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    with pytest.raises(SeamlessError) as err:
        storage.read_bytes("s3://bkt/k.csv")
    assert str(err.value) == f"Cannot read s3://bkt/k.csv: the endpoint {dead} is unreachable."


def test_endpoint_for_s3_wins_over_the_general_one(
    bucket: str, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    storage.write_bytes(f"s3://{bucket}/k", b"v")
    assert storage.read_bytes(f"s3://{bucket}/k") == b"v"


def test_local_paths_and_file_uris_take_the_same_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage.write_bytes(tmp_path / "d" / "f.txt", b"x")
    assert storage.read_bytes(f"file://{tmp_path}/d/f.txt") == b"x"
    assert storage.list_files(tmp_path / "d") == [str(tmp_path / "d" / "f.txt")]
    with pytest.raises(SeamlessError, match=r"f2.txt: no such file\.$"):
        storage.read_bytes(tmp_path / "d" / "f2.txt")


def test_other_fsspec_protocols_are_refused_without_connecting() -> None:
    # ftp:// would log in to any host with the password written in the URL.
    with pytest.raises(SeamlessError) as err:
        storage.read_bytes("ftp://user:hunter2@example.invalid/x.csv")
    assert str(err.value) == (
        "ftp:// is not an object store Seamless reads or writes; use a local path, file:// or "
        "one of s3://, s3a://, gs://, gcs://, az://, abfs://, abfss://, memory://."
    )


def test_any_fsspec_object_store_takes_the_same_path() -> None:
    storage.write_bytes("memory://seamless-test/a/b.txt", b"m")
    assert storage.read_bytes("memory://seamless-test/a/b.txt") == b"m"
    assert storage.list_files("memory://seamless-test/a") == ["memory://seamless-test/a/b.txt"]
    with pytest.raises(SeamlessError, match=r"^Cannot read memory://seamless-test/nope: no such"):
        storage.read_bytes("memory://seamless-test/nope")
