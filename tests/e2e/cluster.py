"""The e2e tier's cluster plumbing: which cluster, is it there, wait for a Job, reach serving.

Works against whatever cluster kubectl's configuration points at (`KUBECONFIG`, the
current context, or a context chosen with `--kube-context` / `SEAMLESS_KUBE_CONTEXT`),
kind or not. Every call to the cluster is bounded. The parts that need no cluster
(reading Job conditions, the failure message, NodePort candidates, the port-forward
banner) are plain functions, unit-tested in test_cluster_helpers.py; the rest runs in
the e2e tier itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "seamless"
CONTEXT_ENV = "SEAMLESS_KUBE_CONTEXT"
# Seconds to decide whether a cluster is there at all: CI and the build machines have none.
REACH_TIMEOUT = 5
HOW_TO_POINT = (
    "point KUBECONFIG at a cluster (or pass --kube-context / set SEAMLESS_KUBE_CONTEXT) "
    "with the overlay deployed; with kind: make kind-up images-load deploy "
    "(see docs/kubernetes.md)"
)
Obj = dict[str, Any]


def kubectl_binary(environ: Mapping[str, str] = os.environ) -> str:
    """$KUBECTL, else the one `make kubectl` fetches, else kubectl on PATH."""
    fetched = ROOT / "build" / "tools" / "kubectl"
    return environ.get("KUBECTL") or (str(fetched) if fetched.exists() else "kubectl")


def kube_context(option: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The context to use: the pytest option, else SEAMLESS_KUBE_CONTEXT, else kubectl's current."""
    return option or environ.get(CONTEXT_ENV) or None


@dataclass(frozen=True)
class Kubectl:
    binary: str
    context: str | None = None
    namespace: str = NAMESPACE

    def argv(self, *args: str, namespaced: bool = True) -> list[str]:
        base = [self.binary]
        if self.context:
            base += ["--context", self.context]
        if namespaced:
            base += ["-n", self.namespace]
        return [*base, *args]

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float = 600,
        namespaced: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, namespaced=namespaced),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 600) -> str:
        out = self.run(*args, stdin=stdin, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def skip_reason(kubectl: Kubectl) -> str | None:
    """Why the e2e tier cannot run here (None when a cluster with the overlay answers).

    Bounded: each probe gives up after REACH_TIMEOUT seconds (kubectl's own request
    timeout, and a subprocess timeout a little above it).
    """
    if shutil.which(kubectl.binary) is None:
        return (
            f"kubectl not found ({kubectl.binary}): run `make kubectl` (or set KUBECTL); "
            f"then {HOW_TO_POINT}"
        )
    limit = REACH_TIMEOUT + 2
    name = kubectl.context or "the current context"
    try:
        if kubectl.context is None:
            current = kubectl.run("config", "current-context", namespaced=False, timeout=limit)
            if current.returncode != 0 or not current.stdout.strip():
                return f"no cluster configured ({_last_line(current.stderr)}): {HOW_TO_POINT}"
        probe = kubectl.run(
            f"--request-timeout={REACH_TIMEOUT}s", "get", "--raw", "/version",
            namespaced=False, timeout=limit,
        )  # fmt: skip
        if probe.returncode != 0:
            return (
                f"cluster of {name} is not reachable ({_last_line(probe.stderr)}): {HOW_TO_POINT}"
            )
        serving = kubectl.run(
            f"--request-timeout={REACH_TIMEOUT}s", "get", "deployment", "serving", timeout=limit
        )
    except subprocess.TimeoutExpired:
        return f"cluster of {name} did not answer within {limit} s: {HOW_TO_POINT}"
    if serving.returncode != 0:
        return (
            f"no serving Deployment in namespace {kubectl.namespace} on the cluster of {name} "
            f"({_last_line(serving.stderr)}): deploy the overlay first (make deploy)"
        )
    return None


# --- the training Job ---------------------------------------------------------------------


def job_outcome(job: Obj) -> str | None:
    """The Job's outcome from its status conditions: failed, complete, or None while it runs."""
    conditions = (job.get("status") or {}).get("conditions") or []
    true = {c.get("type") for c in conditions if str(c.get("status")) == "True"}
    if true & {"Failed", "FailureTarget"}:
        return "failed"
    if true & {"Complete", "SuccessCriteriaMet"}:
        return "complete"
    return None


def job_failure_message(name: str, what: str, job: Obj, logs: str, pods: str = "") -> str:
    """What happened and the true conditions' reasons, the Job's pods, its last log lines."""
    conditions = (job.get("status") or {}).get("conditions") or []
    reasons = "; ".join(
        f"{c.get('type')}: {c.get('reason', '')} {c.get('message', '')}".strip()
        for c in conditions
        if str(c.get("status")) == "True"
    )
    parts = [f"Job {name} {what}" + (f" ({reasons})" if reasons else "") + "."]
    if pods.strip():
        parts.append(f"Its pods:\n{pods.rstrip()}")
    parts.append(
        f"Last log lines (kubectl logs job/{name} --tail=40):\n{logs.rstrip() or '(none)'}"
    )
    return "\n".join(parts)


def wait_for_job(
    kubectl: Kubectl,
    name: str,
    timeout: float = 900,
    poll: float = 5,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return when the Job completes; raise AssertionError, with its last log lines, as soon
    as it fails or when `timeout` seconds pass."""
    deadline = clock() + timeout
    job: Obj = {}
    while True:
        job = json.loads(kubectl("get", f"job/{name}", "-o", "json", timeout=60))
        outcome = job_outcome(job)
        if outcome == "complete":
            return
        if outcome == "failed":
            what = "failed"
            break
        if clock() >= deadline:
            what = f"did not finish within {timeout:.0f} s"
            break
        time.sleep(poll)
    logs = kubectl.run("logs", f"job/{name}", "--tail=40", "--all-containers", timeout=60)
    pods = kubectl.run("get", "pods", "-l", f"job-name={name}", "-o", "wide", timeout=60)
    raise AssertionError(
        job_failure_message(
            name,
            what,
            job,
            logs.stdout if logs.returncode == 0 else f"(no logs: {logs.stderr.strip()})",
            pods.stdout,
        )
    )


# --- reaching serving -----------------------------------------------------------------------


def nodeport_urls(
    service: Obj, nodes: list[Obj], port_name: str = "https", scheme: str = "https"
) -> list[str]:
    """Candidate URLs for a NodePort/LoadBalancer Service's port, most likely first: the
    host's loopback (kind publishes its NodePorts there), then each node's ExternalIP,
    then its InternalIP. Empty for a ClusterIP Service."""
    spec = service.get("spec") or {}
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return []
    ports = spec.get("ports") or []
    chosen = next((p for p in ports if p.get("name") == port_name), ports[0] if ports else {})
    node_port = chosen.get("nodePort")
    if not node_port:
        return []
    hosts = ["127.0.0.1"]
    for kind in ("ExternalIP", "InternalIP"):
        for node in nodes:
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") == kind and address.get("address") not in hosts:
                    hosts.append(address["address"])
    return [f"{scheme}://[{h}]:{node_port}" if ":" in h else f"{scheme}://{h}:{node_port}"
            for h in hosts]  # fmt: skip


_FORWARDING = re.compile(r"Forwarding from (127\.0\.0\.1|\[::1\]):(\d+) -> ")


def port_forward_port(line: str) -> int | None:
    """The local port in kubectl port-forward's banner line, else None."""
    match = _FORWARDING.search(line)
    return int(match.group(2)) if match else None


def answers(
    url: str, verify: str | bool = True, path: str = "/healthz", timeout: float = 3
) -> bool:
    """200 from `url`, its certificate checked against `verify` (a CA file): a node
    address the certificate does not name does not count, the port-forward is used."""
    try:
        return requests.get(f"{url}{path}", timeout=timeout, verify=verify).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class PortForward:
    kubectl: Kubectl
    target: str
    remote_port: int
    process: subprocess.Popen[str] | None = None
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def start(self, timeout: float = 30, scheme: str = "http") -> str:
        self.process = subprocess.Popen(
            self.kubectl.argv(
                "port-forward", self.target, f":{self.remote_port}", "--address", "127.0.0.1"
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        stdout = self.process.stdout
        assert stdout is not None

        def pump() -> None:  # kubectl keeps writing ("Handling connection ..."): keep reading
            for line in stdout:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line.rstrip())
            port = port_forward_port(line)
            if port:
                return f"{scheme}://127.0.0.1:{port}"
        self.stop()
        raise AssertionError(
            f"kubectl port-forward {self.target} did not start within {timeout:.0f} s: "
            + (" | ".join(seen[-5:]) or "no output")
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def serving_url(
    kubectl: Kubectl, ca_file: str, service: str = "serving", port: int = 8080
) -> Iterator[str]:
    """The serving HTTPS URL: a NodePort that answers from here with a certificate `ca_file`
    verifies, else a port-forward (stopped on exit; the certificate names 127.0.0.1)."""
    svc = json.loads(kubectl("get", f"service/{service}", "-o", "json", timeout=60))
    listed = kubectl.run("get", "nodes", "-o", "json", namespaced=False, timeout=60)
    # Listing nodes may be forbidden to a namespaced user: then only loopback is tried.
    nodes = json.loads(listed.stdout).get("items", []) if listed.returncode == 0 else []
    for url in nodeport_urls(svc, nodes):
        if answers(url, ca_file):
            yield url
            return
    forward = PortForward(kubectl, f"service/{service}", port)
    url = forward.start(scheme="https")
    try:
        yield url
    finally:
        forward.stop()
