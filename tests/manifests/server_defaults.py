"""The fields the API server fills in when it stores an object, per kind we render.

`kubectl apply` (client side) diffs the rendered object against the stored one. A field
the server defaults is harmless inside a map (the patch leaves it alone), but inside a
list kubectl replaces as a whole (volumeClaimTemplates, NetworkPolicy rules, a Service's
or container's ports where the default sits in every item) a missing default makes the
two lists differ on every apply, and the object reports `configured` forever. So the
manifests spell every default below out; test_manifests_idempotent.py checks it.

Kubernetes 1.31 (kind >= 0.24). Fields the server *allocates* per cluster (a Service's
clusterIP and ipFamilies, a PVC's storageClassName) cannot be spelled out and are not
listed. A Deployment scaled by an HPA must not carry `replicas` at all (the HPA owns it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Default:
    """`path` (dots, `[*]` for every list item) must be present.

    `optional`: only where the path's parent exists (a probe's fields, where there is a
    probe). `when` restricts the rule to the objects it holds for. `value` is the server's
    default, quoted in the failure message (the manifest may choose another value).
    """

    path: str
    value: Any
    when: Callable[[Obj], bool] | None = None
    optional: bool = False


def _get(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _rolling(path: str) -> Callable[[Obj], bool]:
    return lambda obj: _get(obj, path) == "RollingUpdate"


# Every pod template (relative to the template).
POD = [
    Default("spec.restartPolicy", "Always"),
    Default("spec.dnsPolicy", "ClusterFirst"),
    Default("spec.schedulerName", "default-scheduler"),
    Default("spec.terminationGracePeriodSeconds", 30),
    Default("spec.securityContext", {}),
    Default("spec.volumes[*].configMap.defaultMode", 0o644, optional=True),
    Default("spec.volumes[*].secret.defaultMode", 0o644, optional=True),
]
CONTAINER = [
    Default("imagePullPolicy", "IfNotPresent (tagged image)"),
    Default("terminationMessagePath", "/dev/termination-log"),
    Default("terminationMessagePolicy", "File"),
    Default("ports[*].protocol", "TCP"),
    Default("env[*].valueFrom.fieldRef.apiVersion", "v1", optional=True),
    *(
        Default(f"{probe}.{field}", value, optional=True)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
        for field, value in (
            ("timeoutSeconds", 1),
            ("periodSeconds", 10),
            ("successThreshold", 1),
            ("failureThreshold", 3),
            ("httpGet.scheme", "HTTP"),
        )
    ),
]
POD_TEMPLATE_AT = {
    "Deployment": "spec.template",
    "StatefulSet": "spec.template",
    "CronJob": "spec.jobTemplate.spec.template",
    "Job": "spec.template",
}

BY_KIND: dict[str, list[Default]] = {
    "Deployment": [
        Default("spec.revisionHistoryLimit", 10),
        Default("spec.progressDeadlineSeconds", 600),
        Default("spec.strategy.type", "RollingUpdate"),
        Default("spec.strategy.rollingUpdate.maxSurge", "25%", _rolling("spec.strategy.type")),
        Default(
            "spec.strategy.rollingUpdate.maxUnavailable", "25%", _rolling("spec.strategy.type")
        ),
    ],
    "StatefulSet": [
        Default("spec.replicas", 1),
        Default("spec.podManagementPolicy", "OrderedReady"),
        Default("spec.revisionHistoryLimit", 10),
        Default("spec.updateStrategy.type", "RollingUpdate"),
        Default(
            "spec.updateStrategy.rollingUpdate.partition", 0, _rolling("spec.updateStrategy.type")
        ),
        Default("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Retain"),
        Default("spec.persistentVolumeClaimRetentionPolicy.whenScaled", "Retain"),
        # Stored with every claim template; the list is replaced whole by kubectl apply.
        Default("spec.volumeClaimTemplates[*].apiVersion", "v1"),
        Default("spec.volumeClaimTemplates[*].kind", "PersistentVolumeClaim"),
        Default("spec.volumeClaimTemplates[*].metadata.creationTimestamp", None),
        Default("spec.volumeClaimTemplates[*].spec.volumeMode", "Filesystem"),
        Default("spec.volumeClaimTemplates[*].status.phase", "Pending"),
    ],
    "Job": [
        Default("spec.backoffLimit", 6),
        Default("spec.completions", 1),
        Default("spec.parallelism", 1),
        Default("spec.completionMode", "NonIndexed"),
        Default("spec.suspend", False),
        Default("spec.podReplacementPolicy", "TerminatingOrFailed"),
    ],
    "CronJob": [
        Default("spec.suspend", False),
        Default("spec.concurrencyPolicy", "Allow"),
        Default("spec.successfulJobsHistoryLimit", 3),
        Default("spec.failedJobsHistoryLimit", 1),
    ],
    "Service": [
        Default("spec.type", "ClusterIP"),
        Default("spec.sessionAffinity", "None"),
        Default("spec.internalTrafficPolicy", "Cluster"),
        Default("spec.ports[*].protocol", "TCP"),
        Default(
            "spec.externalTrafficPolicy",
            "Cluster",
            lambda o: _get(o, "spec.type") in ("NodePort", "LoadBalancer"),
        ),
    ],
    "NetworkPolicy": [
        Default("spec.policyTypes", ["Ingress"]),
        Default("spec.ingress[*].ports[*].protocol", "TCP"),
        Default("spec.egress[*].ports[*].protocol", "TCP"),
    ],
    "HorizontalPodAutoscaler": [
        Default("spec.minReplicas", 1),
        Default("spec.behavior.scaleDown.selectPolicy", "Max"),
        Default("spec.behavior.scaleDown.stabilizationWindowSeconds", 300),
        Default("spec.behavior.scaleDown.policies", [{"type": "Percent", "value": 100}]),
        Default("spec.behavior.scaleUp.selectPolicy", "Max"),
        Default("spec.behavior.scaleUp.stabilizationWindowSeconds", 0),
        Default("spec.behavior.scaleUp.policies", "Percent 100 + Pods 4 per 15 s"),
    ],
    "PersistentVolumeClaim": [Default("spec.volumeMode", "Filesystem")],
    "Namespace": [Default("metadata.labels.kubernetes.io/metadata.name", "<name>")],
}
# Kinds with no default worth spelling out (or none the server sets), listed so a new
# kind in the overlays fails the test until someone decides.
NO_DEFAULTS = {
    "ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "PodDisruptionBudget",
}  # fmt: skip

# Lists the server drops when they are empty (`ingress: []` is stored as no field).
DROPPED_WHEN_EMPTY = ("spec.ingress", "spec.egress")


def _missing(node: Any, keys: list[str], where: str, optional: bool) -> Iterator[str]:
    """Locations where `keys` is absent. Lists (`[*]`) are checked item by item; a missing
    map on the way counts as missing, unless the rule is `optional` (then the rule only
    applies where the parent exists, e.g. a probe's `httpGet`)."""
    key, rest = keys[0], keys[1:]
    each = key.endswith("[*]")
    name = key[:-3] if each else key
    here = f"{where}.{name}".lstrip(".")
    if not isinstance(node, dict):
        return
    child = node.get(name)
    if name not in node:
        if not each and (not rest or not optional):
            yield here
        return
    if not rest:
        return
    if each:
        for i, item in enumerate(child if isinstance(child, list) else []):
            yield from _missing(item, rest, f"{here}[{i}]", optional)
    else:
        yield from _missing(child, rest, here, optional)


def _absent(obj: Obj, rule: Default, prefix: str = "") -> list[str]:
    if rule.when is not None and not rule.when(obj):
        return []
    path = rule.path
    if path.startswith("metadata.labels."):  # label keys contain dots
        label = path[len("metadata.labels.") :]
        return [] if label in (obj["metadata"].get("labels") or {}) else [path]
    root = _get(obj, prefix) if prefix else obj
    found = _missing(root, path.split("."), "", rule.optional)
    return [f"{prefix}.{where}".lstrip(".") for where in found]


def missing_defaults(obj: Obj) -> list[str]:
    """`path (server default: value)` for every known default the object leaves out."""
    kind = obj["kind"]
    out: list[str] = []
    for rule in BY_KIND.get(kind, []):
        out += [f"{p} (server default: {rule.value!r})" for p in _absent(obj, rule)]
    template_at = POD_TEMPLATE_AT.get(kind)
    if template_at:
        for rule in POD:
            out += [
                f"{p} (server default: {rule.value!r})" for p in _absent(obj, rule, template_at)
            ]
        for c_key in ("initContainers", "containers"):
            for i, c in enumerate(_get(obj, f"{template_at}.spec.{c_key}") or []):
                for rule in CONTAINER:
                    out += [
                        f"{template_at}.spec.{c_key}[{i}].{p} (server default: {rule.value!r})"
                        for p in _absent(c, rule)
                    ]
    for path in DROPPED_WHEN_EMPTY:
        if _get(obj, path) == []:
            out.append(f"{path} is [] (the server drops it: leave it out)")
    return out


def kinds_without_a_decision(kinds: set[str]) -> set[str]:
    return kinds - set(BY_KIND) - NO_DEFAULTS
