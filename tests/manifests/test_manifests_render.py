"""Every overlay renders with kustomize, matches the Kubernetes API schema, and hangs together
(references resolve, Services select pods, named ports exist)."""

from __future__ import annotations

import configparser
import os
from typing import Any

import pytest
from k8s_objects import (
    KUBERNETES_VERSION,
    MANIFESTS,
    NAMESPACE,
    Rendering,
    containers,
    ident,
    selector_matches,
    workloads,
)

from tests.helpers.require import require_module

pytestmark = pytest.mark.manifests

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


def test_overlay_renders_the_whole_stack(rendering: Rendering) -> None:
    names = {ident(o) for o in rendering.objects}
    expected = {
        "Namespace/seamless",
        "StatefulSet/postgres",
        "Service/postgres",
        "StatefulSet/redis",
        "Service/redis",
        "Deployment/mlflow",
        "Service/mlflow",
        "Deployment/feast-server",
        "Service/feast-server",
        "CronJob/feast-materialize",
        "Deployment/serving",
        "Service/serving",
        "HorizontalPodAutoscaler/serving",
        "PodDisruptionBudget/serving",
        "Deployment/prometheus",
        "Service/prometheus",
        "ServiceAccount/seamless-pipeline",
        "Role/seamless-pipeline-deploy",
        "NetworkPolicy/default-deny-all",
    }
    if rendering.name == "kind":
        expected |= {
            "StatefulSet/minio",
            "Service/minio",
            "Job/minio-buckets",
            "Secret/seamless-s3",
        }
    missing = sorted(expected - names)
    assert not missing, f"overlay {rendering.name} does not render {missing}"


def test_every_object_lives_in_the_namespace(rendering: Rendering) -> None:
    wrong = [
        f"{ident(o)} is in namespace {o['metadata'].get('namespace')!r}"
        for o in rendering.objects
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") != NAMESPACE
    ]
    assert not wrong, f"{rendering.name}: " + "; ".join(wrong)


def test_objects_match_the_kubernetes_openapi_schema(rendering: Rendering) -> None:
    """Strict: unknown fields (typos such as `readinesProbe`) are errors too."""
    kubernetes_validate = require_module(
        "kubernetes_validate", "kubernetes-validate is a dev dependency: run `make venv`"
    )
    errors = []
    for obj in rendering.objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            errors.append(f"{ident(obj)}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{ident(obj)}: no schema in Kubernetes {KUBERNETES_VERSION}: {e}")
    assert not errors, f"{rendering.name} vs Kubernetes {KUBERNETES_VERSION} schema:\n" + "\n".join(
        errors
    )


def _refs(template: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, name, key) of every ConfigMap/Secret/PVC/ServiceAccount a pod needs."""
    spec = template["spec"]
    out: list[tuple[str, str, str | None]] = []
    if spec.get("serviceAccountName"):
        out.append(("ServiceAccount", spec["serviceAccountName"], None))
    for vol in spec.get("volumes", []):
        if "configMap" in vol:
            out.append(("ConfigMap", vol["configMap"]["name"], None))
        if "secret" in vol:
            out.append(("Secret", vol["secret"]["secretName"], None))
        if "persistentVolumeClaim" in vol:
            out.append(("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"], None))
    for c in containers(template):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            if "secretKeyRef" in ref:
                out.append(("Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
            if "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                out.append(("ConfigMap", r["name"], r["key"]))
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                out.append(("ConfigMap", src["configMapRef"]["name"], None))
            if "secretRef" in src:
                out.append(("Secret", src["secretRef"]["name"], None))
        for mount in c.get("volumeMounts", []):
            if mount.get("subPath"):
                vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
                if "configMap" in vol:
                    out.append(("ConfigMap", vol["configMap"]["name"], mount["subPath"]))
    return out


def test_every_reference_resolves(rendering: Rendering) -> None:
    """Secrets, ConfigMaps (and their keys), PVCs and ServiceAccounts the pods name exist."""
    problems = []
    for obj, template in workloads(rendering.objects):
        claim_templates = {
            t["metadata"]["name"] for t in obj.get("spec", {}).get("volumeClaimTemplates", [])
        }
        for kind, name, key in _refs(template):
            target = rendering.get(kind, name)
            if target is None:
                problems.append(f"{ident(obj)} needs {kind}/{name}, which is not rendered")
                continue
            if key is not None and key not in (target.get("data") or {}):
                problems.append(f"{ident(obj)} needs key {key!r} of {kind}/{name}")
        mounts = {m["name"] for c in containers(template) for m in c.get("volumeMounts", [])}
        volumes = {v["name"] for v in template["spec"].get("volumes", [])} | claim_templates
        for name in sorted(mounts - volumes):
            problems.append(f"{ident(obj)} mounts undeclared volume {name!r}")
    assert not problems, f"{rendering.name}:\n" + "\n".join(problems)


def _named_ports(template: dict[str, Any]) -> dict[str, int]:
    return {
        p["name"]: p["containerPort"]
        for c in containers(template, init=False)
        for p in c.get("ports", [])
        if "name" in p
    }


def test_services_select_pods_and_their_ports(rendering: Rendering) -> None:
    pods = list(workloads(rendering.objects))
    problems = []
    for svc in rendering.of_kind("Service"):
        selected = [
            (o, t)
            for o, t in pods
            if selector_matches({"matchLabels": svc["spec"]["selector"]}, t["metadata"]["labels"])
        ]
        if not selected:
            problems.append(f"{ident(svc)} selects no pod template")
            continue
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for o, t in selected:
                if isinstance(target, str) and target not in _named_ports(t):
                    problems.append(f"{ident(svc)} targets port {target!r}, absent in {ident(o)}")
    assert not problems, f"{rendering.name}:\n" + "\n".join(problems)


def test_probes_use_declared_ports(rendering: Rendering) -> None:
    problems = []
    for obj, template in workloads(rendering.objects):
        named = _named_ports(template)
        for c in containers(template, init=False):
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(probe_name) or {}
                handler = probe.get("httpGet") or probe.get("tcpSocket") or {}
                port = handler.get("port")
                if isinstance(port, str) and port not in named:
                    problems.append(
                        f"{ident(obj)} {c['name']} {probe_name} uses unknown port {port!r}"
                    )
    assert not problems, f"{rendering.name}:\n" + "\n".join(problems)


def test_autoscaler_and_disruption_budget_target_serving(rendering: Rendering) -> None:
    hpa = rendering.get("HorizontalPodAutoscaler", "serving")
    pdb = rendering.get("PodDisruptionBudget", "serving")
    serving = rendering.get("Deployment", "serving")
    assert hpa and pdb and serving
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", "serving"), (
        "HPA/serving scales the wrong target"
    )
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"], (
        "HPA/serving: CPU only"
    )
    assert hpa["spec"]["minReplicas"] >= 2, "HPA/serving: minReplicas < 2 defeats the PDB"
    labels = serving["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(pdb["spec"]["selector"], labels), "PDB/serving does not select serving"
    annotations = serving["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true", (
        "Deployment/serving: no scrape annotation"
    )


def test_mlflow_server_settings(rendering: Rendering) -> None:
    """The MLflow pitfalls of DESIGN.md, checked on the rendered Deployment."""
    dep = rendering.get("Deployment", "mlflow")
    assert dep is not None
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(c.get("command", []) + c.get("args", []))
    env = {e["name"]: e for e in c.get("env", [])}
    assert "--backend-store-uri=postgresql+psycopg2://" in args, "mlflow: store must use psycopg2"
    assert "--app-name=basic-auth" in args, "mlflow: authentication must be on"
    # Without workspaces every signed-in user may create experiments and registered models,
    # READ-only roles included (tests/governance/test_mlflow_accounts.py).
    assert "--enable-workspaces" in c["args"], "mlflow: READ-only roles could create"
    assert "--serve-artifacts" in args and "--artifacts-destination=" in args
    assert "--workers=2" in args, "mlflow: 2 workers (4 take ~2 GB)"
    allowed = next(a for a in c["args"] if a.startswith("--allowed-hosts="))
    hosts = allowed.split("=", 1)[1].split(",")
    for host in ("mlflow:*", "mlflow.seamless.svc.cluster.local:*"):
        assert host in hosts, f"mlflow: --allowed-hosts lacks {host} (403 for in-cluster clients)"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    for name in ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD", "PGPASSWORD"):
        assert "secretKeyRef" in env[name].get("valueFrom", {}), (
            f"mlflow: {name} must come from a Secret"
        )
    probe_paths = {c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")}
    assert probe_paths == {"/health"}


def test_mlflow_auth_config_uses_its_own_postgres_database() -> None:
    ini = configparser.ConfigParser()
    ini.read(MANIFESTS / "base" / "mlflow" / "basic_auth.ini")
    uri = ini["mlflow"]["database_uri"]
    assert uri.startswith("postgresql+psycopg2://"), f"basic_auth.ini: database_uri {uri!r}"
    assert uri.rsplit("/", 1)[-1] == "mlflow_auth", "basic_auth.ini: not the auth database"
    assert "admin_password" not in ini["mlflow"], (
        "basic_auth.ini: the admin password belongs in a Secret"
    )
    init = (MANIFESTS / "base" / "postgres" / "init-databases.sh").read_text()
    for db in ("mlflow", "mlflow_auth", "feast_registry"):
        assert f"CREATE DATABASE {db} " in init, f"init-databases.sh does not create {db}"


def test_feast_server_flags_and_repo_config(rendering: Rendering) -> None:
    dep = rendering.get("Deployment", "feast-server")
    assert dep is not None
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args = c.get("command", []) + c.get("args", [])
    assert "--max-requests=0" in args and "--no-access-log" in args, (
        "feast-server: worker recycling/access log"
    )
    cron = rendering.get("CronJob", "feast-materialize")
    assert cron is not None
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["seamless", "features", "materialize"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_feast_repo_config_is_valid() -> None:
    """feature_store.yaml loads with Feast itself (SQL registry + Redis online store)."""
    require_module("redis", "Feast's Redis online store needs `feast[redis]`: run `make venv`")
    import yaml
    from feast.repo_config import RepoConfig

    text = (MANIFESTS / "base" / "feast" / "feature_store.yaml").read_text()
    raw = yaml.safe_load(os.path.expandvars(text.replace("${REDIS_PASSWORD}", "placeholder")))
    config = RepoConfig(repo_path=MANIFESTS, **raw)
    assert config.registry.registry_type == "sql"
    assert config.registry.path.startswith("postgresql+psycopg2://")
    assert config.online_store.type == "redis"
