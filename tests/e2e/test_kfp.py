"""End to end on Kubeflow Pipelines: `seamless submit` the compiled training pipeline to the
cluster's KFP and wait for the run to succeed.

Needs what test_cluster.py needs (a cluster with the overlay deployed) plus Kubeflow
Pipelines on it (`make kfp-up`, manifests/kfp/README.md); skipped, saying which is missing,
when the cluster has no `ml-pipeline` Service in namespace `kubeflow` (as in CI and on the
build machines, where neither a cluster nor GitHub is reachable).

The test first gives KFP's step namespace what the compiled pipeline reads by name (what
`make kfp-steps` applies: manifests/kfp/step_wiring.py over the rendered overlay), then
serves freshly generated demo data over HTTP from a pod in that namespace (the steps read
`--data-dir http://...` like any remote data directory), reaches the KFP API through a
port-forward, submits with the `seamless` CLI and waits for the run, then finds the run's
artifacts in the Seamless object store (the wiring's `kfp-launcher` root). A run that ends in
any state but SUCCEEDED fails the test with the run's error and the last log lines of its
pods.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.cluster import REACH_TIMEOUT, Kubectl, PortForward
from tests.helpers.cli import SEAMLESS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "manifests" / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "manifests" / "kfp"))
from step_wiring import step_wiring
from training_job import runtime_image

pytestmark = [pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "manifests" / "overlays" / os.environ.get("SEAMLESS_E2E_OVERLAY", "kind")
KFP_NAMESPACE = os.environ.get("KFP_NAMESPACE") or "kubeflow"
DATA = "seamless-e2e-data"
ROWS = 20_000
RUN_TIMEOUT = 1800


@pytest.fixture(scope="module")
def kfp(kubectl: Kubectl) -> Kubectl:
    """kubectl bound to KFP's namespace; skips when the cluster has no KFP API Service."""
    bound = Kubectl(kubectl.binary, kubectl.context, namespace=KFP_NAMESPACE)
    probe = bound.run(
        f"--request-timeout={REACH_TIMEOUT}s", "get", "service", "ml-pipeline",
        timeout=REACH_TIMEOUT + 2,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(
            f"no Kubeflow Pipelines on this cluster (no Service ml-pipeline in namespace "
            f"{KFP_NAMESPACE}: {probe.stderr.strip()[-200:]}): run `make kfp-up` "
            "(manifests/kfp/README.md)"
        )
    return bound


def _overlay_objects(kubectl: Kubectl) -> list[dict]:
    rendered = kubectl.run("kustomize", str(OVERLAY), namespaced=False, timeout=120)
    if rendered.returncode != 0:
        raise AssertionError(f"kubectl kustomize {OVERLAY} failed: {rendered.stderr.strip()}")
    return [o for o in yaml.safe_load_all(rendered.stdout) if o]


def _data_server(image: str) -> list[dict]:
    """A pod that generates the demo tables, then serves them over HTTP, and its Service."""
    labels = {"app.kubernetes.io/name": DATA}
    script = (
        f"seamless datasets generate --out /tmp/data --rows {ROWS}\n"
        "exec python3 -m http.server 8000 --bind 0.0.0.0 --directory /tmp/data"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": DATA, "namespace": KFP_NAMESPACE, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,  # the runtime image's user
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "data",
                    "image": image,
                    "command": ["sh", "-ec", script],
                    "env": [{"name": "HOME", "value": "/tmp"}],
                    "ports": [{"containerPort": 8000}],
                    # Ready once the server answers, i.e. after the tables are written.
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 3},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": DATA, "namespace": KFP_NAMESPACE, "labels": labels},
        "spec": {"selector": labels, "ports": [{"port": 8000, "targetPort": 8000}]},
    }
    return [pod, service]


def _run_pods_logs(kfp: Kubectl, run_id: str) -> str:
    pods = kfp.run("get", "pods", "-l", f"pipeline/runid={run_id}", "-o", "wide", timeout=60)
    logs = kfp.run(
        "logs", "-l", f"pipeline/runid={run_id}", "--all-containers", "--prefix", "--tail=20",
        timeout=120,
    )  # fmt: skip
    return f"Its pods:\n{pods.stdout.rstrip()}\nLast log lines:\n{logs.stdout.rstrip()}"


def _run_artifacts(kubectl: Kubectl, objects: list[dict], run_id: str) -> list[str]:
    """Keys under the wiring's default pipeline root (kfp-launcher) that name the run: the
    launcher wrote the steps' artifacts to the Seamless object store, not KFP's own."""
    import base64

    import boto3
    from botocore.config import Config

    (secret,) = [
        o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "seamless-s3"
    ]
    keys = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    forward = PortForward(kubectl, "service/minio", 9000)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=forward.start(),
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket="seamless-pipelines", Prefix="kfp/"
        )
        return [
            o["Key"] for page in pages for o in page.get("Contents") or [] if run_id in o["Key"]
        ]
    finally:
        forward.stop()


def test_training_pipeline_succeeds_on_kfp(kubectl: Kubectl, kfp: Kubectl) -> None:
    import kfp as kfp_sdk

    objects = _overlay_objects(kubectl)
    wiring = yaml.safe_dump_all(step_wiring(objects, KFP_NAMESPACE))
    # Both namespaces: the objects name their own (kubectl refuses a differing -n).
    applied = kfp.run("apply", "-f", "-", stdin=wiring, timeout=120, namespaced=False)
    assert applied.returncode == 0, f"applying the step wiring failed: {applied.stderr}"

    server = yaml.safe_dump_all(_data_server(runtime_image(objects)))
    kfp("delete", "pod,service", DATA, "--ignore-not-found", "--wait=true", timeout=120)
    kfp("apply", "-f", "-", stdin=server, timeout=120)
    forward = PortForward(kfp, "service/ml-pipeline", 8888)
    try:
        kfp("wait", "--for=condition=Ready", f"pod/{DATA}", "--timeout=600s", timeout=630)
        host = forward.start()
        data_dir = f"http://{DATA}.{KFP_NAMESPACE}.svc.cluster.local:8000"
        submitted = subprocess.run(
            [SEAMLESS, "submit", "--host", host, "--pipeline", "training",
             "--data-dir", data_dir, "--namespace", KFP_NAMESPACE, "--experiment", "seamless-e2e"],
            capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ),
        )  # fmt: skip
        assert submitted.returncode == 0, f"seamless submit failed:\n{submitted.stderr}"
        match = re.search(r"submitted: run (\S+) ", submitted.stdout)
        assert match, f"no run id in: {submitted.stdout}"
        run_id = match.group(1)

        client = kfp_sdk.Client(host=host, namespace=KFP_NAMESPACE)
        try:
            run = client.wait_for_run_completion(run_id, timeout=RUN_TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"KFP run {run_id} did not finish within {RUN_TIMEOUT} s.\n"
                + _run_pods_logs(kfp, run_id)
            ) from None
        if run.state != "SUCCEEDED":
            raise AssertionError(
                f"KFP run {run_id} ended {run.state}: {run.error}\n{_run_pods_logs(kfp, run_id)}"
            )
        stored = _run_artifacts(kubectl, objects, run_id)
        assert stored, f"run {run_id} left no artifacts under s3://seamless-pipelines/kfp/"
    finally:
        forward.stop()
        kfp.run("delete", "pod,service", DATA, "--ignore-not-found", "--wait=false", timeout=120)
