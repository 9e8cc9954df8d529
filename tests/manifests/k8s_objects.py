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
    "pod_template", "selector_matches", "workloads",
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
