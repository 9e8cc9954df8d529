"""A one-off Job that runs the training pipeline inside the cluster, as a pipeline step would.

Shared by the kind e2e test (applied with kubectl) and the Docker stack test (run by
docker_stack.py), so both exercise the same pod: the runtime image under the
`seamless-pipeline` ServiceAccount and pipeline-step labels, endpoints and credentials from
the ConfigMaps and Secrets the manifests declare, the Feast repo ConfigMap, no disk that
outlives the pod (snapshots and Feast's offline tables go to the object store), Pod
Security `restricted`.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

JOB_NAME = "seamless-train-once"
# The security contexts of every Seamless pod (Pod Security `restricted`).
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def configmap_name(objects: list[Obj], base: str) -> str:
    """The rendered name of a generated ConfigMap (kustomize appends a content hash)."""
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap" and (name == base or name.startswith(f"{base}-")):
            return str(name)
    raise LookupError(f"ConfigMap {base} is not in the rendered manifests.")


def runtime_image(objects: list[Obj]) -> str:
    """The runtime image the overlay pins (the materialization CronJob runs it)."""
    for obj in objects:
        if obj["kind"] == "CronJob" and obj["metadata"]["name"] == "feast-materialize":
            spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            return str(spec["containers"][0]["image"])
    raise LookupError("CronJob/feast-materialize is not in the rendered manifests.")


def training_job(objects: list[Obj], rows: int = 20_000, namespace: str = "seamless") -> Obj:
    """`seamless run training` on generated demo data against the deployed MLflow and Feast."""
    secret_env = [
        ("MLFLOW_TRACKING_USERNAME", "mlflow-client", "MLFLOW_TRACKING_USERNAME"),
        ("MLFLOW_TRACKING_PASSWORD", "mlflow-client", "MLFLOW_TRACKING_PASSWORD"),
        ("PGPASSWORD", "postgres-credentials", "FEAST_DB_PASSWORD"),
        ("REDIS_PASSWORD", "redis-credentials", "REDIS_PASSWORD"),
        ("SEAMLESS_AUDIT_URL", "app-databases", "SEAMLESS_AUDIT_URL"),
        ("SEAMLESS_SERVE_LOG_URL", "app-databases", "SEAMLESS_SERVE_LOG_URL"),
    ]
    env = [
        {"name": n, "valueFrom": {"secretKeyRef": {"name": s, "key": k}}} for n, s, k in secret_env
    ] + [
        {"name": "HOME", "value": "/tmp"},
        # PostgreSQL takes TLS only; libpq verifies it against the namespace's CA.
        {"name": "PGSSLMODE", "value": "verify-full"},
        {"name": "PGSSLROOTCERT", "value": "/etc/seamless/ca/ca.crt"},
        # As on every pipeline step: data meant to outlive the pod must go to object storage.
        {"name": "SEAMLESS_EPHEMERAL_DISK", "value": "true"},
        {"name": "SEAMLESS_FEAST_REPO", "value": "/feast"},
        {"name": "SEAMLESS_FEAST_CONFIG", "value": "/etc/feast/feature_store.yaml"},
        # The Job trains, evaluates and registers: the roles a pipeline run holds.
        {"name": "SEAMLESS_ROLE", "value": "ml_engineer"},
        # Who acts, for the audit trail: the pod's ServiceAccount (no token is mounted, so
        # only the downward API tells it), as serving, the CronJob and pipeline steps do.
        {
            "name": "KUBERNETES_SERVICE_ACCOUNT",
            "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}},
        },
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    # Object storage as pipeline steps get it (optional references: the run says in one
    # sentence what is missing instead of the pod never starting).
    optional_key = {"name": "seamless-s3", "optional": True}
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {**optional_key, "key": k}}}
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    script = (
        f"seamless datasets generate --out /tmp/data --rows {rows} && "
        "seamless run training --data-dir /tmp/data --workspace /tmp/ws --json"
    )
    labels = {
        "app.kubernetes.io/name": "pipeline-step",
        "seamless.dev/pipeline-step": "true",
        "seamless.dev/s3-client": "true",
    }
    train: Obj = {
        "name": "train",
        "image": runtime_image(objects),
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "env": env,
        "envFrom": [
            {"configMapRef": {"name": "seamless-endpoints"}},
            {"configMapRef": {"name": "seamless-telemetry-off"}},
            {"configMapRef": {"name": "seamless-s3-endpoint", "optional": True}},
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "feast-repo-dir", "mountPath": "/feast"},
            {"name": "repo", "mountPath": "/etc/feast", "readOnly": True},
            {"name": "ca", "mountPath": "/etc/seamless/ca", "readOnly": True},
        ],
    }
    volumes = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
        {"name": "feast-repo-dir", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "repo", "configMap": {"name": configmap_name(objects, "feast-repo")}},
        {"name": "ca", "configMap": {"name": "seamless-ca"}},
    ]
    # A pod that fails at start (a node slow to apply its NetworkPolicies) is retried;
    # training itself is idempotent per run (a new version, gated).
    return pipeline_step_job(JOB_NAME, namespace, labels, [train], volumes, backoff_limit=2)


def pipeline_step_job(
    name: str,
    namespace: str,
    labels: dict[str, str],
    containers: list[Obj],
    volumes: list[Obj],
    *,
    backoff_limit: int,
    init_containers: list[Obj] | None = None,
) -> Obj:
    """A Job whose pod runs as a pipeline step's does: under the `seamless-pipeline`
    ServiceAccount without its token, never restarted in place, Pod Security `restricted`."""
    pod: Obj = {
        "serviceAccountName": "seamless-pipeline",
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "securityContext": POD_SECURITY,
        "containers": containers,
        "volumes": volumes,
    }
    if init_containers:
        pod["initContainers"] = init_containers
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
