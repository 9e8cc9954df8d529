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
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "manifests" / "tools"))
from training_job import JOB_NAME, training_job

pytestmark = [pytest.mark.e2e, pytest.mark.kind]
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
    """The shared in-cluster training Job (manifests/tools/training_job.py), rendered
    against the kind overlay so generated names (the Feast repo ConfigMap) match."""
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "manifests" / "overlays" / "kind")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    return yaml.safe_dump(training_job(objects, rows=20_000, namespace=NAMESPACE))


def _serving_token() -> str:
    tokens = ROOT / "manifests" / "overlays" / "kind" / "secrets" / "serving-tokens.txt"
    for line in tokens.read_text().splitlines():
        token, _, roles = line.partition(":")
        if "predict" in roles or "admin" in roles:
            return token
    raise AssertionError(f"no predict token in {tokens}")


def test_train_in_cluster_then_predict_through_serving(cluster: None) -> None:
    _kubectl("delete", "job", JOB_NAME, "--ignore-not-found")
    _kubectl("apply", "-f", "-", stdin=_training_job())
    _kubectl(
        "wait",
        "--for=condition=complete",
        f"job/{JOB_NAME}",
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
