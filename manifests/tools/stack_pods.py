"""Rendered Kubernetes objects -> the containers a node would run, as plain data.

Used by docker_stack.py to run the workloads the manifests declare on Docker. Only what
the kubelet itself would resolve is resolved here: env (values, ConfigMap/Secret keys,
envFrom, fieldRefs, `$(VAR)` expansion), volumes (ConfigMap/Secret files with their
modes, emptyDir, PVCs and StatefulSet claim templates), the pod security context,
resource limits, ports and probes, and which Services select which pods. Anything the
Docker stack cannot reproduce faithfully is an error naming the object, never a guess.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
CLUSTER_DOMAIN = "cluster.local"


class StackError(Exception):
    """The manifests ask for something the Docker stack cannot run as declared."""


@dataclass
class FileVolume:
    """ConfigMap or Secret files: key -> content, owner group and mode as the kubelet sets."""

    files: dict[str, bytes]
    mode: int


@dataclass
class Mount:
    path: str
    read_only: bool
    kind: str  # "files" | "empty" | "memory" | "claim"
    source: str  # volume name (files/empty) or claim name
    sub_path: str | None = None
    files: FileVolume | None = None


@dataclass
class Probe:
    kind: str  # "http" | "exec" | "tcp"
    port: int | None = None
    path: str = "/"
    command: list[str] = field(default_factory=list)
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    scheme: str = "HTTP"  # httpGet only; HTTPS is not verified, as the kubelet does not


@dataclass
class ContainerSpec:
    """One container of one pod, with everything resolved."""

    workload: str  # e.g. "Deployment/mlflow"
    pod: str  # container name on Docker: <workload name>-0
    name: str
    image: str
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    mounts: list[Mount]
    ports: dict[str, int]
    user: int | None
    group: int | None
    fs_group: int | None
    read_only_root: bool
    drop_all_caps: bool
    no_new_privileges: bool
    memory_limit: str | None
    cpu_limit: str | None
    readiness: Probe | None
    liveness: Probe | None
    startup: Probe | None
    labels: dict[str, str]
    init: bool = False


@dataclass
class ServiceSpec:
    name: str
    namespace: str
    selector: dict[str, str]
    ports: list[tuple[int, int | str]]  # (port, targetPort)

    def aliases(self) -> list[str]:
        """The DNS names a pod resolves for this Service."""
        ns = self.namespace
        return [
            self.name,
            f"{self.name}.{ns}",
            f"{self.name}.{ns}.svc",
            f"{self.name}.{ns}.svc.{CLUSTER_DOMAIN}",
        ]


def where(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def index(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def _config_data(obj: Obj) -> dict[str, bytes]:
    if obj["kind"] == "Secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return data
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _lookup(objs: dict[tuple[str, str], Obj], kind: str, name: str, owner: str) -> dict[str, bytes]:
    obj = objs.get((kind, name))
    if obj is None:
        raise StackError(f"{owner} references {kind}/{name}, which the manifests do not define.")
    return _config_data(obj)


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, the rest stays."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(repl, text)


def _field_ref(path: str, pod: Obj, meta: Obj, pod_name: str, owner: str) -> str:
    values = {
        "metadata.name": pod_name,
        "metadata.namespace": meta.get("namespace", "default"),
        "spec.serviceAccountName": pod.get("serviceAccountName", "default"),
        "spec.nodeName": "docker-stack",
    }
    if path not in values:
        raise StackError(f"{owner}: fieldRef {path} is not supported by the Docker stack.")
    return values[path]


def resolve_env(
    container: Obj, pod: Obj, meta: Obj, pod_name: str, objs: dict[tuple[str, str], Obj], owner: str
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        ref = source["configMapRef" if kind == "ConfigMap" else "secretRef"]
        # `optional: true`: a missing object adds nothing, as the kubelet does.
        if ref.get("optional") and (kind, ref["name"]) not in objs:
            continue
        data = _lookup(objs, kind, ref["name"], owner)
        env.update({prefix + k: v.decode() for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        ref = var.get("valueFrom") or {}
        if "secretKeyRef" in ref or "configMapKeyRef" in ref:
            kind = "Secret" if "secretKeyRef" in ref else "ConfigMap"
            key_ref = ref["secretKeyRef"] if kind == "Secret" else ref["configMapKeyRef"]
            if key_ref.get("optional") and (kind, key_ref["name"]) not in objs:
                continue
            data = _lookup(objs, kind, key_ref["name"], owner)
            if key_ref["key"] not in data and key_ref.get("optional"):
                continue
            if key_ref["key"] not in data:
                raise StackError(
                    f"{owner}: env {name} needs key {key_ref['key']!r} of "
                    f"{kind}/{key_ref['name']}, which has {sorted(data)}."
                )
            env[name] = data[key_ref["key"]].decode()
        elif "fieldRef" in ref:
            env[name] = _field_ref(ref["fieldRef"]["fieldPath"], pod, meta, pod_name, owner)
        else:
            raise StackError(f"{owner}: env {name} uses {sorted(ref)}, not supported here.")
    return env


def _probe(spec: Obj | None, ports: dict[str, int], owner: str) -> Probe | None:
    if not spec:
        return None
    period = float(spec.get("periodSeconds", 10))
    timeout = float(spec.get("timeoutSeconds", 1))
    threshold = int(spec.get("failureThreshold", 3))
    if "httpGet" in spec:
        http = spec["httpGet"]
        port = _port(http["port"], ports, owner)
        scheme = http.get("scheme", "HTTP")
        if scheme not in ("HTTP", "HTTPS"):
            raise StackError(f"{owner}: httpGet scheme {scheme!r} is not HTTP or HTTPS.")
        path = http.get("path", "/")
        return Probe("http", port, path, [], period, timeout, threshold, scheme)
    if "tcpSocket" in spec:
        port = _port(spec["tcpSocket"]["port"], ports, owner)
        return Probe("tcp", port, "/", [], period, timeout, threshold)
    if "exec" in spec:
        command = list(spec["exec"]["command"])
        return Probe("exec", None, "/", command, period, timeout, threshold)
    raise StackError(f"{owner}: probe kind {sorted(spec)} is not supported by the Docker stack.")


def _port(port: int | str, ports: dict[str, int], owner: str) -> int:
    if isinstance(port, int):
        return port
    if port not in ports:
        raise StackError(f"{owner}: named port {port!r} is not declared (have {sorted(ports)}).")
    return ports[port]


def _mounts(
    container: Obj, pod: Obj, objs: dict[tuple[str, str], Obj], claims: list[str], owner: str
) -> list[Mount]:
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        name = vm["name"]
        read_only = bool(vm.get("readOnly", False))
        sub_path = vm.get("subPath")
        if name in claims and name not in volumes:
            mounts.append(Mount(vm["mountPath"], read_only, "claim", name, sub_path))
            continue
        vol = volumes.get(name)
        if vol is None:
            raise StackError(f"{owner}: volumeMount {name!r} names no volume of the pod.")
        if "configMap" in vol or "secret" in vol:
            kind = "ConfigMap" if "configMap" in vol else "Secret"
            src = vol["configMap"] if kind == "ConfigMap" else vol["secret"]
            ref = src["name"] if kind == "ConfigMap" else src["secretName"]
            data = _lookup(objs, kind, ref, owner)
            if src.get("items"):
                data = {item["path"]: data[item["key"]] for item in src["items"]}
            mode = int(src.get("defaultMode", 0o644))
            mounts.append(
                Mount(vm["mountPath"], True, "files", name, sub_path, FileVolume(data, mode))
            )
        elif "projected" in vol:
            # ConfigMap and Secret sources merged into one folder (e.g. MinIO's certs dir).
            data = {}
            for source in vol["projected"].get("sources") or []:
                kind = "ConfigMap" if "configMap" in source else "Secret"
                src = source.get("configMap") or source.get("secret")
                if src is None:
                    raise StackError(f"{owner}: projected source {sorted(source)} not supported.")
                found = _lookup(objs, kind, src["name"], owner)
                if src.get("items"):
                    found = {item["path"]: found[item["key"]] for item in src["items"]}
                data.update(found)
            mode = int(vol["projected"].get("defaultMode", 0o644))
            mounts.append(
                Mount(vm["mountPath"], True, "files", name, sub_path, FileVolume(data, mode))
            )
        elif "emptyDir" in vol:
            medium = (vol["emptyDir"] or {}).get("medium")
            mounts.append(
                Mount(
                    vm["mountPath"],
                    read_only,
                    "memory" if medium == "Memory" else "empty",
                    name,
                    sub_path,
                )
            )
        elif "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            if ("PersistentVolumeClaim", claim) not in objs:
                raise StackError(f"{owner}: volume {name!r} uses PVC {claim!r}, not defined.")
            mounts.append(Mount(vm["mountPath"], read_only, "claim", claim, sub_path))
        else:
            raise StackError(f"{owner}: volume {name!r} type {sorted(vol)} is not supported.")
    return mounts


def _container(
    c: Obj,
    pod: Obj,
    meta: Obj,
    obj: Obj,
    objs: dict[tuple[str, str], Obj],
    claims: list[str],
    init: bool,
) -> ContainerSpec:
    owner = f"{where(obj)} container {c['name']}"
    pod_name = f"{obj['metadata']['name']}-0"
    pod_sc = pod.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    ports = {
        p.get("name", str(p["containerPort"])): int(p["containerPort"])
        for p in c.get("ports") or []
    }
    env = resolve_env(c, pod, meta, pod_name, objs, owner)
    command = [expand(a, env) for a in c["command"]] if c.get("command") else None
    args = [expand(a, env) for a in c["args"]] if c.get("args") else None
    limits = (c.get("resources") or {}).get("limits") or {}
    caps = (sc.get("capabilities") or {}).get("drop") or []
    return ContainerSpec(
        workload=where(obj),
        pod=pod_name,
        name=c["name"],
        image=c["image"],
        command=command,
        args=args,
        env=env,
        mounts=_mounts(c, pod, objs, claims, owner),
        ports=ports,
        user=sc.get("runAsUser", pod_sc.get("runAsUser")),
        group=sc.get("runAsGroup", pod_sc.get("runAsGroup")),
        fs_group=pod_sc.get("fsGroup"),
        read_only_root=bool(sc.get("readOnlyRootFilesystem", False)),
        drop_all_caps="ALL" in caps,
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
        memory_limit=limits.get("memory"),
        cpu_limit=str(limits["cpu"]) if "cpu" in limits else None,
        readiness=_probe(c.get("readinessProbe"), ports, owner),
        liveness=_probe(c.get("livenessProbe"), ports, owner),
        startup=_probe(c.get("startupProbe"), ports, owner),
        labels=dict((pod.get("metadata") or meta).get("labels") or {}),
        init=init,
    )


def pod_template(obj: Obj) -> Obj:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj["spec"]["template"]


def containers_of(obj: Obj, objects: list[Obj]) -> list[ContainerSpec]:
    """Init containers (in order) then the app containers of one workload's pod template."""
    objs = index(objects)
    template = pod_template(obj)
    pod = template["spec"]
    meta = {
        **template.get("metadata", {}),
        "namespace": obj["metadata"].get("namespace", "default"),
    }
    template_with_meta = {**pod, "metadata": template.get("metadata", {})}
    claims = [t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates") or []]
    out = [
        _container(c, template_with_meta, meta, obj, objs, claims, True)
        for c in pod.get("initContainers") or []
    ]
    out += [
        _container(c, template_with_meta, meta, obj, objs, claims, False) for c in pod["containers"]
    ]
    return out


def services(objects: list[Obj]) -> list[ServiceSpec]:
    out = []
    for obj in objects:
        if obj["kind"] != "Service":
            continue
        spec = obj["spec"]
        out.append(
            ServiceSpec(
                name=obj["metadata"]["name"],
                namespace=obj["metadata"].get("namespace", "default"),
                selector=dict(spec.get("selector") or {}),
                ports=[(int(p["port"]), p.get("targetPort", p["port"])) for p in spec["ports"]],
            )
        )
    return out


def selects(service: ServiceSpec, labels: dict[str, str]) -> bool:
    return bool(service.selector) and all(labels.get(k) == v for k, v in service.selector.items())


def aliases_for(spec: ContainerSpec, svcs: list[ServiceSpec]) -> list[str]:
    """The Service names that resolve to this pod; a Service whose port differs from its
    target port cannot be reproduced by a DNS alias, so it is an error."""
    names: list[str] = []
    for svc in svcs:
        if not selects(svc, spec.labels):
            continue
        for port, target in svc.ports:
            target_port = _port(target, spec.ports, f"Service/{svc.name}")
            if target_port != port:
                raise StackError(
                    f"Service/{svc.name} maps port {port} to {target_port}; the Docker stack "
                    "gives Services as network aliases and cannot remap ports."
                )
        names += svc.aliases()
    return names


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]
