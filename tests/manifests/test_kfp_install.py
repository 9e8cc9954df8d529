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

import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from pipelines.compile import COMPILED_DIR, compiled_pipelines

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
