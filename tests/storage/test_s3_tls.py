"""S3 over HTTPS, as MinIO serves it on the cluster (--certs-dir with the `minio`
certificate of manifests/tools/gen_certs.py): the session's real S3 server (Ceph RGW on
loopback, rgw.py) serves that certificate on its TLS port.

Seamless' storage layer (s3fs) and boto3 (MLflow's artifact store, the bucket Job's
stand-in `mc`) verify the server with AWS_CA_BUNDLE, the variable the seamless-s3-endpoint
ConfigMap sets: with our CA they read and write; another CA and a name the certificate
lacks (`localhost`) are refused; a CA path that is not a readable file is one sentence
naming the key.
"""

from __future__ import annotations

import importlib.util
import ssl
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import SSLError

from components.common import storage
from components.common.errors import SeamlessError
from tests.storage.rgw import RadosGateway

pytestmark = pytest.mark.storage

ROOT = Path(__file__).resolve().parents[2]
# As the seamless-s3-endpoint ConfigMap sets them: boto3 over HTTPS otherwise uploads
# aws-chunked with a trailing checksum, which Ceph RGW refuses.
CHECKSUMS = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


@pytest.fixture()
def tls_env(
    rgw: RadosGateway,
    s3_env: dict[str, str],
    s3_certs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The environment a cluster pod gets: the https endpoint and our CA."""
    env = {**s3_env, "AWS_ENDPOINT_URL": rgw.tls_endpoint,
           "AWS_CA_BUNDLE": str(s3_certs["ours"] / "ca.crt"), **CHECKSUMS}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _boto(env: dict[str, str], endpoint: str | None = None):  # type: ignore[no-untyped-def]
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(retries={"max_attempts": 1}),
    )


def test_the_server_presents_the_minio_certificate(
    rgw: RadosGateway, s3_certs: dict[str, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(s3_certs["ours"] / "ca.crt"))
    with urllib.request.urlopen(rgw.tls_endpoint, context=context, timeout=10) as response:
        assert response.status == 200


def test_storage_reads_and_writes_with_our_ca(bucket: str, tls_env: dict[str, str]) -> None:
    uri = f"s3://{bucket}/tls/a.bin"
    storage.write_bytes(uri, b"over https")
    assert storage.read_bytes(uri) == b"over https"
    assert storage.list_files(f"s3://{bucket}/tls") == [uri]


def test_storage_refuses_another_ca(
    bucket: str, tls_env: dict[str, str], s3_certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(s3_certs["other"] / "ca.crt"))
    with pytest.raises(SeamlessError) as err:
        storage.write_bytes(f"s3://{bucket}/tls/b.bin", b"x")
    assert f"s3://{bucket}/tls/b.bin" in str(err.value)
    assert "\n" not in str(err.value)


def test_storage_refuses_a_name_the_certificate_lacks(
    bucket: str, tls_env: dict[str, str], rgw: RadosGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"https://localhost:{rgw.tls_port}")
    with pytest.raises(SeamlessError):
        storage.write_bytes(f"s3://{bucket}/tls/c.bin", b"x")


def test_a_ca_path_that_is_no_file_is_one_sentence(
    tls_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "ca.crt"
    monkeypatch.setenv("AWS_CA_BUNDLE", str(missing))
    with pytest.raises(SeamlessError) as err:
        storage.read_bytes("s3://bkt/k.csv")
    assert str(err.value) == (
        f"AWS_CA_BUNDLE={missing} is not a readable file, so the S3 endpoint's certificate "
        "cannot be verified: mount the CA there (on a cluster the seamless-ca ConfigMap) "
        "or unset it to trust the system's CAs."
    )


def test_boto3_verifies_with_aws_ca_bundle(
    tls_env: dict[str, str], rgw: RadosGateway, s3_certs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """What MLflow's S3 artifact store (boto3, MLFLOW_S3_ENDPOINT_URL) and the stand-in
    `mc` do: AWS_CA_BUNDLE from the environment, no option in code."""
    name = f"seamless-{uuid.uuid4().hex[:12]}"
    s3 = _boto(tls_env)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    with pytest.raises(SSLError):
        _boto(tls_env, f"https://localhost:{rgw.tls_port}").list_buckets()
    monkeypatch.setenv("AWS_CA_BUNDLE", str(s3_certs["other"] / "ca.crt"))
    with pytest.raises(SSLError):
        _boto(tls_env).list_buckets()


def _mc() -> object:
    path = ROOT / "docker" / "stack" / "minio" / "mc.py"
    spec = importlib.util.spec_from_file_location("seamless_mc_stand_in", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bucket_job_script_trusts_the_ca_in_its_config_dir(
    tls_env: dict[str, str], rgw: RadosGateway, s3_certs: dict[str, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The stand-in `mc` (docker/stack/minio/mc.py) trusts `<config-dir>/certs/CAs` as mc
    does, where manifests/components/minio/buckets-job.yaml copies seamless-ca; without
    that CA the https alias is refused."""
    monkeypatch.delenv("AWS_CA_BUNDLE")
    key, secret = tls_env["AWS_ACCESS_KEY_ID"], tls_env["AWS_SECRET_ACCESS_KEY"]
    monkeypatch.setenv("MC_HOST_s3", f"https://{key}:{secret}@127.0.0.1:{rgw.tls_port}")
    mc = _mc()
    name = f"seamless-{uuid.uuid4().hex[:12]}"
    config = tmp_path / "mc"
    with pytest.raises(SystemExit) as refused:
        mc.main(["--config-dir", str(config), "mb", "--ignore-existing", f"s3/{name}"])  # type: ignore[attr-defined]
    assert refused.value.code == 1
    (config / "certs" / "CAs").mkdir(parents=True)
    (config / "certs" / "CAs" / "seamless-ca.crt").write_bytes(
        (s3_certs["ours"] / "ca.crt").read_bytes()
    )
    for _ in range(2):  # idempotent, as every `make deploy` runs it
        code = mc.main(["--config-dir", str(config), "mb", "--ignore-existing", f"s3/{name}"])  # type: ignore[attr-defined]
        assert code == 0
    assert name in {
        b["Name"]
        for b in _boto(tls_env | {"AWS_CA_BUNDLE": ""}, rgw.endpoint).list_buckets()["Buckets"]
    }
