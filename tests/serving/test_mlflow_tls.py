"""MLflow's tracking server over TLS, the way the manifests run it (manifests/base/mlflow,
issue #17 part 1): `mlflow server --uvicorn-opts "--ssl-certfile ...
--ssl-keyfile ..."` with a certificate from manifests/tools/gen_certs.py. MLflow's
client verifies it against `MLFLOW_TRACKING_SERVER_CERT_PATH` and refuses a server
certified by another CA or for another name."""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.certs import certs_fixture
from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon

pytestmark = [pytest.mark.serving, pytest.mark.slow]

MLFLOW = Path(sys.executable).parent / "mlflow"

certs = certs_fixture("mlflow")


@pytest.fixture(scope="module")
def https_mlflow(certs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port, ours = free_port(), certs["ours"]
    cmd = [
        str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
        "--uvicorn-opts",
        f"--ssl-certfile {ours / 'mlflow.crt'} --ssl-keyfile {ours / 'mlflow.key'}",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    ready = ssl.create_default_context(cafile=str(ours / "ca.crt"))
    with http_daemon(cmd, root / "server.log", f"https://127.0.0.1:{port}/health",
                     timeout_s=180, grace_s=3, tls=ready, group=True, env=env):  # fmt: skip
        yield port


@pytest.fixture()
def client_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a refusal is final
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return monkeypatch


def test_client_verifies_the_server_with_the_ca(
    https_mlflow: int, certs: dict[str, Path], client_env: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    client_env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs["ours"] / "ca.crt"))
    client = MlflowClient(tracking_uri=f"https://127.0.0.1:{https_mlflow}")
    experiment = client.create_experiment("over-tls")
    assert client.get_experiment(experiment).name == "over-tls"
    # Plain HTTP to the TLS port: no answer a client could take for MLflow's.
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{https_mlflow}/health", timeout=10)


def test_client_refuses_another_ca_and_another_name(
    https_mlflow: int, certs: dict[str, Path], client_env: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client_env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs["other"] / "ca.crt"))
    with pytest.raises(MlflowException, match="CERTIFICATE_VERIFY_FAILED"):
        MlflowClient(tracking_uri=f"https://127.0.0.1:{https_mlflow}").search_experiments()
    # Our CA, but a name the certificate does not carry.
    client_env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs["ours"] / "ca.crt"))
    with pytest.raises(MlflowException, match=r"Hostname mismatch|doesn.t match"):
        MlflowClient(tracking_uri=f"https://localhost:{https_mlflow}").search_experiments()
