"""End to end on a kind cluster: deploy, train in the cluster, predict through serving.

Needs kind, docker and kubectl (`make kind-up images-load deploy`); skipped with a
reason where kind is absent (as on the build machines, where no cluster can run).
The training run is a Job in the `seamless` namespace that runs the pipeline with the
runtime image against the deployed MLflow and Feast (endpoints and credentials from
the same ConfigMaps and Secrets the manifests declare); then serving is restarted and
must answer a prediction for a real customer id.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from components.common.image import image_ref

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
KUBECTL = os.environ.get("KUBECTL", str(ROOT / "build" / "tools" / "kubectl"))
NAMESPACE = "seamless"
SERVING = "http://127.0.0.1:30080"


def _kubectl(*args: str, stdin: str | None = None, timeout: int = 600) -> str:
    out = subprocess.run(
        [KUBECTL, "-n", NAMESPACE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


@pytest.fixture(scope="module")
def cluster() -> None:
    if shutil.which(os.environ.get("KIND", "kind")) is None:
        pytest.skip(
            "kind is not installed (and cannot be on the build machines): see docs/kubernetes.md"
        )
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl missing: run `make kubectl`")
    nodes = subprocess.run(
        [KUBECTL, "get", "nodes"], capture_output=True, text=True, check=False, timeout=30
    )
    if nodes.returncode != 0:
        pytest.skip("no cluster reachable: run `make kind-up images-load deploy` first")


def _training_job() -> str:
    """A Job running `seamless run training` in the cluster on generated demo data."""
    env_from = [
        {"configMapRef": {"name": n}} for n in ("seamless-endpoints", "seamless-telemetry-off")
    ]
    secret_env = [
        ("MLFLOW_TRACKING_USERNAME", "mlflow-client", "MLFLOW_TRACKING_USERNAME"),
        ("MLFLOW_TRACKING_PASSWORD", "mlflow-client", "MLFLOW_TRACKING_PASSWORD"),
        ("PGPASSWORD", "postgres-credentials", "FEAST_DB_PASSWORD"),
        ("REDIS_PASSWORD", "redis-credentials", "REDIS_PASSWORD"),
    ]
    env = [
        {"name": n, "valueFrom": {"secretKeyRef": {"name": s, "key": k}}} for n, s, k in secret_env
    ] + [
        {"name": "HOME", "value": "/tmp"},
        {"name": "SEAMLESS_FEAST_REPO", "value": "/feast"},
        {"name": "SEAMLESS_FEAST_CONFIG", "value": "/etc/feast/feature_store.yaml"},
    ]
    script = (
        "seamless datasets generate --out /tmp/data --rows 20000 && "
        "seamless run training --data-dir /tmp/data --workspace /tmp/ws"
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "seamless-e2e-training", "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"seamless.dev/pipeline-step": "true"}},
                "spec": {
                    "serviceAccountName": "seamless-pipeline",
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "train",
                            "image": image_ref("runtime"),
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script],
                            "env": env,
                            "envFrom": env_from,
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "2", "memory": "4Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "tmp", "mountPath": "/tmp"},
                                {"name": "offline", "mountPath": "/feast"},
                                {"name": "repo", "mountPath": "/etc/feast", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
                        {
                            "name": "offline",
                            "persistentVolumeClaim": {"claimName": "feast-offline"},
                        },
                        {"name": "repo", "configMap": {"name": "feast-repo"}},
                    ],
                },
            },
        },
    }
    return yaml.safe_dump(job)


def _serving_token() -> str:
    tokens = ROOT / "manifests" / "overlays" / "kind" / "secrets" / "serving-tokens.txt"
    for line in tokens.read_text().splitlines():
        token, _, roles = line.partition(":")
        if "predict" in roles or "admin" in roles:
            return token
    raise AssertionError(f"no predict token in {tokens}")


def test_train_in_cluster_then_predict_through_serving(cluster: None) -> None:
    _kubectl("delete", "job", "seamless-e2e-training", "--ignore-not-found")
    _kubectl("apply", "-f", "-", stdin=_training_job())
    _kubectl(
        "wait",
        "--for=condition=complete",
        "job/seamless-e2e-training",
        "--timeout=900s",
        timeout=960,
    )
    _kubectl("rollout", "restart", "deployment/serving")
    _kubectl("rollout", "status", "deployment/serving", "--timeout=300s")

    headers = {"Authorization": f"Bearer {_serving_token()}"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = requests.get(f"{SERVING}/readyz", timeout=5)
        if ready.status_code == 200:
            break
        time.sleep(3)
    answer = requests.post(
        f"{SERVING}/v1/predict", json={"entity_ids": [100_000]}, headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert 0.0 <= body["predictions"][0]["score"] <= 1.0
