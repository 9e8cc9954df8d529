#!/usr/bin/env python3
"""Run the workloads a rendered overlay declares as containers on one Docker network.

    python manifests/tools/docker_stack.py images            # build the stand-in images
    python manifests/tools/docker_stack.py up [--overlay kind] [--keep]
    python manifests/tools/docker_stack.py down

The manifests are the only source of truth: each Deployment/StatefulSet pod becomes a
container with the image, command, args, env (ConfigMap/Secret references resolved),
volumes, user, read-only root, dropped capabilities, limits and probes the rendered
objects declare, and every Service that selects it becomes a network alias (`mlflow`,
`mlflow.seamless.svc.cluster.local`, ...). Third-party images are swapped for local
builds through docker/stack/substitutes.yaml and nothing else is changed. Jobs (e.g.
`minio-buckets`) run to completion once the workloads are ready, retried as the Job
controller would.

Not reproduced (Docker has no equivalent): NetworkPolicies, replicas beyond one pod per
workload, HPA/PDB, and the kubelet's restart backoff (Docker restarts immediately).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack_pods import (
    ContainerSpec,
    Obj,
    Probe,
    StackError,
    aliases_for,
    containers_of,
    index,
    services,
    workloads,
)

ROOT = Path(__file__).resolve().parents[2]
SUBSTITUTES = ROOT / "docker" / "stack" / "substitutes.yaml"
STATE = ROOT / "build" / "stack"
LABEL = "dev.seamless.stack"
# The kubelet's HTTPS probes check neither the certificate nor its name; neither do ours.
_UNVERIFIED = ssl.create_default_context()
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


def docker(
    *args: str, check: bool = True, timeout: float = 600, **kw: Any
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and result.returncode != 0:
        raise StackError(f"docker {args[0]} failed: {result.stderr.strip()[-800:]}")
    return result


# ---- rendering and images --------------------------------------------------------------


def kubectl() -> str:
    env = os.environ.get("KUBECTL")
    if env:
        return env
    cached = ROOT / "build" / "tools" / "kubectl"
    if not cached.is_file():
        subprocess.run([sys.executable, str(ROOT / "manifests/tools/fetch_kubectl.py")], check=True)
    return str(cached)


def render(overlay: str = "kind") -> list[Obj]:
    """`kubectl kustomize` of an overlay (its secret files are generated first if missing)."""
    path = ROOT / "manifests" / "overlays" / overlay
    subprocess.run(
        [sys.executable, str(ROOT / "manifests/tools/gen_secrets.py"), str(path)],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [kubectl(), "kustomize", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def substitutes() -> dict[str, dict[str, str]]:
    data = yaml.safe_load(SUBSTITUTES.read_text())
    for upstream, entry in data.items():
        for key in ("image", "context"):
            if key not in entry:
                raise StackError(f"{SUBSTITUTES}: entry {upstream!r} has no {key!r}.")
    return data  # type: ignore[no-any-return]


def substitute_ref(entry: dict[str, str], base_image: str) -> str:
    """Immutable tag: digest of the build context and of the base image it starts from."""
    digest = hashlib.sha256(base_image.encode())
    context = ROOT / entry["context"]
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode())
        digest.update(path.read_bytes())
    return f"{entry['image']}:{digest.hexdigest()[:12]}"


def build_substitutes(base_image: str) -> dict[str, str]:
    """Build (or reuse) every stand-in image; returns upstream reference -> local one."""
    if docker("image", "inspect", base_image, check=False).returncode != 0:
        raise StackError(f"base image {base_image} is not present: run `make base-image` first.")
    refs = {}
    for upstream, entry in substitutes().items():
        ref = substitute_ref(entry, base_image)
        if docker("image", "inspect", ref, check=False).returncode != 0:
            print(f"stack: building {ref} for {upstream}", file=sys.stderr)
            docker(
                "build",
                "-q",
                "--build-arg",
                f"BASE_IMAGE={base_image}",
                "-t",
                ref,
                str(ROOT / entry["context"]),
                timeout=1200,
            )
        refs[upstream] = ref
    return refs


# ---- volumes -----------------------------------------------------------------------------


def _own(path: Path, group: int | None, mode: int) -> None:
    os.chown(path, 0, group if group is not None else 0)
    os.chmod(path, mode)


def _claim_dir(workdir: Path, spec: ContainerSpec, claim: str, is_template: bool) -> Path:
    # A claim template gives each StatefulSet pod its own volume (<claim>-<pod>).
    path = workdir / "claims" / (f"{claim}-{spec.pod}" if is_template else claim)
    if not path.exists():
        path.mkdir(parents=True)
        # fsGroup: the volume is group-owned, group-writable and setgid, as the kubelet does.
        _own(path, spec.fs_group, 0o2770 if spec.fs_group is not None else 0o777)
    return path


def mount_args(spec: ContainerSpec, workdir: Path, template_claims: set[str]) -> list[str]:
    args: list[str] = []
    pod_dir = workdir / "pods" / spec.pod
    for m in spec.mounts:
        ro = ",readonly" if m.read_only else ""
        if m.kind == "memory":
            args += ["--tmpfs", f"{m.path}:rw,mode=1777"]
            continue
        if m.kind == "files":
            assert m.files is not None
            src = pod_dir / "files" / m.source
            if not src.exists():
                src.mkdir(parents=True)
                os.chmod(src, 0o755)
                for key, data in m.files.files.items():
                    target = src / key
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    # Files are root-owned, group fsGroup when the pod has one, mode defaultMode.
                    _own(target, spec.fs_group, m.files.mode)
        elif m.kind == "empty":
            src = pod_dir / "empty" / m.source
            if not src.exists():
                src.mkdir(parents=True)
                os.chmod(src, 0o777)  # emptyDir is world-writable, as on a node
        else:
            src = _claim_dir(workdir, spec, m.source, m.source in template_claims)
        if m.sub_path:
            src = src / m.sub_path
            if not src.exists():
                raise StackError(
                    f"{spec.workload}: subPath {m.sub_path!r} of volume {m.source!r} is missing."
                )
        args += ["--mount", f"type=bind,source={src},target={m.path}{ro}"]
    return args


# ---- containers --------------------------------------------------------------------------


def _memory(limit: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g", "K": "k", "M": "m", "G": "g"}
    for suffix, unit in units.items():
        if limit.endswith(suffix):
            return limit[: -len(suffix)] + unit
    return limit


def _cpus(limit: str) -> str:
    return str(int(limit[:-1]) / 1000) if limit.endswith("m") else limit


def run_args(
    spec: ContainerSpec,
    image: str,
    network: str,
    aliases: list[str],
    workdir: Path,
    template_claims: set[str],
    detach: bool,
) -> list[str]:
    env_file = workdir / "env" / f"{spec.pod}-{spec.name}.env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for key, value in spec.env.items():
        if "\n" in value:
            raise StackError(
                f"{spec.workload}: env {key} holds a newline; docker --env-file cannot pass it."
            )
        lines.append(f"{key}={value}")
    # Secrets go through a 0600 file, not the docker command line.
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    name = spec.pod if not spec.init else f"{spec.pod}-init-{spec.name}"
    args = [
        "run",
        "--name",
        name,
        "--label",
        f"{LABEL}={network}",
        "--hostname",
        spec.pod,
        "--network",
        network,
        "--env-file",
        str(env_file),
    ]
    args += ["-d", "--restart", "unless-stopped"] if detach else ["--rm"]
    if detach:
        # Loopback-only host ports, the stack's stand-in for kind's NodePorts.
        for port in spec.ports.values():
            args += ["-p", f"127.0.0.1::{port}"]
    for alias in aliases:
        args += ["--network-alias", alias]
    if spec.user is not None:
        args += ["--user", f"{spec.user}:{spec.group if spec.group is not None else spec.user}"]
    if spec.fs_group is not None:
        args += ["--group-add", str(spec.fs_group)]
    if spec.read_only_root:
        args.append("--read-only")
    if spec.drop_all_caps:
        args += ["--cap-drop", "ALL"]
    if spec.no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if spec.memory_limit:
        args += ["--memory", _memory(spec.memory_limit)]
    if spec.cpu_limit:
        args += ["--cpus", _cpus(spec.cpu_limit)]
    args += mount_args(spec, workdir, template_claims)
    # Kubernetes: command replaces the image's ENTRYPOINT (and drops its CMD), args its CMD.
    tail: list[str] = []
    if spec.command:
        args += ["--entrypoint", spec.command[0]]
        tail = spec.command[1:]
    args.append(image)
    return args + tail + (spec.args or [])


@dataclass
class Pod:
    spec: ContainerSpec
    container: str
    ip: str = ""


@dataclass
class Stack:
    """The running stack: one network, one container per workload, host folders as volumes."""

    objects: list[Obj]
    images: dict[str, str]
    network: str = "seamless-stack"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="seamless-stack-")))
    pods: dict[str, Pod] = field(default_factory=dict)

    def image(self, ref: str) -> str:
        local = self.images.get(ref, ref)
        if docker("image", "inspect", local, check=False).returncode != 0:
            hint = (
                " (a project image: `make images`)"
                if ref.startswith("localhost/")
                else (f" (third-party: add it to {SUBSTITUTES.relative_to(ROOT)})")
            )
            raise StackError(f"image {local} is not present locally{hint}.")
        return local

    def _template_claims(self, obj: Obj) -> set[str]:
        return {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates") or []}

    def up(self, names: list[str] | None = None) -> None:
        """Start every workload (or the named ones) and wait until each has started."""
        docker("network", "create", "--label", f"{LABEL}={self.network}", self.network)
        svcs = services(self.objects)
        chosen = [
            w for w in workloads(self.objects) if names is None or w["metadata"]["name"] in names
        ]
        for obj in chosen:
            specs = containers_of(obj, self.objects)
            claims = self._template_claims(obj)
            for spec in specs:
                image = self.image(spec.image)
                if spec.init:
                    result = docker(
                        *run_args(spec, image, self.network, [], self.workdir, claims, False),
                        check=False,
                        timeout=900,
                    )
                    if result.returncode != 0:
                        raise StackError(
                            f"{spec.workload} init container {spec.name} failed: "
                            f"{result.stderr.strip()[-800:]}"
                        )
                    continue
                args = run_args(
                    spec, image, self.network, aliases_for(spec, svcs), self.workdir, claims, True
                )
                docker(*args)
                self.pods[obj["metadata"]["name"]] = Pod(spec, spec.pod)
        for pod in self.pods.values():
            pod.ip = self._ip(pod.container)

    def _ip(self, container: str) -> str:
        out = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container).stdout
        return str(json.loads(out)[self.network]["IPAddress"])

    def ip(self, workload: str) -> str:
        return self.pods[workload].ip

    def address(self, workload: str, port: int) -> tuple[str, int]:
        """The loopback address the host reaches a workload's container port on."""
        out = docker("port", self.pods[workload].container, f"{port}/tcp").stdout.split()[0]
        host, _, host_port = out.rpartition(":")
        return host, int(host_port)

    def url(self, workload: str, port: int, scheme: str = "http") -> str:
        host, host_port = self.address(workload, port)
        return f"{scheme}://{host}:{host_port}"

    def logs(self, workload: str, lines: int = 40) -> str:
        result = docker("logs", "--tail", str(lines), self.pods[workload].container, check=False)
        return (result.stdout + result.stderr).strip()

    def probe(self, workload: str, probe: Probe) -> bool:
        """One probe attempt from the node's side, as the kubelet makes it."""
        pod = self.pods[workload]
        try:
            if probe.kind == "http":
                conn = (
                    http.client.HTTPSConnection(
                        pod.ip, probe.port, timeout=probe.timeout, context=_UNVERIFIED
                    )
                    if probe.scheme == "HTTPS"
                    else http.client.HTTPConnection(pod.ip, probe.port, timeout=probe.timeout)
                )
                try:
                    conn.request("GET", probe.path)
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if probe.kind == "tcp":
                with socket.create_connection((pod.ip, probe.port or 0), timeout=probe.timeout):
                    return True
            result = docker(
                "exec", pod.container, *probe.command, check=False, timeout=max(probe.timeout, 5)
            )
            return result.returncode == 0
        except (OSError, http.client.HTTPException, subprocess.TimeoutExpired):
            return False

    def wait(self, workload: str, which: str = "ready", timeout: float = 240) -> None:
        """Until the startup probe, then the readiness (or liveness) probe, passes."""
        spec = self.pods[workload].spec
        probes = [
            p for p in (spec.startup, spec.readiness if which == "ready" else spec.liveness) if p
        ]
        deadline = time.monotonic() + timeout
        for probe in probes:
            while not self.probe(workload, probe):
                state = docker(
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{.RestartCount}}",
                    self.pods[workload].container,
                    check=False,
                ).stdout.split()
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{spec.workload} is not {which} after {timeout:.0f} s "
                        f"(container {' restarts '.join(state)}); last log lines:\n"
                        f"{self.logs(workload)}"
                    )
                time.sleep(1)

    def run_job(self, cronjob: str, command: list[str] | None = None, timeout: float = 900) -> str:
        """Run a CronJob's pod once to completion (`kubectl create job --from=cronjob/...`);
        `command` replaces the container's command for a one-off task in the same pod."""
        obj = index(self.objects).get(("CronJob", cronjob))
        if obj is None:
            raise StackError(f"CronJob/{cronjob} is not in the manifests.")
        return self.run_once(obj, command, timeout)

    def run_once(self, obj: Obj, command: list[str] | None = None, timeout: float = 900) -> str:
        """Run a Job's or CronJob's pod to completion (init containers first); the app
        container's output. `command` replaces the app container's command."""
        svcs = services(self.objects)
        specs = containers_of(obj, [*self.objects, obj])
        if sum(not s.init for s in specs) != 1:
            raise StackError(f"{specs[0].workload}: only one app container is supported.")
        out = ""
        for spec in specs:
            if command is not None and not spec.init:
                spec.command, spec.args = command, None
            args = run_args(
                spec,
                self.image(spec.image),
                self.network,
                aliases_for(spec, svcs),
                self.workdir,
                set(),
                False,
            )
            result = docker(*args, check=False, timeout=timeout)
            if result.returncode != 0:
                raise StackError(
                    f"{spec.workload} container {spec.name} failed (exit {result.returncode}):\n"
                    f"{(result.stdout + result.stderr).strip()[-3000:]}"
                )
            out = result.stdout
        return out

    def complete_jobs(self, names: list[str] | None = None) -> dict[str, str]:
        """Run every Job of the manifests (or the named ones) to completion, one pod at a
        time, as the Job controller would: a failed pod is replaced after a backoff (10 s,
        doubling, at most 6 min) until `backoffLimit` failures or `activeDeadlineSeconds`.
        Returns each Job's output; a Job that fails is an error with its last pod's log."""
        outputs: dict[str, str] = {}
        for obj in (o for o in self.objects if o["kind"] == "Job"):
            name = obj["metadata"]["name"]
            if names is not None and name not in names:
                continue
            spec = obj["spec"]
            limit = int(spec.get("backoffLimit", 6))
            deadline = time.monotonic() + float(spec.get("activeDeadlineSeconds", 3600))
            failures = 0
            while True:
                try:
                    outputs[name] = self.run_once(obj, timeout=max(deadline - time.monotonic(), 1))
                    break
                except (StackError, subprocess.TimeoutExpired) as exc:
                    failures += 1
                    delay = min(10 * 2 ** (failures - 1), 360)
                    if failures > limit or time.monotonic() + delay > deadline:
                        raise StackError(
                            f"Job/{name} failed ({failures} pods, backoffLimit {limit}): {exc}"
                        ) from exc
                    print(f"stack: Job/{name} pod failed, retrying in {delay} s", file=sys.stderr)
                    time.sleep(delay)
        return outputs

    def down(self) -> None:
        ids = docker(
            "ps", "-aq", "--filter", f"label={LABEL}={self.network}", check=False
        ).stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def remove_all() -> None:
    """Remove every container and network any stack left behind (`down`)."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)
    nets = docker("network", "ls", "-q", "--filter", f"label={LABEL}", check=False).stdout.split()
    if nets:
        docker("network", "rm", *nets, check=False)


def base_image() -> str:
    base = os.environ.get("BASE_IMAGE")
    if not base:
        raise StackError("set BASE_IMAGE to the offline base image (`make base-image` prints it).")
    return base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["images", "up", "down"])
    parser.add_argument("--overlay", default="kind")
    args = parser.parse_args(argv)
    try:
        if args.command == "images":
            for upstream, ref in build_substitutes(base_image()).items():
                print(f"{upstream} -> {ref}")
        elif args.command == "down":
            remove_all()
        else:
            stack = Stack(render(args.overlay), build_substitutes(base_image()))
            stack.up()
            for name in stack.pods:
                stack.wait(name, "ready" if name != "serving" else "live")
            for job in stack.complete_jobs():
                print(f"{job:14} Job completed")
            for name in stack.pods:
                ports = stack.pods[name].spec.ports.values()
                urls = " ".join(f"127.0.0.1:{stack.address(name, port)[1]}" for port in ports)
                print(f"{name:14} pod {stack.ip(name):15} host {urls}")
            print(
                "stack is up; `python manifests/tools/docker_stack.py down` removes it "
                f"(volumes in {stack.workdir})"
            )
    except (StackError, subprocess.CalledProcessError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
