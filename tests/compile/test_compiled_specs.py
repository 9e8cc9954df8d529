"""The compiled specs in pipelines/compiled/ are current and parse as KFP PipelineSpec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.image import RUNTIME_IMAGE, image_ref
from pipelines.compile import COMPILED_DIR, compile_all, compiled_pipelines

pytestmark = pytest.mark.unit


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("name", sorted(compiled_pipelines()))
def test_compiled_spec_is_current(name: str, tmp_path: Path) -> None:
    compile_all(tmp_path)
    committed = COMPILED_DIR / f"{name}.yaml"
    assert committed.is_file(), f"{committed} is missing: run `make compile`"
    assert _docs(committed) == _docs(tmp_path / f"{name}.yaml"), (
        f"{committed} is stale: run `make compile` and commit the result"
    )


@pytest.mark.parametrize("name", sorted(compiled_pipelines()))
def test_compiled_spec_parses_strictly(name: str) -> None:
    from google.protobuf import json_format
    from kfp import components
    from kfp.pipeline_spec import pipeline_spec_pb2

    path = COMPILED_DIR / f"{name}.yaml"
    loaded = components.load_component_from_file(str(path))
    assert loaded.name
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(_docs(path)[0], spec, ignore_unknown_fields=False)
    assert spec.pipeline_info.name == f"seamless-{name}"
    executors = _docs(path)[0]["deploymentSpec"]["executors"]
    # training-spark runs its data steps in the Spark image (tests/manifests/test_spark_*).
    expected = {RUNTIME_IMAGE} | ({image_ref("spark")} if name.endswith("-spark") else set())
    assert {e["container"]["image"] for e in executors.values()} == expected
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())


def test_runtime_image_tag_is_current() -> None:
    """The tag names the image inputs it was computed from: `make compile` refreshes it."""
    from components.common.image import image_settings
    from components.common.image_tag import compute_tag

    assert image_settings()["tag"] == compute_tag(), "runtime image tag is stale: make compile"
    assert not image_settings()["tag"].endswith("latest")


def test_image_version_matches_the_package() -> None:
    import tomllib

    from components.common.image import image_settings
    from components.common.image_tag import ROOT

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image_settings()["version"] == version


def test_cluster_wiring_parses_and_injects_endpoints() -> None:
    """The Kubernetes platform spec: endpoints and credentials from ConfigMaps/Secrets only."""
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

    docs = _docs(COMPILED_DIR / "training.yaml")
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{s}" for s in STEPS}
    for name, raw in executors.items():
        cfg = k8s.KubernetesExecutorConfig()
        json_format.ParseDict(raw, cfg, ignore_unknown_fields=False)
        maps = {m.config_map_name for m in cfg.config_map_as_env}
        secrets = {s.secret_name for s in cfg.secret_as_env}
        assert {"seamless-endpoints", "seamless-telemetry-off"} <= maps, name
        assert "mlflow-client" in secrets, name
        assert cfg.pod_metadata.labels["seamless.dev/pipeline-step"] == "true", name
        # No step holds a volume that outlives it: data goes to object storage.
        assert not cfg.pvc_mount, f"{name} mounts a PersistentVolumeClaim"
        scratch = {m.mount_path for m in cfg.empty_dir_mounts}
        assert ("/feast" in scratch) == (name in ("exec-features", "exec-materialize")), name
        # The CA bundle PostgreSQL's certificate is verified against (PGSSLROOTCERT below).
        ca = {m.mount_path for m in cfg.config_map_as_volume if m.config_map_name == "seamless-ca"}
        assert ca == {"/etc/seamless/ca"}, name
        # The pseudonymization key: only the step that reads the sources holds it.
        assert ("seamless-pii" in secrets) == (name == "exec-ingest"), name
    # ... and each says so, so the ingest and features steps refuse local data roots; and
    # libpq verifies PostgreSQL (TLS only on the cluster).
    for name, executor in docs[0]["deploymentSpec"]["executors"].items():
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env.get("SEAMLESS_EPHEMERAL_DISK") == "true", name
        assert env.get("PGSSLMODE") == "verify-full", name
        assert env.get("PGSSLROOTCERT") == "/etc/seamless/ca/ca.crt", name
    deploy = executors["exec-deploy-kubernetes"]["podMetadata"]["labels"]
    assert deploy["seamless.dev/apiserver-client"] == "true"
    # Serving reads the online store: deploy waits for materialize, which runs beside train.
    # (KFP puts the dependency on the condition group that holds deploy.)
    tasks = _all_tasks(docs[0])
    assert tasks["materialize"]["dependentTasks"] == ["features"]
    assert "materialize" not in (tasks["train"].get("dependentTasks") or [])
    holder = next(
        n
        for n, t in tasks.items()
        if "condition" in n and "register" in t.get("dependentTasks", [])
    )
    assert "materialize" in tasks[holder]["dependentTasks"]
    # Deploy runs on the register step's decision (the gate with the compliance policy
    # folded in) and deploys the version register created.
    condition = tasks[holder]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--register-Output'] == 'promote'"
    channel = tasks[holder]["inputs"]["parameters"]["pipelinechannel--register-version"]
    assert channel["taskOutputParameter"] == {
        "outputParameterKey": "version",
        "producerTask": "register",
    }
    register_outputs = docs[0]["components"]["comp-register"]["outputDefinitions"]
    assert register_outputs["artifacts"]["model_card"]["artifactType"]["schemaTitle"] == (
        "system.Markdown"
    )
    assert set(register_outputs["parameters"]) == {"Output", "version"}
    # No endpoint is ever a literal in the spec: it comes from the ConfigMap.
    assert "svc.cluster.local" not in (COMPILED_DIR / "training.yaml").read_text()


STEPS = (
    "ingest", "validate", "features", "materialize", "train", "evaluate", "register",
    "deploy-kubernetes",
)  # fmt: skip


@pytest.mark.parametrize("name", sorted(compiled_pipelines()))
def test_every_step_that_reaches_mlflow_verifies_its_certificate(name: str) -> None:
    """MLflow serves HTTPS only on the cluster: a step that gets MLFLOW_TRACKING_URI from
    ConfigMap seamless-endpoints gets MLFLOW_TRACKING_SERVER_CERT_PATH from it too, and
    mounts the seamless-ca ConfigMap where that path points."""
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

    from components.common.image_tag import ROOT

    kustomization = yaml.safe_load((ROOT / "manifests/base/kustomization.yaml").read_text())
    endpoints = next(g for g in kustomization["configMapGenerator"]
                     if g["name"] == "seamless-endpoints")  # fmt: skip
    literals = dict(lit.split("=", 1) for lit in endpoints["literals"])
    assert literals["MLFLOW_TRACKING_URI"].startswith("https://"), literals
    ca_file = literals["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    executors = _docs(COMPILED_DIR / f"{name}.yaml")[1]["platforms"]["kubernetes"][
        "deploymentSpec"
    ]["executors"]
    reaching = []
    for step, raw in executors.items():
        cfg = k8s.KubernetesExecutorConfig()
        json_format.ParseDict(raw, cfg, ignore_unknown_fields=False)
        env = {
            kv.env_var
            for m in cfg.config_map_as_env
            if m.config_map_name == "seamless-endpoints"
            for kv in m.key_to_env
        }
        if "MLFLOW_TRACKING_URI" not in env:
            continue
        reaching.append(step)
        assert "MLFLOW_TRACKING_SERVER_CERT_PATH" in env, f"{name}/{step}: no CA for MLflow"
        ca = {m.mount_path for m in cfg.config_map_as_volume if m.config_map_name == "seamless-ca"}
        assert any(ca_file.startswith(d.rstrip("/") + "/") for d in ca), (name, step, ca)
    assert reaching, f"{name}: no step reaches MLflow"


def _all_tasks(spec: dict[str, Any]) -> dict[str, Any]:
    """Every task of every DAG in the spec, by name."""
    out: dict[str, Any] = {}
    for component in spec.get("components", {}).values():
        out |= component.get("dag", {}).get("tasks", {})
    out |= spec["root"]["dag"]["tasks"]
    return out
