"""End to end on a real cluster: the deployed overlay is current, then train in the cluster
and predict through serving.

Runs against whatever cluster kubectl's configuration points at (`KUBECONFIG`, its
current context, or `--kube-context` / `SEAMLESS_KUBE_CONTEXT`) once the overlay is
deployed there; with kind: `make kind-up images-load deploy e2e`. Skipped, with a reason
saying how to point it at a cluster, where none is configured or none answers within a
few seconds (as in CI and on the build machines, where no cluster can run).

First, re-applying the overlay must change nothing (issue #14 A.9): `kubectl diff -k`
(client-side and server-side) finds no difference and a server-side apply dry run
succeeds without conflicts. Then the training run: a Job in the `seamless` namespace that
runs the pipeline with the runtime image against the deployed MLflow and Feast
(endpoints and credentials from the same ConfigMaps and Secrets the manifests declare);
it must complete (a failed Job fails the test at once, with its last log lines). Then
serving is restarted and, reached through its NodePort when that answers from here or
else through a port-forward, must answer a prediction for a real customer id.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.e2e.cluster import Kubectl, serving_url, wait_for_job

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "manifests" / "tools"))
from training_job import JOB_NAME, training_job

pytestmark = [pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]
# The overlay whose rendered names (generated ConfigMaps) the training Job must match.
OVERLAY = ROOT / "manifests" / "overlays" / os.environ.get("SEAMLESS_E2E_OVERLAY", "kind")
JOB_TIMEOUT = 900


def _rendered(kubectl: Kubectl) -> list[dict[str, Any]]:
    """The overlay's objects as `kubectl kustomize` renders them."""
    rendered = kubectl.run("kustomize", str(OVERLAY), namespaced=False, timeout=120)
    if rendered.returncode != 0:
        raise AssertionError(f"kubectl kustomize {OVERLAY} failed: {rendered.stderr.strip()}")
    return [o for o in yaml.safe_load_all(rendered.stdout) if o]


def _training_job(kubectl: Kubectl) -> str:
    """The shared in-cluster training Job (manifests/tools/training_job.py), rendered
    against the deployed overlay so generated names (the Feast repo ConfigMap) match."""
    objects = _rendered(kubectl)
    return yaml.safe_dump(training_job(objects, rows=20_000, namespace=kubectl.namespace))


def _serving_token() -> str:
    tokens = OVERLAY / "secrets" / "serving-tokens.txt"
    for line in tokens.read_text().splitlines():
        token, _, roles = line.partition(":")
        if "predict" in roles or "admin" in roles:
            return token
    raise AssertionError(f"no predict token in {tokens}")


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def test_reapplying_the_overlay_changes_nothing(kubectl: Kubectl) -> None:
    """The rendered overlay equals what the API server stores: `make deploy` again is a
    no-op. `kubectl diff` exits 0 without differences, 1 with them, above 1 on error."""
    for mode in ([], ["--server-side"]):
        diff = kubectl.run("diff", *mode, "-k", str(OVERLAY), namespaced=False, timeout=300)
        what = " ".join(["kubectl diff", *mode, "-k", str(OVERLAY.relative_to(ROOT))])
        assert diff.returncode != 1, (
            f"{what}: the deployed objects differ from the overlay (a field the server "
            f"defaults, or a change not deployed yet):\n{_tail(diff.stdout)}"
        )
        assert diff.returncode == 0, f"{what} failed: {_tail(diff.stderr)}"
    dry_run = kubectl.run(
        "apply", "--server-side", "--dry-run=server", "-k", str(OVERLAY),
        namespaced=False, timeout=300,
    )  # fmt: skip
    assert dry_run.returncode == 0, (
        f"kubectl apply --server-side --dry-run=server -k {OVERLAY.relative_to(ROOT)} "
        f"failed (a field owned by another manager?):\n{_tail(dry_run.stderr)}"
    )


def test_the_overlays_setup_jobs_complete(kubectl: Kubectl) -> None:
    """Every Job the overlay deploys (the buckets, the dashboard's READ-only MLflow
    account) completes: a failed one fails here with its last log lines, before the
    training run depends on what it sets up."""
    jobs = [o["metadata"]["name"] for o in _rendered(kubectl) if o.get("kind") == "Job"]
    assert "mlflow-accounts" in jobs, f"the overlay {OVERLAY} deploys no mlflow-accounts Job"
    for name in jobs:
        wait_for_job(kubectl, name, timeout=600)


def test_train_in_cluster_then_predict_through_serving(kubectl: Kubectl) -> None:
    kubectl("delete", "job", JOB_NAME, "--ignore-not-found", "--wait=true", timeout=120)
    kubectl("apply", "-f", "-", stdin=_training_job(kubectl), timeout=120)
    wait_for_job(kubectl, JOB_NAME, timeout=JOB_TIMEOUT)
    kubectl("rollout", "restart", "deployment/serving", timeout=60)
    kubectl("rollout", "status", "deployment/serving", "--timeout=300s", timeout=330)

    headers = {"Authorization": f"Bearer {_serving_token()}"}
    # Serving speaks HTTPS only; its certificate is checked against the overlay's CA.
    ca = str(OVERLAY / "secrets" / "tls" / "ca.crt")
    with serving_url(kubectl, ca) as serving:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = requests.get(f"{serving}/readyz", timeout=5, verify=ca)
            except requests.RequestException:
                ready = None
            if ready is not None and ready.status_code == 200:
                break
            time.sleep(3)
        assert ready is not None and ready.status_code == 200, (
            f"serving at {serving} not ready within 120 s: "
            + (f"{ready.status_code} {ready.text[:300]}" if ready is not None else "no answer")
        )
        answer = requests.post(
            f"{serving}/v1/predict",
            json={"entity_ids": [100_000]},
            headers=headers,
            timeout=30,
            verify=ca,
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert 0.0 <= body["predictions"][0]["score"] <= 1.0
