"""The object store contract (issue #14 B): MinIO in the kind overlay, an external S3 in
the production example, MLflow's artifacts in S3 in both. PSS, probes, images and the
NetworkPolicy flows of these objects are checked with everything else in
test_manifests_policy.py; this module checks the contract the Python code relies on."""

from __future__ import annotations

from typing import Any

import pytest
from k8s_objects import Rendering

pytestmark = pytest.mark.manifests

ENDPOINT = "https://minio.seamless.svc:9000"
BUCKETS = ("seamless-artifacts", "seamless-data", "seamless-pipelines")
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _container(obj: dict[str, Any] | None) -> dict[str, Any]:
    assert obj is not None
    spec = obj["spec"]["template"]["spec"]
    return spec["containers"][0]  # type: ignore[no-any-return]


def _secret_env(c: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_kind_runs_minio_with_the_agreed_endpoint_and_keys(
    renderings: dict[str, Rendering],
) -> None:
    kind = renderings["kind"]
    svc = kind.get("Service", "minio")
    assert svc is not None and [p["port"] for p in svc["spec"]["ports"]] == [9000]
    minio = kind.get("StatefulSet", "minio")
    c = _container(minio)
    assert c["image"].startswith("quay.io/minio/minio:RELEASE."), c["image"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    env = _secret_env(c)
    assert env["MINIO_ROOT_USER"] == ("seamless-s3", "AWS_ACCESS_KEY_ID")
    assert env["MINIO_ROOT_PASSWORD"] == ("seamless-s3", "AWS_SECRET_ACCESS_KEY")
    claims = [t["metadata"]["name"] for t in minio["spec"]["volumeClaimTemplates"]]  # type: ignore[index]
    assert claims == ["data"], "MinIO keeps its data on a claim"
    secret = kind.get("Secret", "seamless-s3")
    assert secret is not None and sorted(secret["data"]) == sorted(S3_KEYS)
    endpoint = kind.get("ConfigMap", "seamless-s3-endpoint")
    assert endpoint is not None and endpoint["data"] == {
        "AWS_ENDPOINT_URL": ENDPOINT,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": ENDPOINT,
        "AWS_CA_BUNDLE": "/etc/seamless/ca/ca.crt",
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        "SEAMLESS_SNAPSHOT_ROOT": "s3://seamless-data/snapshots",
        "SEAMLESS_FEAST_OFFLINE_ROOT": "s3://seamless-data/feast",
    }


def test_kind_bucket_job_creates_the_buckets_idempotently(renderings: dict[str, Rendering]) -> None:
    job = renderings["kind"].get("Job", "minio-buckets")
    c = _container(job)
    script = " ".join(c["args"])
    assert "mb --ignore-existing" in script, "minio-buckets: `mc mb` must tolerate existing buckets"
    for bucket in BUCKETS:
        assert bucket in script, f"minio-buckets does not create {bucket}"
    assert "ttlSecondsAfterFinished" not in job["spec"], (  # type: ignore[index]
        "a Job deleted after it finished is re-created by every apply"
    )
    labels = job["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    assert labels.get("seamless.dev/s3-client") == "true"
    assert _secret_env(c) == {k: ("seamless-s3", k) for k in S3_KEYS}


def test_mlflow_keeps_artifacts_in_s3(rendering: Rendering) -> None:
    dep = rendering.get("Deployment", "mlflow")
    c = _container(dep)
    assert "--artifacts-destination=s3://seamless-artifacts/mlflow" in c["args"]
    assert "--serve-artifacts" in c["args"], "clients reach artifacts through the server"
    assert _secret_env(c).items() >= {k: ("seamless-s3", k) for k in S3_KEYS}.items()
    assert {"configMapRef": {"name": "seamless-s3-endpoint"}} in c["envFrom"]
    labels = dep["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    assert labels.get("seamless.dev/s3-client") == "true"
    volumes = [v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]]  # type: ignore[index]
    assert "artifacts" not in volumes
    assert rendering.get("PersistentVolumeClaim", "mlflow-artifacts") is None


def test_production_points_at_an_external_s3(renderings: dict[str, Rendering]) -> None:
    prod = renderings["production"]
    assert prod.get("StatefulSet", "minio") is None, "production uses an external S3"
    endpoint = prod.get("ConfigMap", "seamless-s3-endpoint")
    assert endpoint is not None and endpoint["data"]["AWS_ENDPOINT_URL"].startswith("https://")
    assert prod.get("Secret", "seamless-s3") is not None
    policy = prod.get("NetworkPolicy", "s3-external")
    assert policy is not None
    assert policy["spec"]["podSelector"] == {"matchLabels": {"seamless.dev/s3-client": "true"}}


@pytest.mark.parametrize("overlay", ["kind", "production"])
def test_data_outliving_a_pod_lives_in_the_object_store(
    renderings: dict[str, Rendering], overlay: str
) -> None:
    """Pipeline steps and the materialization CronJob have no volume that outlives them
    (SEAMLESS_EPHEMERAL_DISK), so each overlay names object-store roots for the dataset
    snapshots and Feast's offline tables, and declares no standalone claim but the Spark
    engine's scratch (files a step's Spark executors hand back to it while the step runs,
    removed when it ends): the only other volumes are the databases' and the in-cluster
    store's own."""
    rendering = renderings[overlay]
    endpoint = rendering.get("ConfigMap", "seamless-s3-endpoint")
    assert endpoint is not None
    for key in ("SEAMLESS_SNAPSHOT_ROOT", "SEAMLESS_FEAST_OFFLINE_ROOT"):
        assert endpoint["data"].get(key, "").startswith("s3://"), f"{overlay}: {key}"
    claims = [
        o["metadata"]["name"] for o in rendering.objects if o["kind"] == "PersistentVolumeClaim"
    ]
    assert claims == ["seamless-spark-scratch"], f"{overlay} declares volumes {claims}"
    cron = _pod_templates(rendering)["CronJob/feast-materialize"]["spec"]
    env = {e["name"]: e.get("value") for e in cron["containers"][0]["env"]}
    assert env.get("SEAMLESS_EPHEMERAL_DISK") == "true"
    assert not [v for v in cron["volumes"] if "persistentVolumeClaim" in v]


def _pod_templates(rendering: Rendering) -> dict[str, dict[str, Any]]:
    out = {}
    for obj in rendering.objects:
        spec = obj.get("spec") or {}
        if obj["kind"] == "CronJob":
            out[f"CronJob/{obj['metadata']['name']}"] = spec["jobTemplate"]["spec"]["template"]
        elif "template" in spec and obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            out[f"{obj['kind']}/{obj['metadata']['name']}"] = spec["template"]
    return out


def test_every_reader_of_the_object_store_roots_can_reach_the_store(
    rendering: Rendering,
) -> None:
    """The roots (SEAMLESS_SNAPSHOT_ROOT, SEAMLESS_FEAST_OFFLINE_ROOT) come from the
    seamless-s3-endpoint ConfigMap; a pod given it must also hold the keys and the label the
    store's network policies admit, or it would fail on its first s3:// read. The Feast
    materialization reads the offline tables, so it is one of them (optional references:
    overlays without object storage run it as before)."""
    readers = {}
    for name, template in _pod_templates(rendering).items():
        for c in template["spec"]["containers"]:
            refs = [e.get("configMapRef", {}).get("name") for e in c.get("envFrom") or []]
            if "seamless-s3-endpoint" in refs:
                readers[name] = (template, c)
    assert "CronJob/feast-materialize" in readers, sorted(readers)
    for name, (template, c) in readers.items():
        labels = template["metadata"]["labels"]
        assert labels.get("seamless.dev/s3-client") == "true", f"{name} lacks the s3-client label"
        assert _secret_env(c).items() >= {k: ("seamless-s3", k) for k in S3_KEYS}.items(), name
    cron = readers["CronJob/feast-materialize"][1]
    assert {"configMapRef": {"name": "seamless-s3-endpoint", "optional": True}} in cron["envFrom"]
    assert all(
        e["valueFrom"]["secretKeyRef"].get("optional") is True
        for e in cron["env"]
        if e["name"] in S3_KEYS
    )
