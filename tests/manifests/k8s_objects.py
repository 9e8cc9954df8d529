"""Helpers over rendered Kubernetes objects (plain dicts from `kubectl kustomize`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ("kind", "production")
NAMESPACE = "seamless"
# Kubernetes version whose OpenAPI schema every object must satisfy (kind >= 0.24 runs 1.31).
KUBERNETES_VERSION = "1.31"

POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
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


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    if obj["kind"] in POD_TEMPLATE_KINDS:
        return obj["spec"]["template"]
    if obj["kind"] == "Pod":
        return obj
    return None


def workloads(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod template) for every object that runs pods."""
    for obj in objects:
        template = pod_template(obj)
        if template is not None:
            yield obj, template


def containers(template: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    spec = template["spec"]
    out = list(spec.get("containers", []))
    if init:
        out += spec.get("initContainers", []) + spec.get("ephemeralContainers", [])
    return out


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


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
