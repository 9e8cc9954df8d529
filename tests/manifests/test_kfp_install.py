"""The Kubeflow Pipelines install (manifests/kfp, `make kfp-up`): pinned, one version, paired.

The upstream manifests live on GitHub, which the build machines cannot reach, so the
upstream objects cannot be rendered here. What is checked offline: both kustomizations
name only the upstream standalone manifests at an immutable release tag; that tag is the
same in the Makefile, the docs and both kustomizations; kustomize itself resolves each
reference to that repository at that tag (its fetch is what fails offline, and the
failure names it); our kustomizations render once the remote is replaced by a local
stand-in; and the kfp SDK that compiles the specs pairs with that backend release. Where
GitHub answers, the real render is checked instead (every KFP image at that version).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from pipelines.compile import COMPILED_DIR, compiled_pipelines
from tests.manifests.k8s_objects import Rendering

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "manifests" / "kfp"))
from step_wiring import MARK, MIRRORED_LABELS, SPARK_ROLE, STEP_ACCOUNT, _qualify, step_wiring

pytestmark = pytest.mark.manifests
ROOT = Path(__file__).resolve().parents[2]
KFP_DIR = ROOT / "manifests" / "kfp"
UPSTREAM = "https://github.com/kubeflow/pipelines"
# The standalone install's two steps and the upstream folder each one applies.
STEPS = {
    "cluster-scoped": "manifests/kustomize/cluster-scoped-resources",
    "env": "manifests/kustomize/env/platform-agnostic",
}
REMOTE = re.compile(rf"^{re.escape(UPSTREAM)}//(?P<path>[\w./-]+)\?ref=(?P<ref>[^&\s]+)$")
RELEASE_TAG = re.compile(r"^\d+\.\d+\.\d+$")


def _kustomization(step: str) -> dict:
    data = yaml.safe_load((KFP_DIR / step / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _makefile_version() -> str:
    match = re.search(r"^KFP_VERSION\s*:?=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile: no KFP_VERSION"
    return match.group(1)


def _refs() -> dict[str, tuple[str, str]]:
    """step -> (upstream path, ref) of its one resource."""
    out = {}
    for step in STEPS:
        data = _kustomization(step)
        assert set(data) == {"apiVersion", "kind", "resources"}, (
            f"manifests/kfp/{step}: only the upstream resource, no patches or extra keys"
        )
        (resource,) = data["resources"]
        match = REMOTE.match(resource)
        assert match, f"manifests/kfp/{step}: {resource} is not {UPSTREAM}//<path>?ref=<tag>"
        out[step] = (match.group("path"), match.group("ref"))
    return out


def test_refs_are_the_standalone_manifests_at_a_release_tag() -> None:
    for step, (path, ref) in _refs().items():
        assert path == STEPS[step], f"manifests/kfp/{step} points at {path}"
        # A branch (master, release-2.17) or HEAD moves under the same name; a tag does not.
        assert RELEASE_TAG.match(ref), f"manifests/kfp/{step}: ref={ref} is not a release tag"


def test_one_version_everywhere() -> None:
    pinned = _makefile_version()
    assert {ref for _, ref in _refs().values()} == {pinned}
    for doc in (KFP_DIR / "README.md", ROOT / "README.md"):
        text = doc.read_text()
        assert f"Kubeflow Pipelines {pinned}" in text, f"{doc.name} does not name {pinned}"
        named = set(re.findall(r"Kubeflow Pipelines (\d+\.\d+\.\d+)", text))
        named |= set(re.findall(r"\?ref=([\w.-]+)", text))
        assert named == {pinned}, f"{doc.relative_to(ROOT)} names other versions: {named}"


def test_the_sdk_pairs_with_the_backend_release() -> None:
    """kfp-server-api is generated per backend release: it must be that exact release; the
    SDK that compiles the specs shares its minor version, and the pins agree."""
    backend = _makefile_version()
    assert version("kfp-server-api") == backend
    sdk = version("kfp")
    assert sdk.split(".")[:2] == backend.split(".")[:2], f"kfp {sdk} vs KFP backend {backend}"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"kfp=={sdk}" in deps
    for name in compiled_pipelines():
        spec = next(yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text()))
        assert spec["sdkVersion"] == f"kfp-{sdk}", f"{name}.yaml was compiled by another kfp"
        # The IR the 2.x backends read (PipelineSpec schema 2.1.0).
        assert spec["schemaVersion"] == "2.1.0"


def _kustomize(kubectl: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("step", sorted(STEPS))
def test_kustomize_fetches_exactly_the_pinned_tag(kubectl: str, step: str) -> None:
    pinned = _makefile_version()
    result = _kustomize(kubectl, KFP_DIR / step)
    if result.returncode != 0:
        # Offline (these machines): kustomize's own fetch names the repository and the tag.
        fetch = f"git fetch --depth=1 {UPSTREAM} {pinned}"
        assert fetch in result.stderr, f"kubectl kustomize manifests/kfp/{step}:\n{result.stderr}"
        return
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    if step == "cluster-scoped":
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        assert ("Namespace", "kubeflow") in names
        assert any(kind == "CustomResourceDefinition" for kind, _ in names)
        return
    images = [
        c["image"]
        for o in objects
        for c in (o.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [])
    ]
    kfp_images = [i for i in images if "/kfp-" in i]
    assert kfp_images, "no KFP images in the rendered install"
    assert all(i.endswith(f":{pinned}") for i in kfp_images), kfp_images
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] == "Deployment"} == {
        "kubeflow"
    }


def test_our_kustomizations_render_around_a_local_stand_in(kubectl: str, tmp_path: Path) -> None:
    """With the remote swapped for a local folder, kustomize renders exactly that folder:
    the files are valid and add nothing of their own."""
    copy = tmp_path / "kfp"
    shutil.copytree(KFP_DIR, copy)
    stub = tmp_path / "upstream"
    stub.mkdir()
    (stub / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (stub / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stand-in, namespace: kubeflow}\n"
    )
    for step in STEPS:
        file = copy / step / "kustomization.yaml"
        file.write_text(re.sub(rf"{re.escape(UPSTREAM)}//\S+", "../../upstream", file.read_text()))
        result = _kustomize(kubectl, copy / step)
        assert result.returncode == 0, result.stderr
        (obj,) = [o for o in yaml.safe_load_all(result.stdout) if o]
        assert obj["metadata"] == {"name": "stand-in", "namespace": "kubeflow"}


# --- the step namespace's wiring (manifests/kfp/step_wiring.py, make kfp-steps) -------------


def _names_the_spec_reads(name: str) -> dict[str, set[str]]:
    """kind -> names the compiled pipeline's steps read from their namespace."""
    docs = [d for d in yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text()) if d]
    out: dict[str, set[str]] = {"ConfigMap": set(), "Secret": set(), "PersistentVolumeClaim": set()}
    for doc in docs[1:]:
        executors = doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for cfg in executors.values():
            for key in ("configMapAsEnv", "configMapAsVolume"):
                out["ConfigMap"] |= {m["configMapName"] for m in cfg.get(key, [])}
            for key in ("secretAsEnv", "secretAsVolume"):
                out["Secret"] |= {m["secretName"] for m in cfg.get(key, [])}
            out["PersistentVolumeClaim"] |= {m["constant"] for m in cfg.get("pvcMount", [])}
    return out


@pytest.fixture(scope="module")
def kind_objects(renderings: dict[str, Rendering]) -> list[dict]:
    return renderings["kind"].objects


@pytest.fixture(scope="module")
def wiring(kind_objects: list[dict]) -> list[dict]:
    return step_wiring(kind_objects, "kubeflow")


@pytest.mark.parametrize("name", sorted(compiled_pipelines()))
def test_wiring_gives_the_step_namespace_everything_the_spec_reads(
    wiring: list[dict], name: str
) -> None:
    there = {
        (o["kind"], o["metadata"]["name"])
        for o in wiring
        if o["metadata"]["namespace"] == "kubeflow"
    }
    for kind, names in _names_the_spec_reads(name).items():
        missing = {n for n in names if (kind, n) not in there}
        assert not missing, f"{name}: {kind} {sorted(missing)} not given to namespace kubeflow"
    assert ("ServiceAccount", STEP_ACCOUNT) in there


def _values(obj: dict) -> dict[str, str]:
    data = obj.get("data") or {}
    if obj["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return dict(data)


def test_copies_reach_the_services_by_their_cluster_wide_names(
    wiring: list[dict], kind_objects: list[dict]
) -> None:
    originals = {(o["kind"], o["metadata"]["name"]): o for o in kind_objects}
    short = re.compile(
        r"(?<![\w.-])(postgres|redis|mlflow|feast-server|serving|dashboard)(?=:\d+(?![\w@]))"
    )
    copies = [o for o in wiring if o["kind"] in ("ConfigMap", "Secret")]
    # All copies but KFP's own launcher config (checked below).
    assert {c["metadata"]["name"] for c in copies} - {
        o["metadata"]["name"] for o in kind_objects
    } == {"kfp-launcher"}
    for copy in (c for c in copies if c["metadata"]["name"] != "kfp-launcher"):
        before = _values(originals[(copy["kind"], copy["metadata"]["name"])])
        after = _values(copy)
        assert set(after) == set(before)
        for key, value in after.items():
            assert not short.search(value), f"{copy['metadata']['name']}.{key} keeps a short host"
            expected = short.sub(lambda m: m.group(0) + ".seamless.svc.cluster.local", before[key])
            assert value == expected, f"{copy['metadata']['name']}.{key} changed beyond host names"


def test_the_seamless_namespace_only_gains_mirrored_rules_and_bindings(
    wiring: list[dict], kind_objects: list[dict]
) -> None:
    assert all(o["metadata"]["labels"][MARK] == "kubeflow" for o in wiring)
    added = [o for o in wiring if o["metadata"]["namespace"] == "seamless"]
    assert {o["kind"] for o in added} == {"NetworkPolicy", "RoleBinding"}

    def there(labels: dict[str, str]) -> dict:
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}},
            "podSelector": {"matchLabels": labels},
        }

    mirrored = 0
    for policy in (o for o in kind_objects if o["kind"] == "NetworkPolicy"):
        # Rules admitting pipeline steps or object-store clients of the Seamless namespace.
        expected = [
            (
                [
                    there(p["podSelector"]["matchLabels"])
                    for p in r.get("from") or []
                    if p in ({"podSelector": {"matchLabels": lab}} for lab in LABELS)
                ],
                r.get("ports"),
            )
            for r in policy["spec"].get("ingress") or []
        ]
        expected = [(peers, ports) for peers, ports in expected if peers]
        ports = [p for _, p in expected]
        mirror = next(
            (
                o
                for o in added
                if o["metadata"]["name"] == f"{policy['metadata']['name']}-from-kubeflow"
            ),
            None,
        )
        if not ports:
            assert mirror is None
            continue
        mirrored += 1
        assert mirror is not None, f"no mirror of {policy['metadata']['name']}"
        assert mirror["spec"]["podSelector"] == policy["spec"]["podSelector"]
        assert mirror["spec"]["policyTypes"] == ["Ingress"]
        assert [r["from"] for r in mirror["spec"]["ingress"]] == [p for p, _ in expected]
        assert [r.get("ports") for r in mirror["spec"]["ingress"]] == ports
    assert mirrored >= 5  # mlflow, feast-server, postgres, redis, minio
    for binding in (o for o in added if o["kind"] == "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": STEP_ACCOUNT, "namespace": "kubeflow"}
        ]
        assert binding["roleRef"]["kind"] == "Role"  # namespaced: nothing cluster-wide


LABELS = MIRRORED_LABELS


def test_spark_drivers_start_executors_in_the_step_namespace(
    wiring: list[dict], kind_objects: list[dict]
) -> None:
    """training-spark's data steps run Spark drivers in namespace kubeflow: they get the
    drivers' Role there (not across namespaces), bound to the step account, and the shared
    scratch claim; PostgreSQL admits executors of that namespace for JDBC reads."""
    here = {(o["kind"], o["metadata"]["name"]): o for o in wiring}
    role = here[("Role", SPARK_ROLE)]
    assert role["metadata"]["namespace"] == "kubeflow"
    original = next(
        o for o in kind_objects if o["kind"] == "Role" and o["metadata"]["name"] == SPARK_ROLE
    )
    assert role["rules"] == original["rules"]
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"pods", "configmaps", "services", "persistentvolumeclaims"}
    assert all(rule["apiGroups"] == [""] and "*" not in rule["verbs"] for rule in role["rules"])
    binding = here[("RoleBinding", SPARK_ROLE)]
    assert binding["metadata"]["namespace"] == "kubeflow"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": STEP_ACCOUNT, "namespace": "kubeflow"}
    ]
    claim = here[("PersistentVolumeClaim", "seamless-spark-scratch")]
    assert claim["metadata"]["namespace"] == "kubeflow" and "volumeName" not in claim["spec"]
    postgres = here[("NetworkPolicy", "postgres-from-kubeflow")]
    peers = [
        p["podSelector"]["matchLabels"] for r in postgres["spec"]["ingress"] for p in r["from"]
    ]
    assert {"seamless.dev/spark-executor": "true"} in peers


def test_steps_of_the_step_namespace_reach_the_object_store(
    wiring: list[dict], kind_objects: list[dict]
) -> None:
    """Pipeline steps carry the s3-client label; MinIO admits such pods of its own namespace,
    so the wiring admits them from the step namespace too, on the S3 port only."""
    minio = next(
        o for o in kind_objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "minio"
    )
    mirror = next(
        o
        for o in wiring
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "minio-from-kubeflow"
    )
    assert mirror["metadata"]["namespace"] == "seamless"
    assert mirror["spec"]["podSelector"] == minio["spec"]["podSelector"]
    assert mirror["spec"]["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}
                    },
                    "podSelector": {"matchLabels": {"seamless.dev/s3-client": "true"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 9000}],
        }
    ]
    # The step pods the compiled pipelines declare carry that label.
    for name in compiled_pipelines():
        text = (COMPILED_DIR / f"{name}.yaml").read_text()
        assert "seamless.dev/s3-client: 'true'" in text, name


def test_wiring_tool_reads_a_rendering_on_stdin(kind_objects: list[dict]) -> None:
    tool = Path(__file__).resolve().parents[2] / "manifests" / "kfp" / "step_wiring.py"
    empty = subprocess.run([sys.executable, str(tool)], input="", capture_output=True, text=True)
    assert empty.returncode == 1 and "no objects on stdin" in empty.stderr
    done = subprocess.run(
        [sys.executable, str(tool)],
        input=yaml.safe_dump_all(kind_objects),
        capture_output=True,
        text=True,
        env={"KFP_NAMESPACE": "pipelines", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    namespaces = {o["metadata"]["namespace"] for o in yaml.safe_load_all(done.stdout) if o}
    assert namespaces == {"pipelines", "seamless"}


def test_wiring_and_the_e2e_data_server_match_the_kubernetes_schema(wiring: list[dict]) -> None:
    """Strict schema check of what make kfp-steps and tests/e2e/test_kfp.py apply."""
    from tests.e2e.test_kfp import _data_server
    from tests.helpers.require import require_module
    from tests.manifests.k8s_objects import KUBERNETES_VERSION

    kubernetes_validate = require_module(
        "kubernetes_validate", "kubernetes-validate is a dev dependency: run `make venv`"
    )
    errors = []
    for obj in [*wiring, *_data_server("localhost/seamless/runtime:0.1.0-test")]:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {e.message}")
    assert not errors, "\n".join(errors)


def _launcher(wiring: list[dict]) -> dict:
    (config,) = [
        o for o in wiring if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kfp-launcher"
    ]
    return config


def test_runs_keep_their_artifacts_in_the_seamless_object_store(
    wiring: list[dict], renderings: dict[str, Rendering]
) -> None:
    """KFP's launcher config (backend/src/v2/config: `defaultPipelineRoot`, `providers` as
    YAML with the Go structs' json names) points runs at a bucket the buckets Job creates,
    on the in-cluster store's Service, with the keys of the Secret the wiring copies."""
    config = _launcher(wiring)
    assert config["metadata"]["namespace"] == "kubeflow"
    assert config["metadata"]["labels"][MARK] == "kubeflow"
    root = config["data"]["defaultPipelineRoot"]
    assert root == "s3://seamless-pipelines/kfp"
    buckets_job = renderings["kind"].get("Job", "minio-buckets")
    assert buckets_job is not None and "seamless-pipelines" in yaml.safe_dump(buckets_job)
    providers = yaml.safe_load(config["data"]["providers"])
    assert set(providers) == {"s3"} and set(providers["s3"]) == {"default"}
    default = providers["s3"]["default"]
    credentials = default.pop("credentials")
    assert default == {
        "endpoint": "minio.seamless.svc:9000",
        "region": "us-east-1",
        # MinIO serves HTTPS only; the launcher trusts seamless-ca (pipelines/training.py).
        "disableSSL": False,
        "forcePathStyle": True,
    }
    host, _, port = default["endpoint"].partition(":")
    minio = renderings["kind"].get("Service", "minio")
    assert minio is not None and host.split(".")[:2] == ["minio", minio["metadata"]["namespace"]]
    assert int(port) in [p["port"] for p in minio["spec"]["ports"]]
    # The keys come from a Secret the wiring puts next to the launcher, not from its env.
    assert credentials["fromEnv"] is False and set(credentials) == {"fromEnv", "secretRef"}
    ref = credentials["secretRef"]
    assert set(ref) == {"secretName", "accessKeyKey", "secretKeyKey"}
    (secret,) = [
        o for o in wiring if o["kind"] == "Secret" and o["metadata"]["name"] == ref["secretName"]
    ]
    assert secret["metadata"]["namespace"] == "kubeflow"
    # Which key is the id and which the secret: a swap would pass a subset check alone.
    keys = (ref["accessKeyKey"], ref["secretKeyKey"])
    assert keys == ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    assert set(keys) <= set(secret["data"])


def test_launcher_config_follows_an_https_endpoint_and_a_chosen_root(
    renderings: dict[str, Rendering],
) -> None:
    prod = _launcher(step_wiring(renderings["production"].objects, "kubeflow", "s3://runs/kfp"))
    assert prod["data"]["defaultPipelineRoot"] == "s3://runs/kfp"
    default = yaml.safe_load(prod["data"]["providers"])["s3"]["default"]
    assert default["endpoint"] == "s3.example.com" and default["disableSSL"] is False
    with pytest.raises(SystemExit, match="KFP_PIPELINE_ROOT='gs://x' is not an s3:// URI"):
        step_wiring(renderings["kind"].objects, "kubeflow", "gs://x")


def test_a_user_named_like_a_service_is_not_a_host() -> None:
    """`serving:<password>@` in a database URL: the user is a Service's name and a hex
    password may start with a digit; only the host after `@` is qualified."""
    url = "postgresql://serving:8a0f3c@postgres:5432/predictions?sslmode=verify-full"
    assert _qualify(url, ["serving", "postgres"], "seamless") == (
        "postgresql://serving:8a0f3c@postgres.seamless.svc.cluster.local:5432/predictions"
        "?sslmode=verify-full"
    )
    assert _qualify("serving:8080,x", ["serving"], "ns") == ("serving.ns.svc.cluster.local:8080,x")
    assert _qualify("dashboard:1234@host", ["dashboard"], "ns") == ("dashboard:1234@host")
