"""Policy over the rendered overlays: Pod Security Standard `restricted`, probes, resources,
image tags, RBAC, NetworkPolicies and secrets. Every failure names kind/name and the rule."""

from __future__ import annotations

import copy
import importlib.util
import ipaddress
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_objects import (
    LONG_RUNNING_KINDS,
    MANIFESTS,
    ROOT,
    Rendering,
    containers,
    ident,
    image_parts,
    restricted_problems,
    selector_matches,
    workloads,
)
from policy_flows import (
    FEATURE_CLIENT,
    PIPELINE_STEP,
    S3_CLIENT,
    SERVING_CLIENT,
    Endpoint,
    FlowModel,
    allows,
    flows,
    pods,
    port_allowed,
    port_name,
    speaks_tls,
)

from components.common.config import SparkConfig
from components.common.spark_kubernetes import (
    AUTH_FILE_ENV,
    AUTH_SECRET,
    AUTH_SECRET_KEY,
    BLOCK_MANAGER_PORT,
    DRIVER_PORT,
    RPC_PROTECTION,
    executor_pod_template,
    kubernetes_conf,
)
from components.common.spark_kubernetes import IMAGE_ENV as SPARK_IMAGE_ENV

pytestmark = pytest.mark.manifests

# Only this account talks to the Kubernetes API (the deploy step; Prometheus uses DNS).
API_CLIENT_ACCOUNTS = {"seamless-pipeline"}
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
NOT_A_SECRET_VALUE = re.compile(r"(_FILE|_PATH|_DIR|_URL|_URI|_USERNAME|_USER)$", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:(?!\$\{)[^/\s@]+@")
LITERAL_PASSWORD_OPTION = re.compile(
    r"(password|passwd|secret|token)\s*[=:]\s*(?!\$)[^\s,]{4,}", re.I
)


def _fail(rendering: Rendering, problems: list[str], rule: str) -> None:
    assert not problems, f"[{rendering.name}] {rule}:\n  " + "\n  ".join(problems)


# ---- Pod Security Standard "restricted" ------------------------------------------------


def test_namespace_enforces_restricted(rendering: Rendering) -> None:
    ns = rendering.get("Namespace", "seamless")
    assert ns is not None, f"[{rendering.name}] Namespace/seamless is not rendered"
    labels = ns["metadata"].get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", (
        f"[{rendering.name}] Namespace/seamless: label pod-security.kubernetes.io/enforce "
        "must be `restricted`"
    )


def test_pod_security_restricted(rendering: Rendering) -> None:
    problems = []
    for obj, template in workloads(rendering.objects):
        problems += restricted_problems(ident(obj), template)
    _fail(rendering, problems, "Pod Security Standard restricted")


def test_service_accounts_and_token_mounts(rendering: Rendering) -> None:
    problems = []
    for obj, template in workloads(rendering.objects):
        spec = template["spec"]
        sa = spec.get("serviceAccountName")
        if not sa or sa == "default":
            problems.append(f"{ident(obj)}: needs its own serviceAccountName (not default)")
            continue
        token = spec.get("automountServiceAccountToken")
        if sa in API_CLIENT_ACCOUNTS:
            continue
        if token is not False:
            problems.append(
                f"{ident(obj)}: automountServiceAccountToken must be false (no API access)"
            )
    for sa in rendering.of_kind("ServiceAccount"):
        name = sa["metadata"]["name"]
        if name not in API_CLIENT_ACCOUNTS and sa.get("automountServiceAccountToken") is not False:
            problems.append(f"{ident(sa)}: automountServiceAccountToken must be false")
    pod_accounts = [t["spec"].get("serviceAccountName") for _, t in workloads(rendering.objects)]
    shared = sorted({a for a in pod_accounts if pod_accounts.count(a) > 1})
    if shared:
        problems.append(f"ServiceAccounts shared by several workloads: {shared}")
    _fail(rendering, problems, "one ServiceAccount per workload, tokens only where needed")


# ---- probes and resources ----------------------------------------------------------------


def test_long_running_containers_have_probes(rendering: Rendering) -> None:
    problems = []
    for obj, template in workloads(rendering.objects):
        if obj["kind"] not in LONG_RUNNING_KINDS:
            continue
        for c in containers(template, init=False):
            for probe in ("readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    problems.append(f"{ident(obj)} container {c['name']}: no {probe}")
    _fail(rendering, problems, "readiness and liveness probes on long-running containers")


def test_serving_probe_paths(rendering: Rendering) -> None:
    dep = rendering.get("Deployment", "serving")
    assert dep is not None
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", (
        "Deployment/serving: readiness on /readyz"
    )
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", (
        "Deployment/serving: liveness on /healthz"
    )


def test_every_container_has_requests_and_limits(rendering: Rendering) -> None:
    problems = []
    for obj, template in workloads(rendering.objects):
        for c in containers(template):
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (res.get(kind) or {}):
                        problems.append(f"{ident(obj)} container {c['name']}: no {kind}.{resource}")
    _fail(
        rendering, problems, "requests and limits (cpu, memory) on every container, init included"
    )


# ---- images ---------------------------------------------------------------------------


def test_images_are_pinned(rendering: Rendering) -> None:
    problems = []
    for obj, template in workloads(rendering.objects):
        for c in containers(template):
            _, tag, digest = image_parts(c["image"])
            if tag is None and digest is None:
                problems.append(
                    f"{ident(obj)} container {c['name']}: image {c['image']} has no tag"
                )
            elif tag == "latest":
                problems.append(
                    f"{ident(obj)} container {c['name']}: image {c['image']} uses `latest`"
                )
            if c.get("imagePullPolicy") == "Always":
                problems.append(f"{ident(obj)} container {c['name']}: imagePullPolicy Always")
    _fail(rendering, problems, "image tags pinned (no `latest`, no missing tag)")


def test_project_images_share_one_tag(rendering: Rendering) -> None:
    tags = {}
    for obj, template in workloads(rendering.objects):
        for c in containers(template):
            repo, tag, _ = image_parts(c["image"])
            if repo.rsplit("/", 1)[-1] in ("runtime", "serving", "mlflow", "feast"):
                tags[f"{ident(obj)}:{c['name']}"] = tag
    assert len(set(tags.values())) == 1, (
        f"[{rendering.name}] project images disagree on the tag: {tags}"
    )


def test_kind_overlay_tag_equals_runtime_image_json(renderings: dict[str, Rendering]) -> None:
    """`make compile` writes runtime_image.json; the kind overlay must deploy that build."""
    settings = json.loads((ROOT / "components" / "common" / "runtime_image.json").read_text())
    wrong = []
    for obj, template in workloads(renderings["kind"].objects):
        for c in containers(template):
            repo, tag, _ = image_parts(c["image"])
            if repo.startswith(settings["registry"] + "/") and tag != settings["tag"]:
                wrong.append(f"{ident(obj)} container {c['name']}: {c['image']}")
    assert not wrong, (
        f"kind overlay image tag differs from components/common/runtime_image.json "
        f"({settings['tag']}); update manifests/overlays/kind/kustomization.yaml:\n  "
        + "\n  ".join(wrong)
    )
    used = {
        image_parts(c["image"])[0]
        for _, t in workloads(renderings["kind"].objects)
        for c in containers(t)
    }
    assert f"{settings['registry']}/runtime" in used, "kind overlay does not use the runtime image"


# ---- RBAC -------------------------------------------------------------------------------


def test_rbac_has_no_wildcards_or_cluster_power(rendering: Rendering) -> None:
    problems = []
    for obj in rendering.of_kind("ClusterRole", "ClusterRoleBinding"):
        problems.append(f"{ident(obj)}: cluster-scoped RBAC is not allowed (namespaced Roles only)")
    for role in rendering.of_kind("Role", "ClusterRole"):
        for n, rule in enumerate(role.get("rules", [])):
            for attr in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
                if any("*" in v for v in rule.get(attr) or []):
                    problems.append(f"{ident(role)} rule {n}: wildcard in {attr}")
            if "secrets" in (rule.get("resources") or []):
                problems.append(f"{ident(role)} rule {n}: no workload may read Secrets via the API")
            for verb in ("escalate", "bind", "impersonate"):
                if verb in (rule.get("verbs") or []):
                    problems.append(f"{ident(role)} rule {n}: verb {verb} is not allowed")
    for binding in rendering.of_kind("RoleBinding", "ClusterRoleBinding"):
        ref = binding["roleRef"]
        if ref["kind"] == "ClusterRole" and ref["name"] in ("cluster-admin", "admin", "edit"):
            problems.append(f"{ident(binding)}: binds ClusterRole {ref['name']}")
        elif ref["kind"] == "Role" and rendering.get("Role", ref["name"]) is None:
            problems.append(f"{ident(binding)}: Role {ref['name']} is not rendered")
        for subject in binding.get("subjects", []):
            if subject["kind"] != "ServiceAccount":
                problems.append(f"{ident(binding)}: subject {subject['kind']} {subject['name']}")
            elif rendering.get("ServiceAccount", subject["name"]) is None:
                problems.append(
                    f"{ident(binding)}: ServiceAccount {subject['name']} is not rendered"
                )
    _fail(rendering, problems, "RBAC: namespaced, explicit, least privilege")


def test_deploy_step_may_only_get_and_patch_serving(rendering: Rendering) -> None:
    role = rendering.get("Role", "seamless-pipeline-deploy")
    assert role is not None
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["serving"],
            "verbs": ["get", "patch"],
        }
    ], (
        f"[{rendering.name}] Role/seamless-pipeline-deploy grants more than "
        "get/patch on Deployment/serving"
    )
    bound = {
        s["name"]
        for b in rendering.of_kind("RoleBinding")
        for s in b.get("subjects", [])
        if b["roleRef"]["name"] == "seamless-pipeline-deploy"
    }
    assert bound == {"seamless-pipeline"}, f"Role/seamless-pipeline-deploy bound to {bound}"


def test_only_the_pipeline_may_use_the_api(rendering: Rendering) -> None:
    """Prometheus discovers targets through DNS, so the pipeline's Roles are the only ones:
    the deploy step's, and the Spark drivers' (executor pods)."""
    roles = sorted(r["metadata"]["name"] for r in rendering.of_kind("Role"))
    expected = ["seamless-pipeline-deploy", "seamless-spark-driver"]
    assert roles == expected, f"[{rendering.name}] unexpected Roles: {roles}"


# ---- audit identity ----------------------------------------------------------------------

# Images that carry the seamless package (serving is built on the runtime image).
SEAMLESS_IMAGES = ("runtime", "serving")
# components/governance/audit.py:current_actor reads these (most pods mount no token).
AUDIT_IDENTITY_ENV = {
    "KUBERNETES_SERVICE_ACCOUNT": "spec.serviceAccountName",
    "POD_NAMESPACE": "metadata.namespace",
}


def _shared_training_job(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The in-cluster training Job (manifests/tools/training_job.py) for these objects."""
    spec = importlib.util.spec_from_file_location(
        "seamless_training_job", MANIFESTS / "tools" / "training_job.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.training_job(objects)


def test_seamless_code_is_audited_as_its_service_account(rendering: Rendering) -> None:
    """Every container running Seamless code (rendered workloads and the shared training
    Job) gets its ServiceAccount and namespace from the downward API, so the audit trail
    names `system:serviceaccount:<namespace>:<account>`, not the image's OS user."""
    problems = []
    objects = [*rendering.objects, _shared_training_job(rendering.objects)]
    checked = 0
    for obj, template in workloads(objects):
        for c in containers(template):
            if image_parts(c["image"])[0].rsplit("/", 1)[-1] not in SEAMLESS_IMAGES:
                continue
            checked += 1
            env = {e["name"]: e for e in c.get("env", [])}
            for name, path in AUDIT_IDENTITY_ENV.items():
                ref = env.get(name, {}).get("valueFrom", {}).get("fieldRef", {})
                if ref.get("fieldPath") != path:
                    problems.append(
                        f"{ident(obj)} container {c['name']}: env {name} must come from "
                        f"the downward API (fieldRef {path})"
                    )
    assert checked >= 3, f"[{rendering.name}] expected serving, the CronJob and the Job"
    _fail(rendering, problems, "Seamless code knows its ServiceAccount (audit actor)")


def test_jobs_retry_a_pod_that_fails_at_start(rendering: Rendering) -> None:
    """Issue #14 A.1: a fresh pod can fail before the node applied its NetworkPolicies;
    every Job (the CronJob's and the shared training Job) retries its pod."""
    objects = [*rendering.objects, _shared_training_job(rendering.objects)]
    problems, checked = [], 0
    for obj in objects:
        if obj["kind"] == "Job":
            spec = obj["spec"]
        elif obj["kind"] == "CronJob":
            spec = obj["spec"]["jobTemplate"]["spec"]
        else:
            continue
        checked += 1
        if int(spec.get("backoffLimit", 6)) < 1:
            problems.append(f"{ident(obj)}: backoffLimit {spec['backoffLimit']} (no retry)")
    assert checked >= 2, f"[{rendering.name}] expected the CronJob and the training Job"
    _fail(rendering, problems, "Jobs retry a pod that fails at start")


# ---- NetworkPolicies --------------------------------------------------------------------
#
# The offline flow model (manifests/tools/policy_flows.py, shared with the docs' flow
# table): a flow is allowed only where the sender's egress AND the receiver's ingress allow
# it; peers match as an enforcing controller matches them (an ipBlock matches pod
# addresses too).

KIND_NODE_IP = "172.18.0.2"
# A pod of another namespace that copies every label the policies select on.
INTRUDER_LABELS = {
    **PIPELINE_STEP,
    **SERVING_CLIENT,
    **FEATURE_CLIENT,
    **S3_CLIENT,
    "seamless.dev/scrape": "true",
}

# Exactly the in-namespace flows Seamless needs: (client, server, port).
EXPECTED_FLOWS = {
    ("mlflow", "postgres", 5432),
    ("feast-server", "postgres", 5432),
    ("feast-server", "redis", 6379),
    ("feast-materialize", "postgres", 5432),
    ("feast-materialize", "redis", 6379),
    ("stream-consumer", "postgres", 5432),
    ("stream-consumer", "redis", 6379),
    ("serving", "mlflow", 5000),
    ("serving", "postgres", 5432),
    ("serving", "redis", 6379),
    ("dashboard", "mlflow", 5000),
    ("dashboard", "postgres", 5432),
    # The Job that sets up the dashboard's READ-only MLflow user.
    ("mlflow-accounts", "mlflow", 5000),
    ("prometheus", "serving", 8080),
    ("prometheus", "alertmanager", 9093),
    ("prometheus", "dashboard", 8765),
    ("prometheus", "stream-consumer", 9464),
    ("pipeline-step", "mlflow", 5000),
    ("pipeline-step", "feast-server", 6566),
    ("pipeline-step", "postgres", 5432),
    ("pipeline-step", "redis", 6379),
    ("serving-client", "serving", 8080),
    ("feature-client", "feast-server", 6566),
    # Spark on Kubernetes: drivers are pipeline steps too; executors call back the
    # driver, serve shuffle blocks, and read SQL sources (JDBC).
    ("spark-driver", "mlflow", 5000),
    ("spark-driver", "feast-server", 6566),
    ("spark-driver", "postgres", 5432),
    ("spark-driver", "redis", 6379),
    ("spark-driver", "spark-executor", 7079),
    ("spark-executor", "spark-driver", 7078),
    ("spark-executor", "spark-driver", 7079),
    ("spark-executor", "postgres", 5432),
    ("spark-executor", "redis", 6379),
}
# The object store in the cluster (kind: manifests/components/minio): MLflow's artifacts,
# the bucket Job and the opt-in S3 clients. Production's S3 is outside the namespace.
EXPECTED_FLOWS_BY_OVERLAY = {
    "kind": EXPECTED_FLOWS
    | {
        ("mlflow", "minio", 9000),
        ("minio-buckets", "minio", 9000),
        # Materialization reads the offline tables from the bucket.
        ("feast-materialize", "minio", 9000),
        # The stream consumer writes the pushed-events log to the bucket.
        ("stream-consumer", "minio", 9000),
        # The dashboard reads snapshots' files and reports.
        ("dashboard", "minio", 9000),
        ("s3-client", "minio", 9000),
        ("spark-driver", "minio", 9000),
        ("spark-executor", "minio", 9000),
    },
    "production": EXPECTED_FLOWS,
}


def _pods(rendering: Rendering) -> dict[str, Endpoint]:
    return pods(rendering.objects)


def _flows(rendering: Rendering, sources: list[Endpoint]) -> FlowModel:
    return flows(rendering.objects, sources)


def _clients(rendering: Rendering, service: str) -> set[str]:
    """The declared workloads the NetworkPolicies let reach `service`."""
    declared = {obj["metadata"]["name"] for obj, _ in workloads(rendering.objects)}
    return {src for src, dst, _ in _flows(rendering, list(_pods(rendering).values())).allowed
            if dst == service and src in declared}  # fmt: skip


def test_default_deny_and_dns(rendering: Rendering) -> None:
    policies = rendering.of_kind("NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, (
        f"[{rendering.name}] no default-deny NetworkPolicy "
        "(podSelector {}, Ingress+Egress, no rules)"
    )
    dns = {"k8s-app": "kube-dns"}
    for name, pod in _pods(rendering).items():
        ok = any(
            selector_matches(p["spec"]["podSelector"], pod.labels)
            and any(
                any(
                    selector_matches(peer.get("podSelector"), dns)
                    and (peer.get("namespaceSelector") or {}).get("matchLabels", {})
                    == {"kubernetes.io/metadata.name": "kube-system"}
                    for peer in rule.get("to", [])
                )
                and port_allowed(rule.get("ports"), 53, None)
                for rule in p["spec"].get("egress") or []
            )
            for p in policies
        )
        assert ok, f"[{rendering.name}] {name}: no egress to kube-dns on port 53"


def test_every_workload_has_its_own_policy(rendering: Rendering) -> None:
    policies = [p for p in rendering.of_kind("NetworkPolicy") if p["spec"]["podSelector"] != {}]
    problems = []
    for obj, template in workloads(rendering.objects):
        labels = template["metadata"].get("labels", {})
        if not any(selector_matches(p["spec"]["podSelector"], labels) for p in policies):
            problems.append(
                f"{ident(obj)}: no NetworkPolicy selects it (besides the namespace-wide ones)"
            )
    pods = _pods(rendering)
    for p in policies:
        if not any(selector_matches(p["spec"]["podSelector"], pod.labels) for pod in pods.values()):
            problems.append(f"{ident(p)}: selects no pod")
    _fail(rendering, problems, "every workload selected by a NetworkPolicy")


def test_network_flows_are_exactly_the_needed_ones(rendering: Rendering) -> None:
    allowed = _flows(rendering, list(_pods(rendering).values())).allowed
    expected = EXPECTED_FLOWS_BY_OVERLAY[rendering.name]
    extra = sorted(allowed - expected)
    missing = sorted(expected - allowed)
    assert not extra and not missing, (
        f"[{rendering.name}] NetworkPolicies: flows allowed but not needed {extra}; "
        f"flows needed but blocked {missing}"
    )


# Servers that still take plaintext from other workloads (issue #17 part 1 is open for
# them). The test below fails on any other plaintext flow and on an entry here that has
# become TLS, so this list only shrinks.
PLAINTEXT_STILL_OPEN: set[tuple[str, int]] = set()

# Spark's driver and block-manager ports speak Spark's RPC, not TLS: they count as
# encrypted only while the conf every driver step starts with enforces Spark's mutual
# authentication and AES-encrypted RPC (spark_kubernetes.RPC_PROTECTION, secret files in
# both pods, the executors' from Secret seamless-spark-auth); otherwise the check below
# reports them as plaintext.
SPARK_RPC_PORTS = {("spark-driver", DRIVER_PORT), ("spark-driver", BLOCK_MANAGER_PORT),
                   ("spark-executor", BLOCK_MANAGER_PORT)}  # fmt: skip


def driver_spark_conf() -> dict[str, str]:
    """The Spark properties a training-spark driver step starts with on the cluster (its
    pod's environment as the compiled pipeline sets it; the secret is a stand-in file)."""
    with tempfile.TemporaryDirectory() as tmp:
        secret = Path(tmp) / AUTH_SECRET_KEY
        secret.write_text("stand-in")
        env = {"POD_NAMESPACE": "seamless", "POD_IP": "10.244.0.9", "POD_NAME": "step",
               SPARK_IMAGE_ENV: "spark:test", AUTH_FILE_ENV: str(secret)}  # fmt: skip
        return kubernetes_conf(SparkConfig(master="k8s://https://kubernetes.default.svc"),
                               Path(tmp), env)  # fmt: skip


def spark_rpc_problems(objects: list[dict[str, Any]], conf: dict[str, str]) -> list[str]:
    """Why Spark's RPC between the driver and executor pods would not be authenticated
    and encrypted with this conf and these objects (empty: it is)."""
    problems = [f"{key} is {conf.get(key)!r}, not {value}"
                for key, value in RPC_PROTECTION.items() if conf.get(key) != value]  # fmt: skip
    if conf.get("spark.authenticate.secret"):
        problems.append("the secret is a plain property (visible in the Spark UI and logs)")
    if not conf.get("spark.authenticate.secret.driver.file"):
        problems.append("no spark.authenticate.secret.driver.file")
    executor_file = conf.get("spark.authenticate.secret.executor.file") or ""
    template = executor_pod_template(None)
    volumes = {v["name"]: (v.get("secret") or {}).get("secretName")
               for v in template["spec"]["volumes"]}  # fmt: skip
    mounts = [m for c in template["spec"]["containers"] for m in c.get("volumeMounts", [])]
    if not any(executor_file.startswith(m["mountPath"].rstrip("/") + "/")
               and volumes.get(m["name"]) == AUTH_SECRET for m in mounts):  # fmt: skip
        problems.append(f"executor secret file {executor_file!r} is not on Secret {AUTH_SECRET}")
    secret = next((o for o in objects if o["kind"] == "Secret"
                   and o["metadata"]["name"] == AUTH_SECRET), None)  # fmt: skip
    if secret is None or AUTH_SECRET_KEY not in (secret.get("data") or {}):
        problems.append(f"Secret {AUTH_SECRET} with key {AUTH_SECRET_KEY} is not rendered")
    return problems


def plaintext_problems(
    objects: list[dict[str, Any]], spark_conf: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """(plaintext flows not listed as still open, listed servers that are TLS now)."""
    pods_ = pods(objects)
    conf = driver_spark_conf() if spark_conf is None else spark_conf
    spark_encrypted = SPARK_RPC_PORTS if not spark_rpc_problems(objects, conf) else set()
    plaintext = {
        (src, dst, port)
        for src, dst, port in flows(objects, list(pods_.values())).allowed
        if not speaks_tls(port_name(pods_[dst], port)) and (dst, port) not in spark_encrypted
    }
    unlisted = sorted(
        f"{src} -> {dst}:{port}"
        for src, dst, port in plaintext
        if (dst, port) not in PLAINTEXT_STILL_OPEN
    )
    tls_now = sorted(
        f"{dst}:{port}"
        for dst, port in PLAINTEXT_STILL_OPEN
        if dst in pods_ and speaks_tls(port_name(pods_[dst], port))
    )
    return unlisted, tls_now


def test_flows_between_workloads_are_tls(rendering: Rendering) -> None:
    """Every port another workload may reach is a TLS port (named `https`, `grpcs` or
    `tls-*`), except the servers listed as still open."""
    unlisted, tls_now = plaintext_problems(rendering.objects)
    assert not unlisted, (
        f"[{rendering.name}] plaintext between workloads: {unlisted}; serve TLS on the port "
        "and name it https, grpcs or tls-*"
    )
    assert not tls_now, f"[{rendering.name}] now TLS, drop from PLAINTEXT_STILL_OPEN: {tls_now}"


def test_postgres_clients_verify_its_certificate(rendering: Rendering) -> None:
    """Every workload the policies let reach PostgreSQL makes libpq verify the server:
    PGSSLMODE=verify-full, PGSSLROOTCERT a file of the mounted `seamless-ca` ConfigMap.
    (Pipeline steps: tests/compile; Spark executors' JDBC: docs/kubernetes.md, TLS.)"""
    pods_ = _pods(rendering)
    clients = _clients(rendering, "postgres")
    problems = []
    for name in sorted(clients):
        template = pods_[name].template
        assert template is not None
        ca_volumes = {
            v["name"]
            for v in template["spec"].get("volumes", [])
            if (v.get("configMap") or {}).get("name") == "seamless-ca"
        }
        for c in containers(template, init=False):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            mounts = {m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in ca_volumes}
            root = env.get("PGSSLROOTCERT") or ""
            if env.get("PGSSLMODE") != "verify-full":
                problems.append(f"{name}/{c['name']}: PGSSLMODE is {env.get('PGSSLMODE')!r}")
            if not any(root.startswith(m.rstrip("/") + "/") for m in mounts):
                problems.append(f"{name}/{c['name']}: PGSSLROOTCERT {root!r} not on seamless-ca")
    assert {"mlflow", "feast-server", "serving"} <= clients, clients
    _fail(rendering, problems, "PostgreSQL clients verify-full against seamless-ca")


def _feast_repo_options(rendering: Rendering) -> dict[str, Any]:
    """The options of the online store's connection string in ConfigMap `feast-repo`."""
    maps = [o for o in rendering.objects if o["kind"] == "ConfigMap"
            and o["metadata"]["name"].startswith("feast-repo")]  # fmt: skip
    assert len(maps) == 1, [m["metadata"]["name"] for m in maps]
    online = yaml.safe_load(maps[0]["data"]["feature_store.yaml"])["online_store"]
    assert online["type"] == "redis", online
    parts = str(online["connection_string"]).split(",")
    return dict(p.split("=", 1) for p in parts if "=" in p)


def test_redis_clients_verify_its_certificate(rendering: Rendering) -> None:
    """Redis takes TLS only, and every workload the policies let reach it reads the one
    connection string of ConfigMap `feast-repo`, which turns TLS on and verifies the
    server against a file of the `seamless-ca` ConfigMap each of them mounts (name
    checking stays on: redis-py's default). (Pipeline steps: tests/compile.)"""
    options = _feast_repo_options(rendering)
    problems = []
    if options.get("ssl") != "true":
        problems.append(f"feast-repo: ssl is {options.get('ssl')!r}, not true")
    for key, weakened in (("ssl_cert_reqs", "required"), ("ssl_check_hostname", "true")):
        if options.get(key, weakened) != weakened:
            problems.append(f"feast-repo: {key}={options[key]} weakens the check")
    ca = options.get("ssl_ca_certs") or ""
    pods_ = _pods(rendering)
    clients = _clients(rendering, "redis")
    for name in sorted(clients):
        template = pods_[name].template
        assert template is not None
        volumes = {v["name"]: (v.get("configMap") or {}).get("name", "")
                   for v in template["spec"].get("volumes", [])}  # fmt: skip
        for c in containers(template, init=False):
            mounts = c.get("volumeMounts", [])
            if not any(volumes.get(m["name"], "").startswith("feast-repo") for m in mounts):
                problems.append(f"{name}/{c['name']}: does not read ConfigMap feast-repo")
            ca_mounts = [m["mountPath"] for m in mounts if volumes.get(m["name"]) == "seamless-ca"]
            if not any(ca.startswith(m.rstrip("/") + "/") for m in ca_mounts):
                problems.append(f"{name}/{c['name']}: ssl_ca_certs {ca!r} not on seamless-ca")
    assert {"feast-server", "feast-materialize", "serving"} <= clients, clients
    _fail(rendering, problems, "Redis clients verify its certificate against seamless-ca")


def test_feature_server_serves_https_that_clients_can_verify(rendering: Rendering) -> None:
    """The Feast server gets its certificate and key from the Secret `feast-server-tls`
    (both arguments: `feast serve` falls back to plain HTTP without one), probes speak
    HTTPS, and the URL handed to clients (ConfigMap seamless-endpoints) is https."""
    dep = rendering.get("Deployment", "feast-server")
    assert dep is not None
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = dict(a.split("=", 1) for a in container["args"] if "=" in a)
    secrets_ = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: secrets_.get(m["name"], "") for m in container["volumeMounts"]}
    for flag in ("--cert", "--key"):
        folder = args.get(flag, "").rsplit("/", 1)[0]
        assert mounts.get(folder, "").startswith("feast-server-tls"), (flag, args, mounts)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
    endpoints = rendering.get("ConfigMap", "seamless-endpoints")
    assert endpoints is not None
    url = endpoints["data"]["SEAMLESS_FEATURE_SERVER_URL"]
    assert url == "https://feast-server.seamless.svc.cluster.local:6566", url


def test_mlflow_serves_https_that_its_clients_verify(rendering: Rendering) -> None:
    """MLflow's server (uvicorn) takes its certificate and key from the Secret `mlflow-tls`,
    probes speak HTTPS, and every workload the policies let reach it gets an https
    MLFLOW_TRACKING_URI and MLFLOW_TRACKING_SERVER_CERT_PATH on a file of the `seamless-ca`
    ConfigMap it mounts (env or envFrom), as does the shared training Job. (Pipeline
    steps: tests/compile.)"""
    dep = rendering.get("Deployment", "mlflow")
    assert dep is not None
    pod = dep["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    opts = next(a.split("=", 1)[1] for a in server["args"] if a.startswith("--uvicorn-opts="))
    flags = dict(zip(opts.split()[::2], opts.split()[1::2], strict=True))
    secrets_ = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: secrets_.get(m["name"], "") for m in server["volumeMounts"]}
    for flag in ("--ssl-certfile", "--ssl-keyfile"):
        folder = flags.get(flag, "").rsplit("/", 1)[0]
        assert mounts.get(folder, "").startswith("mlflow-tls"), (flag, flags, mounts)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["scheme"] == "HTTPS", probe

    clients = _clients(rendering, "mlflow")
    problems = []
    for name, template in _with_training_job(rendering, clients).items():
        for c, env, ca_mounts in _env_and_ca_mounts(template, rendering):
            uri = str(env.get("MLFLOW_TRACKING_URI") or "")
            cert = str(env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or "")
            if not uri.startswith("https://mlflow."):
                problems.append(f"{name}/{c['name']}: MLFLOW_TRACKING_URI is {uri!r}")
            if not any(cert.startswith(m.rstrip("/") + "/") for m in ca_mounts):
                problems.append(
                    f"{name}/{c['name']}: MLFLOW_TRACKING_SERVER_CERT_PATH {cert!r} "
                    "not on seamless-ca"
                )
    assert {"serving", "dashboard"} <= clients, clients
    _fail(rendering, problems, "MLflow clients verify its certificate against seamless-ca")


def _with_training_job(rendering: Rendering, names: set[str]) -> dict[str, Any]:
    """The pod templates of the workloads `names`, then the shared training Job's."""
    pods_ = _pods(rendering)
    templates = {name: pods_[name].template for name in sorted(names)}
    templates["training Job"] = _shared_training_job(rendering.objects)["spec"]["template"]
    return templates


def _env_and_ca_mounts(
    template: dict[str, Any] | None, rendering: Rendering
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    """Each container of a pod template with its environment (ConfigMaps of `rendering`
    it takes with envFrom, then its own env) and where it mounts the `seamless-ca`
    ConfigMap."""
    assert template is not None
    maps = {o["metadata"]["name"]: o.get("data") or {} for o in rendering.of_kind("ConfigMap")}
    ca_volumes = {v["name"] for v in template["spec"].get("volumes", [])
                  if (v.get("configMap") or {}).get("name") == "seamless-ca"}  # fmt: skip
    for c in containers(template, init=False):
        env: dict[str, Any] = {}
        for ref in c.get("envFrom", []):
            env.update(maps.get((ref.get("configMapRef") or {}).get("name", ""), {}))
        env.update({e["name"]: e.get("value") for e in c.get("env", [])})
        ca_mounts = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in ca_volumes]
        yield c, env, ca_mounts


def test_minio_serves_https_that_its_clients_verify(rendering: Rendering) -> None:
    """MinIO (kind's object store) reads its pair from the Secret `minio-tls` in its
    --certs-dir (public.crt, private.key, CAs/), probes speak HTTPS, and every workload the
    policies let reach it, plus the shared training Job, gets an https AWS_ENDPOINT_URL and
    MLFLOW_S3_ENDPOINT_URL and an AWS_CA_BUNDLE on a file of the `seamless-ca` ConfigMap it
    mounts (env or envFrom); the bucket Job's mc gets the CA in its config dir's certs/CAs.
    (Pipeline steps: tests/compile.)"""
    sts = rendering.get("StatefulSet", "minio")
    if sts is None:
        assert rendering.name == "production", "kind deploys MinIO"
        return
    pod = sts["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    args = server["args"]
    certs_dir = args[args.index("--certs-dir") + 1]
    (mount,) = [m for m in server["volumeMounts"] if m["mountPath"] == certs_dir]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    laid_out = {}
    for source in volume["projected"]["sources"]:
        ref = source.get("secret") or source.get("configMap")
        for item in ref.get("items", []):
            laid_out[item["path"]] = (ref["name"].rsplit("-", 1)[0] if "secret" in source
                                      else ref["name"], item["key"])  # fmt: skip
    assert laid_out == {
        "public.crt": ("minio-tls", "tls.crt"),
        "private.key": ("minio-tls", "tls.key"),
        "CAs/ca.crt": ("seamless-ca", "ca.crt"),
    }, laid_out
    for probe in ("readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["scheme"] == "HTTPS", probe

    pods_ = _pods(rendering)
    clients = _clients(rendering, "minio")
    problems = []
    for name, template in _with_training_job(rendering, clients - {"minio-buckets"}).items():
        for c, env, ca_mounts in _env_and_ca_mounts(template, rendering):
            if "AWS_ENDPOINT_URL" not in env and name == "training Job":
                continue  # it reaches the store through MLflow's server only
            for key in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
                if not str(env.get(key) or "").startswith("https://minio."):
                    problems.append(f"{name}/{c['name']}: {key} is {env.get(key)!r}")
            bundle = str(env.get("AWS_CA_BUNDLE") or "")
            if not any(bundle.startswith(m.rstrip("/") + "/") for m in ca_mounts):
                problems.append(f"{name}/{c['name']}: AWS_CA_BUNDLE {bundle!r} not on seamless-ca")
    job = pods_["minio-buckets"].template
    assert job is not None
    (mc,) = containers(job, init=False)
    script = "\n".join(mc["args"])
    ca_mounts = [m["mountPath"] for m in mc.get("volumeMounts", []) if m["name"] == "seamless-ca"]
    if 'MC_HOST_s3="https://' not in script:
        problems.append("minio-buckets: MC_HOST_s3 is not https")
    if not ca_mounts or f"cp {ca_mounts[0]}/ca.crt /tmp/mc/certs/CAs/" not in script:
        problems.append("minio-buckets: mc does not get seamless-ca in /tmp/mc/certs/CAs")
    assert {"mlflow", "dashboard", "feast-materialize", "minio-buckets"} <= clients, clients
    _fail(rendering, problems, "MinIO clients verify its certificate against seamless-ca")


def test_spark_rpc_is_authenticated_and_encrypted(rendering: Rendering) -> None:
    """The Spark ports count as encrypted because the driver's conf enforces it."""
    problems = spark_rpc_problems(rendering.objects, driver_spark_conf())
    _fail(rendering, problems, "Spark RPC authenticated and AES-encrypted")


@pytest.mark.parametrize(
    "weakened", [*sorted(RPC_PROTECTION), "spark.authenticate.secret.executor.file"]
)
def test_plaintext_check_catches_spark_rpc_without_its_protection(
    rendering: Rendering, weakened: str
) -> None:
    """The Spark exemption is not vacuous: a driver conf without any one of the settings
    (or with the executors' secret in no file) leaves every Spark flow reported."""
    conf = {k: v for k, v in driver_spark_conf().items() if k != weakened}
    unlisted, _ = plaintext_problems(rendering.objects, conf)
    spark = sorted(f for f in unlisted if ":7078" in f or ":7079" in f)
    assert spark == [
        "spark-driver -> spark-executor:7079",
        "spark-executor -> spark-driver:7078",
        "spark-executor -> spark-driver:7079",
    ], unlisted
    objects = [o for o in rendering.objects if o["metadata"]["name"] != AUTH_SECRET]
    assert f"Secret {AUTH_SECRET} with key {AUTH_SECRET_KEY} is not rendered" in (
        spark_rpc_problems(objects, driver_spark_conf())
    )


def test_plaintext_check_catches_a_plain_http_port(rendering: Rendering) -> None:
    """The check is not vacuous: serving's port renamed to `http` is reported, for both of
    its clients."""
    objects = copy.deepcopy(rendering.objects)
    for obj, template in workloads(objects):
        if obj["metadata"]["name"] == "serving":
            for c in containers(template, init=False):
                for port in c.get("ports", []):
                    port["name"] = "http"
    unlisted, _ = plaintext_problems(objects)
    assert unlisted == ["prometheus -> serving:8080", "serving-client -> serving:8080"]


def test_no_flow_is_allowed_at_one_end_only(rendering: Rendering) -> None:
    """An ingress allow without the sender's egress allow (or the reverse) is dead or wrong:
    either a documented client cannot connect, or a rule opens more than it is meant to."""
    one_sided = _flows(rendering, list(_pods(rendering).values())).one_sided
    problems = [
        f"{src} -> {dst}:{port}: only {end} allows it (the "
        f"{'sender' if end == 'ingress' else 'receiver'}'s policies block it)"
        for src, dst, port, end in sorted(one_sided)
    ]
    _fail(rendering, problems, "flows allowed at both ends or neither")


def test_documented_client_labels_reach_their_targets(rendering: Rendering) -> None:
    allowed = _flows(rendering, list(_pods(rendering).values())).allowed
    flows_ = [("serving-client", "serving", 8080), ("feature-client", "feast-server", 6566)]
    if rendering.name == "kind":
        flows_.append(("s3-client", "minio", 9000))
    for flow in flows_:
        assert flow in allowed, (
            f"[{rendering.name}] a pod labelled {flow[0]} "
            f"(seamless.dev/{flow[0]}=true) cannot reach {flow[1]}:{flow[2]}"
        )


def test_other_namespaces_reach_nothing(rendering: Rendering) -> None:
    """A pod of another namespace (even one copying every label the policies select on)
    reaches no Seamless pod: in particular not MLflow, serving or Prometheus."""
    intruders = [
        Endpoint("pod in namespace elsewhere", "10.244.1.23", "elsewhere", {"app": "x"}),
        Endpoint("look-alike pod in namespace elsewhere", "10.244.1.24", "elsewhere",
                 INTRUDER_LABELS),
    ]  # fmt: skip
    allowed = sorted(_flows(rendering, intruders).allowed)
    assert not allowed, f"[{rendering.name}] reachable from another namespace: {allowed}"


def test_kind_nodeports_open_mlflow_and_serving_to_the_node_only(
    renderings: dict[str, Rendering],
) -> None:
    kind = renderings["kind"]
    node = Endpoint("kind node", KIND_NODE_IP)
    reached = {(dst, port) for _, dst, port in _flows(kind, [node]).allowed}
    assert reached == {("mlflow", 5000), ("serving", 8080)}, (
        f"kind: from the node address {KIND_NODE_IP} (NodePort traffic) reachable: "
        f"{sorted(reached)}; expected MLflow 5000 and serving 8080 only (Prometheus has no "
        "authentication: kubectl port-forward)"
    )
    elsewhere = Endpoint("a host outside the node network", "192.168.1.10")
    assert not _flows(kind, [elsewhere]).allowed, "kind: NodePorts open beyond the node network"


def test_only_api_clients_reach_the_api_server(rendering: Rendering) -> None:
    policy = rendering.get("NetworkPolicy", "allow-apiserver-egress")
    assert policy is not None
    selected = {
        obj["metadata"]["name"]
        for obj, t in workloads(rendering.objects)
        if selector_matches(policy["spec"]["podSelector"], t["metadata"].get("labels", {}))
    }
    # Only the pipeline's deploy step talks to the API server; no declared workload does.
    assert selected == set(), f"[{rendering.name}] API-server egress for {selected}"
    for rule in policy["spec"]["egress"]:
        for peer in rule["to"]:
            assert set(peer) == {"ipBlock"}, f"NetworkPolicy/allow-apiserver-egress: peer {peer}"
            assert peer["ipBlock"]["cidr"] != "0.0.0.0/0", (
                f"[{rendering.name}] NetworkPolicy/allow-apiserver-egress still allows every "
                "address: set the API server's in the overlay's apiserver.yaml"
            )


def _apiserver_addresses(overlay: str) -> list[tuple[str, int]]:
    """(first address, port) of every ipBlock rule in the overlay's apiserver.yaml."""
    patch = yaml.safe_load((MANIFESTS / "overlays" / overlay / "apiserver.yaml").read_text())
    return [
        (str(next(iter(ipaddress.ip_network(peer["ipBlock"]["cidr"])))), port["port"])
        for rule in patch["spec"]["egress"]
        for peer in rule["to"]
        for port in rule["ports"]
    ]


def test_apiserver_address_is_set_in_one_file_per_overlay(rendering: Rendering) -> None:
    """Issue #14 A.6: the overlay's apiserver.yaml is the one place naming the API server;
    the deploy step (a pipeline step with the apiserver-client label) reaches every address
    and port it lists, and a pod without the label reaches none of them."""
    overlay_dir = MANIFESTS / "overlays" / rendering.name
    kustomization = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text())
    patches = [p.get("path") for p in kustomization.get("patches", [])]
    assert "apiserver.yaml" in patches, f"{overlay_dir}/kustomization.yaml: no apiserver.yaml"
    inline = [p for p in kustomization.get("patches", []) if "allow-apiserver-egress" in str(p)]
    assert not inline, f"{overlay_dir}/kustomization.yaml patches the API-server policy inline"
    text = (overlay_dir / "apiserver.yaml").read_text()
    assert "kubectl -n default get endpoints kubernetes" in text, (
        f"{overlay_dir}/apiserver.yaml must say how to find the address"
    )
    policies = rendering.of_kind("NetworkPolicy")
    step = pods(rendering.objects)["pipeline-step"]
    # Spark drivers are pipeline steps that start executor pods through the API.
    clients = ("pipeline-step", "spark-driver")
    others = [p for name, p in pods(rendering.objects).items() if name not in clients]
    for ip, port in _apiserver_addresses(rendering.name):
        server = Endpoint("API server", ip)
        assert allows(policies, "egress", step, server, port, None), (
            f"[{rendering.name}] the deploy step cannot reach the API server at {ip}:{port} "
            "listed in apiserver.yaml"
        )
        reached = [p.name for p in others if allows(policies, "egress", p, server, port, None)]
        assert not reached, f"[{rendering.name}] {reached} reach the API server at {ip}:{port}"


# ---- secrets ----------------------------------------------------------------------------


def test_base_has_no_secret_objects(base_rendering: Rendering) -> None:
    secrets = [ident(o) for o in base_rendering.of_kind("Secret")]
    assert not secrets, (
        f"base renders Secrets {secrets}: credentials belong in overlay secret files"
    )


def test_no_secret_manifest_is_committed() -> None:
    """No YAML under manifests/ declares a Secret or carries stringData/data literals."""
    problems = []
    for path in MANIFESTS.rglob("*.y*ml"):
        if "secrets" in path.relative_to(MANIFESTS).parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                problems.append(f"{path.relative_to(ROOT)}: Secret/{doc['metadata']['name']}")
            if isinstance(doc, dict) and doc.get("kind") == "Kustomization":
                for gen in doc.get("secretGenerator", []):
                    if gen.get("literals"):
                        problems.append(
                            f"{path.relative_to(ROOT)}: secretGenerator {gen['name']} has literals"
                        )
                    for src in gen.get("envs", []) + gen.get("files", []):
                        if not src.split("=")[-1].startswith("secrets/"):
                            problems.append(
                                f"{path.relative_to(ROOT)}: secretGenerator {gen['name']} "
                                f"reads {src} (outside the gitignored secrets/ folder)"
                            )
    assert not problems, "committed secrets:\n  " + "\n  ".join(problems)
    ignore = (MANIFESTS / ".gitignore").read_text().split()
    assert "overlays/*/secrets/" in ignore, "manifests/.gitignore must ignore overlays/*/secrets/"


def test_credentials_only_from_secrets(rendering: Rendering) -> None:
    problems = []
    for obj, template in workloads(rendering.objects):
        for c in containers(template):
            cw = f"{ident(obj)} container {c['name']}"
            for env in c.get("env", []):
                name, value = env["name"], env.get("value")
                if value is None:
                    continue
                if SECRET_NAME.search(name) and not NOT_A_SECRET_VALUE.search(name):
                    problems.append(f"{cw}: env {name} has a literal value (use secretKeyRef)")
                if URL_WITH_PASSWORD.search(value):
                    problems.append(f"{cw}: env {name} holds a URL with a password")
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef")
                cm = rendering.get("ConfigMap", ref["name"]) if ref else None
                for key in (cm or {}).get("data", {}):
                    if SECRET_NAME.search(key) and not NOT_A_SECRET_VALUE.search(key):
                        problems.append(
                            f"{cw}: ConfigMap/{ref['name']} key {key} looks like a secret"
                        )
            for arg in c.get("command", []) + c.get("args", []):
                if URL_WITH_PASSWORD.search(arg) or LITERAL_PASSWORD_OPTION.search(arg):
                    problems.append(f"{cw}: argument {arg[:60]!r} carries a credential")
    for cm in rendering.of_kind("ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            if URL_WITH_PASSWORD.search(text):
                problems.append(f"{ident(cm)} key {key}: URL with a password")
    # The generated (throwaway) values must appear in Secrets only.
    for obj in rendering.objects:
        if obj["kind"] == "Secret":
            continue
        dumped = yaml.safe_dump(obj)
        leaked = [v for v in rendering.secret_values if v in dumped]
        if leaked:
            problems.append(f"{ident(obj)}: contains a secret value")
    _fail(rendering, problems, "credentials only via secretKeyRef / secret volumes")


def test_env_example_lists_every_secret_key(rendering: Rendering) -> None:
    """.env.example (and the overlay's secrets.example) name every key the manifests read
    from a Secret."""
    text = (ROOT / ".env.example").read_text()
    local = MANIFESTS / "overlays" / rendering.name / "secrets.example"
    if local.is_file():
        text += local.read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M))
    used = set()
    for _, template in workloads(rendering.objects):
        for c in containers(template):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    used.add(ref["key"])
    missing = sorted(used - listed)
    assert not missing, f"[{rendering.name}] .env.example lacks the secret keys {missing}"


# Peers outside the namespace that some policy may name, with why.
EXTERNAL_PEERS = {
    "allow-dns-egress": "kube-dns in kube-system",
    "pipeline-steps": "the Kubeflow Pipelines control plane (namespace kubeflow)",
    "allow-apiserver-egress": "the Kubernetes API server (ipBlock)",
    "kind-nodeport-ingress": "NodePort traffic from the kind node (kind only)",
    "ingress-controller": "the ingress controller's namespace (production example)",
    "s3-external": "the S3 service's addresses (production example)",
    "notification-senders": "webhook receivers on public addresses (HTTPS)",
}


def test_rules_name_their_peers(rendering: Rendering) -> None:
    """No rule allows every peer; only the listed policies reach outside the namespace."""
    problems = []
    for p in rendering.of_kind("NetworkPolicy"):
        name = p["metadata"]["name"]
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for n, rule in enumerate(p["spec"].get(direction) or []):
                peers = rule.get(key)
                if not peers:
                    problems.append(f"{ident(p)} {direction}[{n}]: no `{key}` allows every peer")
                    continue
                external = [
                    peer for peer in peers if "ipBlock" in peer or "namespaceSelector" in peer
                ]
                if external and name not in EXTERNAL_PEERS:
                    problems.append(
                        f"{ident(p)} {direction}[{n}]: peers outside the namespace {external}"
                    )
                if "ipBlock" in str(external) and not rule.get("ports"):
                    problems.append(f"{ident(p)} {direction}[{n}]: ipBlock without ports")
    _fail(rendering, problems, "NetworkPolicy rules name their peers")
