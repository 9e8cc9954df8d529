"""The e2e tier's plumbing that needs no cluster: Job conditions, the failure message,
NodePort candidates, the port-forward banner, and the skip when no cluster answers
(real kubectl against an empty kubeconfig and a closed loopback port)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.e2e.cluster import (
    HOW_TO_POINT,
    Kubectl,
    PortForward,
    job_failure_message,
    job_outcome,
    kube_context,
    nodeport_urls,
    port_forward_port,
    skip_reason,
)
from tests.helpers.require import kubectl_path

pytestmark = pytest.mark.unit


def _job(*conditions: tuple[str, str]) -> dict[str, object]:
    return {
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": "BackoffLimitExceeded", "message": "m"}
                for t, s in conditions
            ]
        }
    }


def test_job_outcome_reads_the_conditions() -> None:
    assert job_outcome({}) is None
    assert job_outcome({"status": {"active": 1}}) is None
    assert job_outcome(_job(("Complete", "True"))) == "complete"
    assert job_outcome(_job(("SuccessCriteriaMet", "True"))) == "complete"
    assert job_outcome(_job(("Failed", "True"))) == "failed"
    assert job_outcome(_job(("FailureTarget", "True"))) == "failed"  # before Failed (1.31+)
    assert job_outcome(_job(("Failed", "False"), ("Complete", "False"))) is None


def test_failure_message_carries_the_reason_and_the_last_log_lines() -> None:
    logs = "\n".join(f"line {i}" for i in range(40)) + "\n"
    message = job_failure_message(
        "seamless-train-once", "failed", _job(("Failed", "True")), logs, "NAME READY\np 0/1\n"
    )
    first, *rest = message.splitlines()
    assert first == "Job seamless-train-once failed (Failed: BackoffLimitExceeded m)."
    assert "kubectl logs job/seamless-train-once --tail=40" in message
    assert rest[-1] == "line 39" and "p 0/1" in message
    timed_out = job_failure_message("j", "did not finish within 900 s", {}, "")
    assert timed_out.startswith("Job j did not finish within 900 s.") and "(none)" in timed_out


def _service(kind: str, node_port: int | None = 30080) -> dict[str, object]:
    port: dict[str, object] = {"name": "https", "port": 8080}
    if node_port:
        port["nodePort"] = node_port
    return {"spec": {"type": kind, "ports": [{"name": "metrics", "port": 9}, port]}}


NODES = [
    {"status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}},
    {
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "n2"},
                {"type": "InternalIP", "address": "10.0.0.3"},
                {"type": "ExternalIP", "address": "2001:db8::3"},
            ]
        }
    },
]


def test_nodeport_candidates_loopback_then_external_then_internal() -> None:
    assert nodeport_urls(_service("NodePort"), NODES) == [
        "https://127.0.0.1:30080",
        "https://[2001:db8::3]:30080",
        "https://172.18.0.2:30080",
        "https://10.0.0.3:30080",
    ]
    assert nodeport_urls(_service("LoadBalancer"), [])[0] == "https://127.0.0.1:30080"


def test_clusterip_or_no_nodeport_means_port_forward() -> None:
    assert nodeport_urls(_service("ClusterIP"), NODES) == []
    assert nodeport_urls({"spec": {"ports": []}}, NODES) == []
    assert nodeport_urls(_service("NodePort", node_port=None), NODES) == []


def test_port_forward_banner() -> None:
    assert port_forward_port("Forwarding from 127.0.0.1:43567 -> 8080\n") == 43567
    assert port_forward_port("Forwarding from [::1]:43567 -> 8080") == 43567
    assert port_forward_port("Handling connection for 43567") is None


def test_context_choice() -> None:
    assert kube_context("kind-seamless", {"SEAMLESS_KUBE_CONTEXT": "other"}) == "kind-seamless"
    assert kube_context(None, {"SEAMLESS_KUBE_CONTEXT": "other"}) == "other"
    assert kube_context(None, {}) is None


def test_missing_kubectl_says_how_to_get_one(tmp_path: Path) -> None:
    reason = skip_reason(Kubectl(str(tmp_path / "kubectl")))
    assert reason is not None and "make kubectl" in reason and HOW_TO_POINT in reason


@pytest.fixture(scope="module")
def kubectl() -> str:
    """The kubectl the manifests tier uses ($KUBECTL or build/tools/kubectl, fetched once)."""
    return kubectl_path()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: test, context: {cluster: c, user: u}}]\n"
    )
    return path


def test_no_cluster_configured_skips_with_how_to(
    kubectl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("KUBECONFIG", str(empty))
    reason = skip_reason(Kubectl(kubectl))
    assert reason is not None and reason.startswith("no cluster configured")
    assert "KUBECONFIG" in reason and "--kube-context" in reason


def test_unreachable_cluster_skips_within_seconds(
    kubectl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")))
    started = time.monotonic()
    reason = skip_reason(Kubectl(kubectl))
    assert time.monotonic() - started < 15
    assert reason is not None and "not reachable" in reason and str(port) in reason
    named = skip_reason(Kubectl(kubectl, context="test"))
    assert named is not None and named.startswith("cluster of test is not reachable")


def test_port_forward_that_cannot_start_fails_in_one_message(
    kubectl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")))
    forward = PortForward(Kubectl(kubectl), "service/serving", 8080)
    with pytest.raises(AssertionError, match=r"port-forward service/serving did not start"):
        forward.start(timeout=20)
    assert forward.process is not None and forward.process.poll() is not None


def test_silent_api_server_skips_within_seconds(
    kubectl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        kc = _kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}")
        monkeypatch.setenv("KUBECONFIG", str(kc))
        started = time.monotonic()
        reason = skip_reason(Kubectl(kubectl))
        assert time.monotonic() - started < 15
    # kubectl's own request timeout ("not reachable") or the probe's kill, whichever is first.
    assert reason is not None and HOW_TO_POINT in reason
    assert "did not answer within" in reason or "not reachable" in reason
