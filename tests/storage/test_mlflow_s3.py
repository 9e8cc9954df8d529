"""MLflow's artifact store on s3:// (Ceph RGW on loopback, see rgw.py).

A real `mlflow server --artifacts-destination s3://...` proxies the artifacts (clients
never see the bucket), as manifests/components/s3-artifacts deploys it; and the embedded
mode can put a new experiment's artifacts in a bucket directly
(`SEAMLESS_MLFLOW_ARTIFACT_ROOT`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from components.common import storage
from components.common.net import free_port
from tests.storage.rgw import RadosGateway

pytestmark = [pytest.mark.storage, pytest.mark.slow]


@pytest.fixture(params=["http", "https"])
def mlflow_server(
    request: pytest.FixtureRequest,
    rgw: RadosGateway,
    bucket: str,
    tmp_path: Path,
    s3_env: dict[str, str],
    s3_certs: dict[str, Path],
) -> Iterator[str]:
    """`https`: the store's TLS port, verified with AWS_CA_BUNDLE (our CA) and checksums
    only when required, as the kind overlay's seamless-s3-endpoint ConfigMap sets them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{bucket}/mlflow",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
    ]  # fmt: skip
    # The server (not the client) holds the bucket's credentials: MLflow's own variable
    # for the endpoint, the keys from the same environment as everything else.
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": rgw.endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    if request.param == "https":
        env |= {
            "MLFLOW_S3_ENDPOINT_URL": rgw.tls_endpoint,
            "AWS_CA_BUNDLE": str(s3_certs["ours"] / "ca.crt"),
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }
    log_path = tmp_path / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=log, env=env, start_new_session=True, cwd=tmp_path
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def _log_and_load(experiment: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Fit, log and register a small model through the configured tracking URI; load it
    back. Returns the logged model's id (its artifacts live under `models/<id>/`)."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from components.common.tracking import ensure_experiment

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    ensure_experiment(experiment)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=f"{experiment}-m"
        )
    loaded = mlflow.pyfunc.load_model(f"models:/{experiment}-m/1")
    return str(info.model_id), model.predict(x), np.asarray(loaded.predict(x))


def test_server_keeps_artifacts_in_s3(
    mlflow_server: str, bucket: str, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    # As ConfigMap seamless-endpoints sets it: the client never follows the server's
    # presigned bucket URLs (with an https store it could not verify them, and retries).
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false")
    # The client has no S3 credentials at all: artifacts go through the server.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key)
    model_id, expected, got = _log_and_load("s3-proxied")
    np.testing.assert_array_equal(got, expected)
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    objects = storage.list_files(f"s3://{bucket}/mlflow/")
    assert any(model_id in o and o.endswith("/MLmodel") for o in objects), objects


def test_embedded_store_can_put_artifacts_in_a_bucket(
    bucket: str, s3_env: dict[str, str], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAMLESS_MLFLOW_ARTIFACT_ROOT", f"s3://{bucket}/embedded")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_env["AWS_ENDPOINT_URL"])
    model_id, expected, got = _log_and_load("s3-direct")
    np.testing.assert_array_equal(got, expected)
    objects = storage.list_files(f"s3://{bucket}/embedded/")
    assert any(model_id in o and o.endswith("/MLmodel") for o in objects), objects
    assert not (workspace / "mlflow" / "artifacts").exists()
