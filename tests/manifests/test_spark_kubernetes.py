"""Spark on Kubernetes, checked offline (no cluster here): the executors' pod template,
the Spark properties a driver step starts with, and how they meet the rendered manifests
(labels, ports, Role) and the compiled training-spark pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_objects import KUBERNETES_VERSION, Rendering, restricted_problems, selector_matches

from components.common.config import SparkConfig
from components.common.errors import SeamlessError
from components.common.image import image_ref
from components.common.spark import session_conf
from components.common.spark_kubernetes import (
    AUTH_DIR,
    AUTH_FILE_ENV,
    AUTH_SECRET,
    AUTH_SECRET_KEY,
    BLOCK_MANAGER_PORT,
    DRIVER_LABEL,
    DRIVER_PORT,
    EXECUTOR_AUTH_FILE,
    EXECUTOR_LABEL,
    IMAGE_ENV,
    RPC_PROTECTION,
    SCRATCH_CLAIM,
    SCRATCH_ENV,
    check_executor_writable,
    executor_pod_template,
    executor_visible,
    kubernetes_conf,
)
from pipelines.compile import COMPILED_DIR
from tests.helpers.configs import assert_one_sentence
from tests.helpers.require import require_module

pytestmark = pytest.mark.unit

MASTER = "k8s://https://kubernetes.default.svc"
POD_ENV = {
    "POD_NAMESPACE": "kubeflow",
    "POD_IP": "10.244.0.17",
    "POD_NAME": "training-spark-abc-ingest",
    IMAGE_ENV: "localhost/seamless/spark:0.1.0-test",
    SCRATCH_ENV: "/seamless-spark",
}


@pytest.fixture(autouse=True, scope="module")
def _auth_secret_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The driver's copy of Spark's authentication secret, as the step mounts it."""
    secret = tmp_path_factory.mktemp("spark-auth") / AUTH_SECRET_KEY
    secret.write_text("not-a-real-secret")
    POD_ENV[AUTH_FILE_ENV] = str(secret)


def _policy(rendering: Rendering, name: str) -> dict[str, Any]:
    policy = rendering.get("NetworkPolicy", name)
    assert policy is not None, f"NetworkPolicy/{name} is not rendered"
    return policy


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for r in rules for p in r.get("ports", [])}


def test_executor_pod_is_restricted_and_valid() -> None:
    kubernetes_validate = require_module(
        "kubernetes_validate", "kubernetes-validate is a dev dependency: run `make venv`"
    )
    template = executor_pod_template("/seamless-spark")
    assert restricted_problems("executor pod template", template) == []
    assert template["spec"]["automountServiceAccountToken"] is False
    volumes = template["spec"]["volumes"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in volumes
              if "persistentVolumeClaim" in v]  # fmt: skip
    assert claims == [SCRATCH_CLAIM]
    pod = {**template, "metadata": {**template["metadata"], "name": "executor"}}
    pod["spec"]["containers"][0]["image"] = "localhost/seamless/spark:0.1.0-test"
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_driver_conf_from_the_pod(tmp_path: Path) -> None:
    spark = SparkConfig(master=MASTER, executors=3, executor_memory="3g")
    conf = kubernetes_conf(spark, tmp_path, POD_ENV)
    assert conf["spark.kubernetes.namespace"] == "kubeflow"
    assert conf["spark.driver.host"] == "10.244.0.17"
    assert conf["spark.driver.port"] == str(DRIVER_PORT)
    assert conf["spark.blockManager.port"] == str(BLOCK_MANAGER_PORT)
    assert conf["spark.kubernetes.driver.pod.name"] == "training-spark-abc-ingest"
    assert conf["spark.kubernetes.container.image"] == POD_ENV[IMAGE_ENV]
    assert conf["spark.executor.instances"] == "3" and conf["spark.executor.memory"] == "3g"
    written = yaml.safe_load(Path(conf["spark.kubernetes.executor.podTemplateFile"]).read_text())
    assert written == executor_pod_template("/seamless-spark")
    # The config's own spark.conf still wins (session_conf merges it last).
    override = SparkConfig(master=MASTER, conf={"spark.kubernetes.container.image": "mine:1"})
    assert kubernetes_conf(override, tmp_path, POD_ENV)["spark.kubernetes.container.image"] == (
        "mine:1"
    )


def test_driver_and_executors_authenticate_and_encrypt(tmp_path: Path) -> None:
    """The driver and executor ports are opened between pods only with Spark's mutual
    authentication and AES-encrypted RPC on; the secret is a file in both pods (the
    executors' from the pod template), never an environment variable."""
    conf = kubernetes_conf(SparkConfig(master=MASTER), tmp_path, POD_ENV)
    assert {k: conf[k] for k in RPC_PROTECTION} == RPC_PROTECTION
    assert conf["spark.authenticate.secret.driver.file"] == POD_ENV[AUTH_FILE_ENV]
    assert conf["spark.authenticate.secret.executor.file"] == EXECUTOR_AUTH_FILE
    assert "spark.authenticate.secret" not in conf
    template = executor_pod_template(None)
    (mount,) = [m for m in template["spec"]["containers"][0]["volumeMounts"]
                if m["mountPath"] == AUTH_DIR]  # fmt: skip
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == AUTH_SECRET
    assert f"{AUTH_DIR}/{volume['secret']['items'][0]['path']}" == EXECUTOR_AUTH_FILE
    assert mount["readOnly"] is True
    env = [e for c in template["spec"]["containers"] for e in c.get("env", [])]
    assert not env, env


@pytest.mark.parametrize("key", sorted(RPC_PROTECTION))
def test_spark_conf_may_not_weaken_the_rpc_protection(tmp_path: Path, key: str) -> None:
    flipped = "false" if RPC_PROTECTION[key] == "true" else "true"
    spark = SparkConfig(master=MASTER, conf={key: flipped})
    with pytest.raises(SeamlessError) as info:
        kubernetes_conf(spark, tmp_path, POD_ENV)
    assert key in str(info.value)
    assert_one_sentence(str(info.value))
    # Restating the protection is fine.
    same = SparkConfig(master=MASTER, conf={key: RPC_PROTECTION[key]})
    assert kubernetes_conf(same, tmp_path, POD_ENV)[key] == RPC_PROTECTION[key]


def test_a_missing_auth_secret_file_is_one_sentence(tmp_path: Path) -> None:
    env = {**POD_ENV, AUTH_FILE_ENV: str(tmp_path / "absent")}
    with pytest.raises(SeamlessError) as info:
        kubernetes_conf(SparkConfig(master=MASTER), tmp_path, env)
    assert f"{AUTH_FILE_ENV}={tmp_path / 'absent'} is not a readable file" in str(info.value)
    assert AUTH_SECRET in str(info.value)
    assert_one_sentence(str(info.value))


def test_every_overlay_renders_the_auth_secret(renderings: dict[str, Rendering]) -> None:
    """Referenced by name (pod template, pipeline steps): a stable name with the key."""
    for rendering in renderings.values():
        secret = rendering.get("Secret", AUTH_SECRET)
        assert secret is not None, f"[{rendering.name}] Secret/{AUTH_SECRET} is not rendered"
        assert set(secret["data"]) == {AUTH_SECRET_KEY}


def test_spark_steps_mount_the_auth_secret_where_executors_have_it(tmp_path: Path) -> None:
    """Compiled from source (the committed spec is recompiled by `make compile`): every
    Spark driver step mounts the Secret at the executors' path and points the driver's
    secret file there."""
    from kfp import compiler

    from pipelines.training import build_training_pipeline

    out = tmp_path / "training-spark.yaml"
    compiler.Compiler().compile(build_training_pipeline(cluster=True, engine="spark"), str(out))
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    containers = {n.removeprefix("exec-"): e["container"]
                  for n, e in docs[0]["deploymentSpec"]["executors"].items()}  # fmt: skip
    drivers = 0
    for name, cfg in docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        if cfg.get("podMetadata", {}).get("labels", {}).get(DRIVER_LABEL) != "true":
            continue
        drivers += 1
        mounts = {v["mountPath"]: v["secretName"] for v in cfg.get("secretAsVolume", [])}
        assert mounts.get(AUTH_DIR) == AUTH_SECRET, (name, mounts)
        env = {e["name"]: e["value"] for e in containers[name.removeprefix("exec-")].get("env", [])}
        assert env[AUTH_FILE_ENV] == EXECUTOR_AUTH_FILE, name
    assert drivers == 4


def test_session_conf_uses_the_pod_only_for_k8s_masters(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in POD_ENV.items():
        monkeypatch.setenv(key, value)
    assert session_conf(SparkConfig(master=MASTER))["spark.driver.host"] == "10.244.0.17"
    assert session_conf(SparkConfig())["spark.driver.host"] == "127.0.0.1"


@pytest.mark.parametrize("missing", ["POD_IP", "POD_NAME", IMAGE_ENV])
def test_outside_a_prepared_pod_is_one_sentence(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in POD_ENV.items() if k != missing}
    with pytest.raises(SeamlessError) as info:
        kubernetes_conf(SparkConfig(master=MASTER), tmp_path, env)
    assert missing in str(info.value)
    assert_one_sentence(str(info.value))


def test_step_files_reach_executors_through_the_scratch_volume(tmp_path: Path) -> None:
    data = tmp_path / "pod" / "t.parquet"
    data.parent.mkdir()
    data.write_bytes(b"PAR1")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert executor_visible("local[2]", data) == data
    copy = executor_visible(MASTER, data, {SCRATCH_ENV: str(scratch)})
    assert copy.is_relative_to(scratch) and copy.read_bytes() == b"PAR1"
    assert executor_visible(MASTER, copy, {SCRATCH_ENV: str(scratch)}) == copy
    with pytest.raises(SeamlessError) as info:
        executor_visible(MASTER, data, {})
    assert_one_sentence(str(info.value))
    check_executor_writable(MASTER, scratch / "out", {SCRATCH_ENV: str(scratch)})
    with pytest.raises(SeamlessError):
        check_executor_writable(MASTER, tmp_path / "pod" / "out", {SCRATCH_ENV: str(scratch)})


def test_policies_admit_exactly_the_spark_ports(renderings: dict[str, Rendering]) -> None:
    template = executor_pod_template(None)
    executor_labels = template["metadata"]["labels"]
    for rendering in renderings.values():
        drivers = _policy(rendering, "spark-drivers")["spec"]
        executors = _policy(rendering, "spark-executors")["spec"]
        assert selector_matches(executors["podSelector"], executor_labels)
        assert drivers["podSelector"] == {"matchLabels": {DRIVER_LABEL: "true"}}
        assert _ports(drivers["ingress"]) == {DRIVER_PORT, BLOCK_MANAGER_PORT}
        assert _ports(executors["ingress"]) == {BLOCK_MANAGER_PORT}
        assert EXECUTOR_LABEL in executor_labels
        role = rendering.get("Role", "seamless-spark-driver")
        assert role is not None
        claim = rendering.get("PersistentVolumeClaim", SCRATCH_CLAIM)
        assert claim is not None
    production = renderings["production"].get("PersistentVolumeClaim", SCRATCH_CLAIM)
    assert production is not None and production["spec"]["accessModes"] == ["ReadWriteMany"]


def _executors(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text()) if d]
    return dict(docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"])


def test_compiled_spark_pipeline_runs_data_steps_as_drivers() -> None:
    docs = [d for d in yaml.safe_load_all((COMPILED_DIR / "training-spark.yaml").read_text()) if d]
    images = {
        name.removeprefix("exec-"): spec["container"]["image"]
        for name, spec in docs[0]["deploymentSpec"]["executors"].items()
    }
    spark, runtime = image_ref("spark"), image_ref("runtime")
    data_steps = {"ingest", "validate", "features", "materialize"}
    assert {n for n, image in images.items() if image == spark} == data_steps
    assert all(image == runtime for n, image in images.items() if n not in data_steps)
    for name, cfg in _executors("training-spark").items():
        labels = cfg.get("podMetadata", {}).get("labels", {})
        fields = {e["name"]: e["fieldPath"] for e in cfg.get("fieldPathAsEnv", [])}
        if name.removeprefix("exec-") in data_steps:
            assert labels[DRIVER_LABEL] == "true"
            assert labels["seamless.dev/apiserver-client"] == "true"
            assert fields["POD_IP"] == "status.podIP" and fields["POD_NAME"] == "metadata.name"
            assert [m["constant"] for m in cfg["pvcMount"]] == [SCRATCH_CLAIM]
        else:
            assert DRIVER_LABEL not in labels
    # The plain pipeline is untouched.
    assert all(DRIVER_LABEL not in str(cfg) for cfg in _executors("training").values())
