"""Re-applying an overlay changes nothing (issue #14 A.9), checked offline.

Two causes made `kubectl apply -k` report objects `configured` on every run: rendered
objects that differ from what the API server stores (defaults it fills in, empty lists it
drops, a replica count the HPA owns), and renders that differ between runs. The first is
checked against the table of known server defaults in server_defaults.py, the second by
rendering each overlay twice (the secret generator run twice in between) and comparing
bytes. The e2e tier adds `kubectl diff` and a server-side dry run where a cluster is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from k8s_objects import MANIFESTS, OVERLAYS, Rendering, ident
from server_defaults import kinds_without_a_decision, missing_defaults

GEN_SECRETS = MANIFESTS / "tools" / "gen_secrets.py"

pytestmark = pytest.mark.manifests


def _gen_secrets(overlay: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(GEN_SECRETS), str(overlay)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _render(kubectl: str, overlay: Path) -> bytes:
    out = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {overlay} failed:\n{out.stderr.decode()}"
    return out.stdout


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_render_twice_gives_the_same_bytes(overlay: str, kubectl: str, tmp_path: Path) -> None:
    """gen_secrets.py then render, twice: the second generator run writes nothing and both
    renders are byte-for-byte equal (names, hash suffixes, ordering, secret values)."""
    shutil.copytree(
        MANIFESTS, tmp_path / "manifests", ignore=shutil.ignore_patterns("secrets", "__pycache__")
    )
    folder = tmp_path / "manifests" / "overlays" / overlay
    first_run = _gen_secrets(folder)
    secrets = _snapshot(folder / "secrets")
    first = _render(kubectl, folder)
    second_run = _gen_secrets(folder)
    assert ": 0 secret files written," in second_run, (
        f"{overlay}: the second gen_secrets.py run wrote files: {second_run!r} "
        f"(first run: {first_run!r})"
    )
    assert _snapshot(folder / "secrets") == secrets, (
        f"{overlay}: gen_secrets.py changed existing secret files on its second run"
    )
    second = _render(kubectl, folder)
    if first != second:
        a, b = first.decode().splitlines(), second.decode().splitlines()
        where = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
        pytest.fail(
            f"{overlay}: two renders of the same tree differ (first differing line "
            f"{where}: {a[where] if where is not None else '(length)'!r})",
            pytrace=False,
        )


def test_server_defaults_are_spelled_out(rendering: Rendering) -> None:
    kinds = {o["kind"] for o in rendering.objects}
    undecided = sorted(kinds_without_a_decision(kinds))
    assert not undecided, (
        f"[{rendering.name}] kinds {undecided} are rendered but tests/manifests/"
        "server_defaults.py does not say which fields the API server defaults for them"
    )
    problems = [f"{ident(o)}: {m}" for o in rendering.objects for m in missing_defaults(o)]
    assert not problems, (
        f"[{rendering.name}] fields the API server fills in, missing from the manifests "
        "(every apply would report `configured`):\n  " + "\n  ".join(problems)
    )


def test_autoscaled_workloads_leave_replicas_to_the_autoscaler(rendering: Rendering) -> None:
    problems = []
    for hpa in rendering.of_kind("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = rendering.get(ref["kind"], ref["name"])
        if target is not None and "replicas" in target["spec"]:
            problems.append(
                f"{ident(target)} sets replicas: {target['spec']['replicas']} while "
                f"{ident(hpa)} scales it (each apply would reset the HPA's count)"
            )
    assert not problems, f"[{rendering.name}] " + "; ".join(problems)


def test_the_defaults_check_catches_what_it_should() -> None:
    """The checker itself, on objects written the way that made apply report `configured`."""
    sts = {
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 1}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
        },
    }
    found = "\n".join(missing_defaults(sts))
    for path in (
        "spec.podManagementPolicy",
        "spec.updateStrategy",
        "spec.persistentVolumeClaimRetentionPolicy",
        "spec.volumeClaimTemplates[0].spec.volumeMode",
        "spec.volumeClaimTemplates[0].status",
        "spec.template.spec.containers[0].ports[0].protocol",
        "spec.template.spec.containers[0].terminationMessagePolicy",
    ):
        assert path in found, f"missing_defaults does not report {path}:\n{found}"
    assert "readinessProbe" not in found, "probe fields reported for a container without probes"
    policy = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": []},
    }
    assert missing_defaults(policy) == ["spec.egress is [] (the server drops it: leave it out)"], (
        missing_defaults(policy)
    )
