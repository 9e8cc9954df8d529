#!/usr/bin/env python3
"""Give Kubeflow Pipelines' step namespace what the compiled pipeline reads by name.

    kubectl kustomize manifests/overlays/kind > /tmp/kind.yaml
    python manifests/kfp/step_wiring.py < /tmp/kind.yaml | kubectl apply -f -
    (make kfp-steps; KFP_NAMESPACE=other for another step namespace)

A standalone KFP runs every step as a pod in its own namespace (`kubeflow`), while the
compiled pipeline reads its ConfigMaps, Secrets and ServiceAccount by name from the
step's namespace, and the Seamless namespace admits pipeline steps of its own namespace
only. From the rendered overlay (stdin) this writes (stdout):

- into the step namespace: copies of the step ConfigMaps and Secrets, with the services'
  short names (`postgres:5432`) made cluster-wide (`postgres.seamless.svc.cluster.local:5432`);
  the ServiceAccount `seamless-pipeline`, bound to KFP's `pipeline-runner` Role (Argo's
  executor reports step results through it); KFP's launcher config (`kfp-launcher`) with
  the Seamless object store as the default pipeline root (`s3://seamless-pipelines/kfp`,
  or `KFP_PIPELINE_ROOT`) and as the `s3` provider, keys from the `seamless-s3` copy, so
  every run's artifacts are objects beside the data, whichever node runs the step;
- into the step namespace too, for the training-spark pipeline: the Spark drivers' Role
  (`seamless-spark-driver`: executor pods, their ConfigMaps, services, claims) bound to
  its account, and a claim like `seamless-spark-scratch` (the drivers and their executors
  share it there);
- into the Seamless namespace: for each NetworkPolicy rule that admits pipeline steps (or
  object-store clients: the `seamless.dev/s3-client` label every step carries, or Spark
  executors), the same rule for those pods of the step namespace; for each RoleBinding of
  `seamless-pipeline` but the Spark one, the same binding for the step namespace's account.

Everything written carries the label `seamless.dev/kfp-steps=<step namespace>`
(`make kfp-down` deletes it by that label).
"""

from __future__ import annotations

import base64
import copy
import os
import re
import sys
from typing import Any
from urllib.parse import urlsplit

import yaml

Obj = dict[str, Any]
STEP_CONFIGMAPS = (
    "seamless-endpoints",
    "seamless-telemetry-off",
    "feast-repo",
    "seamless-s3-endpoint",
    # The CA bundle the steps verify PostgreSQL's certificate with (its names include the
    # cluster-wide one the copies use).
    "seamless-ca",
)
STEP_SECRETS = (
    "mlflow-client",
    "app-databases",
    "postgres-credentials",
    "redis-credentials",
    "seamless-s3",
    "seamless-notifications",
    "seamless-pii",
    # Spark's authentication secret: training-spark's drivers and their executor pods mount it.
    "seamless-spark-auth",
)
STEP_ACCOUNT = "seamless-pipeline"
STEP_LABEL = {"seamless.dev/pipeline-step": "true"}
S3_CLIENT_LABEL = {"seamless.dev/s3-client": "true"}
SPARK_EXECUTOR_LABEL = {"seamless.dev/spark-executor": "true"}
# Pod labels of rules mirrored for the step namespace: pipeline steps carry the first two,
# and the Spark executors that training-spark's data steps start there the last two.
MIRRORED_LABELS = (STEP_LABEL, S3_CLIENT_LABEL, SPARK_EXECUTOR_LABEL)
SPARK_ROLE = "seamless-spark-driver"
"""Spark drivers start executors in their own namespace: this Role and its binding, and
the shared scratch claim, are copied into the step namespace (not bound across)."""
SPARK_SCRATCH_CLAIM = "seamless-spark-scratch"
MARK = "seamless.dev/kfp-steps"
LAUNCHER_CONFIG = "kfp-launcher"
DEFAULT_PIPELINE_ROOT = "s3://seamless-pipelines/kfp"
KFP_RUNNER_ROLE = "pipeline-runner"


def _find(objects: list[Obj], kind: str, name: str) -> Obj:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise SystemExit(f"step_wiring: {kind}/{name} is not in the rendered overlay on stdin.")


def _meta(name: str, namespace: str, steps_ns: str, source: Obj | None = None) -> Obj:
    labels = dict((source or {}).get("metadata", {}).get("labels") or {})
    return {"name": name, "namespace": namespace, "labels": {**labels, MARK: steps_ns}}


def _qualify(text: str, services: list[str], namespace: str) -> str:
    """`host:port` of a Seamless service -> its cluster-wide name (other text unchanged).
    A port is digits not followed by a word character or `@`: a URL's `user:password@`
    whose user is also a Service name (`serving`, `dashboard`) and whose password starts
    with a digit is not a host."""
    names = "|".join(re.escape(s) for s in services)
    return re.sub(
        rf"(?<![\w.-])({names})(?=:\d+(?![\w@]))", rf"\g<1>.{namespace}.svc.cluster.local", text
    )


def _copy(obj: Obj, steps_ns: str, services: list[str], app_ns: str) -> Obj:
    out: Obj = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": _meta(obj["metadata"]["name"], steps_ns, steps_ns, obj),
    }
    if "type" in obj:
        out["type"] = obj["type"]
    if obj.get("data"):
        data = {}
        for key, value in obj["data"].items():
            if obj["kind"] == "Secret":
                text = _qualify(base64.b64decode(value).decode(), services, app_ns)
                data[key] = base64.b64encode(text.encode()).decode()
            else:
                data[key] = _qualify(value, services, app_ns)
        out["data"] = data
    return out


def launcher_config(objects: list[Obj], steps_ns: str, pipeline_root: str) -> Obj:
    """KFP's per-namespace launcher config: where runs keep their artifacts by default, and
    how its launcher (Go CDK, in each step pod) opens `s3://` roots: the endpoint and region
    of the `seamless-s3-endpoint` ConfigMap, keys from the `seamless-s3` Secret there."""
    if not pipeline_root.startswith("s3://") or len(pipeline_root) <= len("s3://"):
        raise SystemExit(f"step_wiring: KFP_PIPELINE_ROOT={pipeline_root!r} is not an s3:// URI.")
    endpoint = _find(objects, "ConfigMap", "seamless-s3-endpoint")["data"]
    url = urlsplit(endpoint["AWS_ENDPOINT_URL"])
    if url.scheme not in ("http", "https") or not url.netloc:
        raise SystemExit(
            "step_wiring: ConfigMap seamless-s3-endpoint: AWS_ENDPOINT_URL "
            f"{endpoint['AWS_ENDPOINT_URL']!r} is not an http(s) URL."
        )
    s3 = {
        "default": {
            # host[:port]: the launcher adds the scheme from disableSSL.
            "endpoint": url.netloc,
            "region": endpoint.get("AWS_DEFAULT_REGION") or "us-east-1",
            "disableSSL": url.scheme == "http",
            "forcePathStyle": True,
            "credentials": {
                "fromEnv": False,
                "secretRef": {
                    "secretName": "seamless-s3",
                    "accessKeyKey": "AWS_ACCESS_KEY_ID",
                    "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
                },
            },
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(LAUNCHER_CONFIG, steps_ns, steps_ns),
        "data": {
            "defaultPipelineRoot": pipeline_root,
            "providers": yaml.safe_dump({"s3": s3}, sort_keys=False),
        },
    }


def _spark_in_step_namespace(objects: list[Obj], steps_ns: str, subject: Obj) -> list[Obj]:
    """The Spark drivers' Role, bound to the step account, and the scratch claim (its spec,
    not its data), all in the step namespace, where the executors run."""
    role = _find(objects, "Role", SPARK_ROLE)
    claim = _find(objects, "PersistentVolumeClaim", SPARK_SCRATCH_CLAIM)
    return [
        {
            "apiVersion": role["apiVersion"],
            "kind": "Role",
            "metadata": _meta(SPARK_ROLE, steps_ns, steps_ns, role),
            "rules": copy.deepcopy(role["rules"]),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(SPARK_ROLE, steps_ns, steps_ns),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": SPARK_ROLE,
            },
            "subjects": [subject],
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(SPARK_SCRATCH_CLAIM, steps_ns, steps_ns, claim),
            "spec": copy.deepcopy(claim["spec"]),
        },
    ]


def step_wiring(
    objects: list[Obj], steps_ns: str = "kubeflow", pipeline_root: str = DEFAULT_PIPELINE_ROOT
) -> list[Obj]:
    """The objects (both namespaces) that let KFP steps in `steps_ns` run the pipeline."""
    account = _find(objects, "ServiceAccount", STEP_ACCOUNT)
    app_ns = account["metadata"]["namespace"]
    if steps_ns == app_ns:
        raise SystemExit(f"step_wiring: the step namespace is {app_ns} itself: nothing to wire.")
    services = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Service")
    out = [
        _copy(_find(objects, "ConfigMap", n), steps_ns, services, app_ns) for n in STEP_CONFIGMAPS
    ]
    out += [_copy(_find(objects, "Secret", n), steps_ns, services, app_ns) for n in STEP_SECRETS]
    out.append(launcher_config(objects, steps_ns, pipeline_root))
    out.append(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(STEP_ACCOUNT, steps_ns, steps_ns, account),
            "automountServiceAccountToken": True,
        }
    )
    subject = {"kind": "ServiceAccount", "name": STEP_ACCOUNT, "namespace": steps_ns}
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(f"{STEP_ACCOUNT}-{KFP_RUNNER_ROLE}", steps_ns, steps_ns),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": KFP_RUNNER_ROLE,
            },
            "subjects": [subject],
        }
    )
    out += _spark_in_step_namespace(objects, steps_ns, subject)
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        if binding["roleRef"]["name"] == SPARK_ROLE:
            continue  # copied into the step namespace above
        if any(s.get("name") == STEP_ACCOUNT for s in binding.get("subjects") or []):
            name = f"{binding['metadata']['name']}-{steps_ns}"
            out.append(
                {
                    "apiVersion": binding["apiVersion"],
                    "kind": "RoleBinding",
                    "metadata": _meta(name, app_ns, steps_ns, binding),
                    "roleRef": copy.deepcopy(binding["roleRef"]),
                    "subjects": [subject],
                }
            )
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        rules = []
        for r in policy["spec"].get("ingress") or []:
            # Same-namespace peers (no namespaceSelector) selected by a mirrored label.
            peers = [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": steps_ns}},
                    "podSelector": {"matchLabels": dict(p["podSelector"]["matchLabels"])},
                }
                for p in r.get("from") or []
                if set(p) == {"podSelector"}
                and p["podSelector"].get("matchLabels") in MIRRORED_LABELS
            ]
            if peers:
                rules.append({"from": peers, **({"ports": r["ports"]} if r.get("ports") else {})})
        if rules:
            out.append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": _meta(
                        f"{policy['metadata']['name']}-from-{steps_ns}", app_ns, steps_ns, policy
                    ),
                    "spec": {
                        "podSelector": copy.deepcopy(policy["spec"]["podSelector"]),
                        "policyTypes": ["Ingress"],
                        "ingress": rules,
                    },
                }
            )
    return out


def main() -> None:
    objects = [o for o in yaml.safe_load_all(sys.stdin) if o]
    if not objects:
        raise SystemExit("step_wiring: no objects on stdin; pipe `kubectl kustomize <overlay>` in.")
    wiring = step_wiring(
        objects,
        os.environ.get("KFP_NAMESPACE") or "kubeflow",
        os.environ.get("KFP_PIPELINE_ROOT") or DEFAULT_PIPELINE_ROOT,
    )
    yaml.safe_dump_all(wiring, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
