"""Helpers over rendered Kubernetes objects (plain dicts from `kubectl kustomize`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
# The pod/selector model lives with the tools (flow_table.py uses it too).
sys.path.insert(0, str(MANIFESTS / "tools"))
from policy_flows import (  # noqa: E402
    NAMESPACE,
    POD_TEMPLATE_KINDS,
    containers,
    pod_template,
    selector_matches,
    workloads,
)

__all__ = [
    "KUBERNETES_VERSION", "LONG_RUNNING_KINDS", "MANIFESTS", "NAMESPACE", "OVERLAYS",
    "POD_TEMPLATE_KINDS", "ROOT", "Rendering", "containers", "ident", "image_parts",
    "pod_template", "restricted_problems", "selector_matches", "workloads",
]  # fmt: skip

OVERLAYS = ("kind", "production")
# Kubernetes version whose OpenAPI schema every object must satisfy (kind >= 0.24 runs 1.31).
KUBERNETES_VERSION = "1.31"

LONG_RUNNING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


@dataclass
class Rendering:
    """One `kubectl kustomize` output, parsed."""

    name: str
    objects: list[dict[str, Any]]
    secret_values: set[str] = field(default_factory=set)

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in kinds]

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        for o in self.objects:
            if o["kind"] == kind and o["metadata"]["name"] == name:
                return o
        return None


def ident(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def image_parts(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag, digest
    return image, None, digest


# Volume types the Pod Security Standard `restricted` profile allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def _effective(template: dict[str, Any], c: dict[str, Any], key: str) -> Any:
    """A security setting on the container, else the pod's."""
    csc = c.get("securityContext") or {}
    psc = template["spec"].get("securityContext") or {}
    return csc.get(key, psc.get(key))


def restricted_problems(where: str, template: dict[str, Any]) -> list[str]:
    """What keeps a pod template from the Pod Security Standard `restricted` (empty: none)."""
    problems = []
    spec = template["spec"]
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{where}: {flag} is not allowed")
    for vol in spec.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"{where}: volume {vol['name']} of type {sorted(kinds)} is not allowed")
    for c in containers(template):
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext") or {}
        if _effective(template, c, "runAsNonRoot") is not True:
            problems.append(f"{cw}: runAsNonRoot must be true")
        user = _effective(template, c, "runAsUser")
        if user is None or user == 0:
            problems.append(f"{cw}: runAsUser must be set to a non-zero uid (got {user})")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cw}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            problems.append(f"{cw}: privileged is not allowed")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{cw}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{cw}: capabilities.add {caps['add']} is not allowed")
        seccomp = (_effective(template, c, "seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{cw}: seccompProfile.type must be RuntimeDefault (got {seccomp})")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(
                f"{cw}: readOnlyRootFilesystem must be true (emptyDir for writable paths)"
            )
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{cw}: hostPort is not allowed")
    return problems
