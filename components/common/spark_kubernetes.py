"""Spark's own Kubernetes scheduler, driven from a pipeline step (`spark.master: k8s://...`).

The step is the Spark driver in client mode: it asks the API server for executor pods in
its own namespace, running the Spark image (`docker/spark/`, entrypoint `executor`), and
the executors connect back to the step pod's IP on two fixed ports (the NetworkPolicies
in manifests/base/network name them). Executors carry `EXECUTOR_LABEL`, are owned by the
step's pod (deleted with it), mount no API token, and satisfy Pod Security `restricted`
through the pod template written here. Data the executors write or read must be where
every pod sees it: the shared scratch volume (`SCRATCH_ENV`, a PersistentVolumeClaim
mounted at the same path in the step and the executors) or object storage through S3A.

Driver and executors authenticate each other with a shared secret and encrypt their RPC
and block transfers with AES (Spark's `spark.network.crypto`, keys agreed per connection
from that secret), and shuffle and spill files on the executors' disks are encrypted too
(`RPC_PROTECTION`). The secret is a file of the Secret `AUTH_SECRET` in both pods (the
step: `AUTH_FILE_ENV`; the executors: `EXECUTOR_AUTH_FILE` from the pod template), never
an environment variable, which anyone allowed to read pods could see.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.common.config import SparkConfig
from components.common.errors import SeamlessError

DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
EXECUTOR_LABEL = "seamless.dev/spark-executor"
DRIVER_LABEL = "seamless.dev/spark-driver"
IMAGE_ENV = "SEAMLESS_SPARK_IMAGE"
"""The executors' image; the compiled Spark pipeline sets it to the step's own image."""
SCRATCH_ENV = "SEAMLESS_SPARK_SCRATCH"
"""Mount path of the shared scratch volume, in the step and in every executor."""
SCRATCH_CLAIM = "seamless-spark-scratch"
"""The PersistentVolumeClaim behind it (manifests/base/spark)."""
EXECUTOR_CONTAINER = "spark-executor"
AUTH_SECRET = "seamless-spark-auth"
"""The Secret holding Spark's shared authentication secret (key `AUTH_SECRET_KEY`)."""
AUTH_SECRET_KEY = "SPARK_AUTHENTICATE_SECRET"
AUTH_DIR = "/etc/seamless/spark-auth"
EXECUTOR_AUTH_FILE = f"{AUTH_DIR}/{AUTH_SECRET_KEY}"
"""Where the executor pod template mounts the secret (the compiled steps mount it there too)."""
AUTH_FILE_ENV = "SEAMLESS_SPARK_AUTH_SECRET_FILE"
"""The driver's copy of the secret: a file path, set by the compiled Spark pipeline."""
RPC_PROTECTION = {
    "spark.authenticate": "true",
    "spark.network.crypto.enabled": "true",
    # No fallback to SASL (DIGEST-MD5) for a peer that does not speak the AES protocol.
    "spark.network.crypto.saslFallback": "false",
    "spark.io.encryption.enabled": "true",
}
"""What makes the driver and executor ports (DRIVER_PORT, BLOCK_MANAGER_PORT) safe to
open between pods: mutual authentication, AES-encrypted RPC and block transfers, encrypted
local shuffle and spill files. A config's `spark.conf` may not weaken them."""
_UID = 10001  # the images' user
_TOKEN_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def is_kubernetes(master: str) -> bool:
    return master.startswith("k8s://")


def _namespace(env: Mapping[str, str]) -> str:
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    if _TOKEN_NAMESPACE.is_file():
        return _TOKEN_NAMESPACE.read_text().strip()
    raise SeamlessError(
        "spark.master is k8s://... but this process is not in a Kubernetes pod (no "
        "POD_NAMESPACE and no service account namespace file); run the step on the cluster "
        "or use spark.master: local[*]."
    )


def _required(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name, "")
    if not value:
        raise SeamlessError(f"spark.master is k8s://... but {name} is not set; {why}.")
    return value


def executor_pod_template(scratch: str | None) -> dict[str, Any]:
    """The executors' pod: Pod Security `restricted`, labelled for the NetworkPolicies,
    no API token, a writable /tmp, and the shared scratch volume when there is one."""
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}]
    if scratch:
        mounts.append({"name": "scratch", "mountPath": scratch})
        volumes.append({"name": "scratch", "persistentVolumeClaim": {"claimName": SCRATCH_CLAIM}})
    # Spark's authentication secret (spark.authenticate.secret.executor.file). Readable by
    # the pod's one user: the container runs the executor alone, as uid 10001 without an
    # fsGroup (which would re-own the shared scratch volume).
    mounts.append({"name": "spark-auth", "mountPath": AUTH_DIR, "readOnly": True})
    volumes.append(
        {
            "name": "spark-auth",
            "secret": {
                "secretName": AUTH_SECRET,
                "items": [{"key": AUTH_SECRET_KEY, "path": AUTH_SECRET_KEY}],
                "defaultMode": 0o444,
            },
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "labels": {
                EXECUTOR_LABEL: "true",
                # Executors read and write the data: object storage admits them as clients.
                "seamless.dev/s3-client": "true",
            }
        },
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": _UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": EXECUTOR_CONTAINER,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }


def auth_secret_file(path: str, fix: str) -> str:
    """`path` when it is a readable file (Spark's shared secret); else one sentence
    ending in `fix`."""
    if not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise SeamlessError(
            f"{AUTH_FILE_ENV}={path} is not a readable file, so Spark's driver and executors "
            f"cannot authenticate each other: {fix}."
        )
    return path


def refuse_weakened(spark: SparkConfig, where: str) -> None:
    """One sentence when the config's `spark.conf` turns any of RPC_PROTECTION off."""
    weakened = sorted(k for k, v in RPC_PROTECTION.items()
                      if str(spark.conf.get(k, v)).strip().lower() != v)  # fmt: skip
    if weakened:
        raise SeamlessError(
            f"spark.conf sets {', '.join(weakened)}, which would leave the RPC between Spark's "
            f"driver and executors unauthenticated or in plaintext {where}; remove them "
            "(docs/spark.md, Security)."
        )


def kubernetes_conf(
    spark: SparkConfig, folder: Path, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Spark properties for executors on Kubernetes, driven from this pod; writes the
    executor pod template into `folder`. Fails in one sentence outside a pod."""
    env = os.environ if env is None else env
    namespace = _namespace(env)
    pod_ip = _required(env, "POD_IP", "the step needs its pod IP (status.podIP) as driver host")
    pod_name = _required(env, "POD_NAME", "the step needs its pod name (metadata.name)")
    image = spark.conf.get("spark.kubernetes.container.image") or _required(
        env, IMAGE_ENV, "name the executors' image (the Spark image) there or in spark.conf"
    )
    secret = _required(
        env, AUTH_FILE_ENV, f"the step needs Spark's authentication secret (Secret {AUTH_SECRET})"
    )
    auth_secret_file(secret, f"mount the Secret {AUTH_SECRET} there, as the compiled "
                     "training-spark pipeline does")  # fmt: skip
    refuse_weakened(spark, "on Kubernetes")
    scratch = scratch_root(env)
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "spark-executor-pod.yaml"
    template.write_text(yaml.safe_dump(executor_pod_template(scratch), sort_keys=False))
    return {
        "spark.submit.deployMode": "client",
        "spark.kubernetes.namespace": namespace,
        "spark.kubernetes.container.image": image,
        "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
        # Executors are owned by the step's pod: they go when it goes, whatever happens.
        "spark.kubernetes.driver.pod.name": pod_name,
        "spark.driver.host": pod_ip,
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.driver.port": str(DRIVER_PORT),
        "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
        "spark.blockManager.port": str(BLOCK_MANAGER_PORT),
        f"spark.kubernetes.executor.label.{EXECUTOR_LABEL}": "true",
        "spark.kubernetes.executor.podTemplateFile": str(template),
        "spark.kubernetes.executor.podTemplateContainerName": EXECUTOR_CONTAINER,
        "spark.executor.instances": str(spark.executors),
        "spark.executor.cores": str(spark.executor_cores),
        "spark.executor.memory": spark.executor_memory,
        "spark.executorEnv.PYSPARK_PYTHON": "/opt/venv/bin/python",
        **RPC_PROTECTION,
        # Files, both: without them Spark on Kubernetes hands executors the secret as an
        # environment variable of their pods.
        "spark.authenticate.secret.driver.file": secret,
        "spark.authenticate.secret.executor.file": EXECUTOR_AUTH_FILE,
    }


def executor_visible(master: str, path: Path, env: Mapping[str, str] | None = None) -> Path:
    """`path` where Spark's executors can read it: itself in local mode; on Kubernetes a
    copy in the shared scratch volume (a step's inputs are files in its own pod)."""
    if not is_kubernetes(master):
        return path
    scratch = scratch_root(env)
    if scratch is None:
        raise SeamlessError(
            f"Spark's executors cannot read {path}, a file in the step's own pod: mount the "
            f"shared scratch volume ({SCRATCH_CLAIM}) and set {SCRATCH_ENV}, as the compiled "
            "training-spark pipeline does."
        )
    root = Path(scratch).resolve()
    if path.resolve().is_relative_to(root):
        return path
    import atexit
    import shutil
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="input-", dir=root)) / path.name
    atexit.register(shutil.rmtree, copy.parent, True)  # the volume outlives the step
    if path.is_dir():
        shutil.copytree(path, copy)
    else:
        shutil.copy2(path, copy)
    return copy


def scratch_root(env: Mapping[str, str] | None = None) -> str | None:
    """Where Spark stages write files the step reads back (None: the system temp dir)."""
    env = os.environ if env is None else env
    return env.get(SCRATCH_ENV) or None


def check_executor_writable(master: str, path: Path, env: Mapping[str, str] | None = None) -> None:
    """Refuse a Spark write to `path` that would land in the executors' own pods."""
    if not is_kubernetes(master):
        return
    root = scratch_root(env)
    if root is None or not path.resolve().is_relative_to(Path(root).resolve()):
        raise SeamlessError(
            f"Spark's executors cannot write {path}, a folder of the step's own pod; on "
            "Kubernetes the Spark engine writes to the shared scratch volume "
            f"({SCRATCH_ENV}) or to object storage through S3A (docs/spark.md)."
        )
