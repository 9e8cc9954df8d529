"""An offline model of the NetworkPolicies: which flows the rendered objects allow.

Shared by the manifests tests (tests/manifests/test_manifests_policy.py) and the flow table
of docs/kubernetes.md (flow_table.py), so the documented flows are the tested ones.

Every endpoint has an IP; pods also a namespace and labels. A flow src -> dst:port is
allowed only if src's egress allows it (when src is a pod of this namespace: other
namespaces and non-pods are not governed by these policies, so the model assumes the
worst, that they send anything) AND dst's ingress allows it. Peers match as an enforcing
controller matches them: a podSelector alone means this namespace; a namespaceSelector
(with or without podSelector) means pods of the matching namespaces; an ipBlock matches
any source address in the CIDR, pods' addresses included (what kindnet's
kube-network-policies did on the real cluster: `0.0.0.0/0` let other namespaces in).

Standard library only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
NAMESPACE = "seamless"
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")

# Pods the manifests do not declare but the policies are written for: Kubeflow Pipelines
# steps (labels set by the pipeline through kfp-kubernetes; the deploy step also gets the
# API-server label), and pods of the namespace that opt in as clients with the labels
# docs/kubernetes.md documents. Name -> (labels, how the docs call them).
PIPELINE_STEP = {
    "app.kubernetes.io/name": "pipeline-step",
    "seamless.dev/pipeline-step": "true",
    "seamless.dev/apiserver-client": "true",
}
SERVING_CLIENT = {"seamless.dev/serving-client": "true"}
FEATURE_CLIENT = {"seamless.dev/feature-client": "true"}
S3_CLIENT = {"seamless.dev/s3-client": "true"}
# Steps that send events to the receivers of `notifications:` (pipelines/training.py
# may_notify): validate, register, post-deploy check, monitor.
NOTIFIER = {"seamless.dev/notifier": "true"}
# The training-spark pipeline's data steps (Spark drivers) and the executor pods they
# start (components/common/spark_kubernetes.py: labels, pod template, fixed ports).
SPARK_DRIVER = {**PIPELINE_STEP, **S3_CLIENT, "seamless.dev/spark-driver": "true"}
SPARK_EXECUTOR = {**S3_CLIENT, "seamless.dev/spark-executor": "true"}
SYNTHETIC_PODS: dict[str, tuple[dict[str, str], str]] = {
    "pipeline-step": (PIPELINE_STEP, "pipeline steps (`seamless.dev/pipeline-step=true`)"),
    "serving-client": (SERVING_CLIENT, "pods labelled `seamless.dev/serving-client=true`"),
    "feature-client": (FEATURE_CLIENT, "pods labelled `seamless.dev/feature-client=true`"),
    "s3-client": (S3_CLIENT, "pods labelled `seamless.dev/s3-client=true`"),
    "notifier": (NOTIFIER, "steps that send notifications (`seamless.dev/notifier=true`)"),
    "spark-driver": (SPARK_DRIVER, "Spark drivers (`seamless.dev/spark-driver=true`)"),
    "spark-executor": (SPARK_EXECUTOR, "Spark executors (`seamless.dev/spark-executor=true`)"),
}
# Ports the synthetic pods listen on (the others are clients only).
SYNTHETIC_PORTS = {"spark-driver": (7078, 7079), "spark-executor": (7079,)}
# Addresses the model gives the namespace's pods (kind's pod network).
POD_IPS = ipaddress.ip_network("10.244.0.0/24")


def pod_template(obj: Obj) -> Obj | None:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]  # type: ignore[no-any-return]
    if obj["kind"] in POD_TEMPLATE_KINDS:
        return obj["spec"]["template"]  # type: ignore[no-any-return]
    if obj["kind"] == "Pod":
        return obj
    return None


def workloads(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod template) for every object that runs pods."""
    for obj in objects:
        template = pod_template(obj)
        if template is not None:
            yield obj, template


def containers(template: Obj, init: bool = True) -> list[Obj]:
    spec = template["spec"]
    out = list(spec.get("containers", []))
    if init:
        out += spec.get("initContainers", []) + spec.get("ephemeralContainers", [])
    return out


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
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


@dataclass
class Endpoint:
    """One end of a flow: a pod (namespace set) or a plain address (a node, a host)."""

    name: str
    ip: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    template: Obj | None = None


def _listening(name: str, listen: tuple[int, ...]) -> Obj | None:
    """A minimal pod template with `listen` as container ports (None: a client only)."""
    if not listen:
        return None
    ports = [{"containerPort": p} for p in listen]
    return {"metadata": {}, "spec": {"containers": [{"name": name, "ports": ports}]}}


def pods(objects: list[Obj]) -> dict[str, Endpoint]:
    """Every workload plus the synthetic pipeline step and clients, all in the namespace."""
    named: list[tuple[str, dict[str, str], Obj | None]] = [
        (obj["metadata"]["name"], template["metadata"].get("labels", {}), template)
        for obj, template in workloads(objects)
    ]
    named += [
        (name, labels, _listening(name, SYNTHETIC_PORTS.get(name, ())))
        for name, (labels, _) in SYNTHETIC_PODS.items()
    ]
    hosts = POD_IPS.hosts()
    return {
        name: Endpoint(name, str(next(hosts)), NAMESPACE, labels, template)
        for name, labels, template in named
    }


def ports(template: Obj | None) -> list[tuple[int, str | None]]:
    if template is None:
        return []
    return [
        (p["containerPort"], p.get("name"))
        for c in containers(template, init=False)
        for p in c.get("ports", [])
    ]


# A container port speaks TLS when its name says so (the convention the manifests follow,
# as service meshes read port names): `https`, `grpcs`, or a `tls-` prefix.
TLS_PORT_NAMES = ("https", "grpcs")


def speaks_tls(port_name: str | None) -> bool:
    return port_name is not None and (port_name in TLS_PORT_NAMES or port_name.startswith("tls-"))


def port_name(endpoint: Endpoint, port: int) -> str | None:
    return next((name for p, name in ports(endpoint.template) if p == port), None)


def port_allowed(rule_ports: list[Obj] | None, port: int, name: str | None) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in p or p["port"] == port or (name is not None and p["port"] == name):
            return True
        if isinstance(p["port"], int) and p.get("endPort") and p["port"] <= port <= p["endPort"]:
            return True
    return False


def in_block(block: Obj, ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address in ipaddress.ip_network(block["cidr"]) and not any(
        address in ipaddress.ip_network(e) for e in block.get("except") or []
    )


def peer_matches(peers: list[Obj] | None, policy_ns: str, other: Endpoint) -> bool:
    if peers is None:
        return True
    for peer in peers:
        if "ipBlock" in peer:
            if in_block(peer["ipBlock"], other.ip):
                return True
            continue
        if other.namespace is None:
            continue  # selectors select pods only
        if "namespaceSelector" in peer:
            ns_labels = {"kubernetes.io/metadata.name": other.namespace}
            if selector_matches(peer["namespaceSelector"], ns_labels) and (
                "podSelector" not in peer or selector_matches(peer["podSelector"], other.labels)
            ):
                return True
        elif other.namespace == policy_ns and selector_matches(peer["podSelector"], other.labels):
            return True
    return False


def allows(
    policies: list[Obj], direction: str, me: Endpoint, other: Endpoint,
    port: int, name: str | None,
) -> bool:  # fmt: skip
    """Whether `me`'s policies allow the flow in `direction` (ingress: other -> me)."""
    if me.namespace != NAMESPACE:
        return True  # a node, a host or another namespace: not governed by these policies
    policy_type = "Ingress" if direction == "ingress" else "Egress"
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace", NAMESPACE) == me.namespace
        and policy_type in p["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(p["spec"]["podSelector"], me.labels)
    ]
    if not selecting:
        return True  # not isolated (never the case here: default-deny selects every pod)
    peer_key = "from" if direction == "ingress" else "to"
    return any(
        peer_matches(rule.get(peer_key), p["metadata"].get("namespace", NAMESPACE), other)
        and port_allowed(rule.get("ports"), port, name)
        for p in selecting
        for rule in p["spec"].get(direction) or []
    )


@dataclass
class FlowModel:
    """Flows from the sources to every port of the namespace's pods, judged at both ends."""

    allowed: set[tuple[str, str, int]] = field(default_factory=set)
    # (src, dst, port, which end allows it) where only one end does.
    one_sided: set[tuple[str, str, int, str]] = field(default_factory=set)


def flows(objects: list[Obj], sources: list[Endpoint] | None = None) -> FlowModel:
    """The flows from `sources` (default: every pod of the namespace) to the namespace's pods."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    targets = pods(objects)
    model = FlowModel()
    for src in list(targets.values()) if sources is None else sources:
        for dst in targets.values():
            if src.name == dst.name:
                continue
            for port, name in ports(dst.template):
                out = allows(policies, "egress", src, dst, port, name)
                into = allows(policies, "ingress", dst, src, port, name)
                if out and into:
                    model.allowed.add((src.name, dst.name, port))
                elif src.namespace == NAMESPACE and (out or into):
                    model.one_sided.add((src.name, dst.name, port, "egress" if out else "ingress"))
    return model
