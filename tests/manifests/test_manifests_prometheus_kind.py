"""Alert rules (promtool check + unit tests), the Prometheus ConfigMaps, and kind-config.yaml."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from k8s_objects import MANIFESTS, ROOT, Rendering

pytestmark = pytest.mark.manifests

PROMETHEUS = MANIFESTS / "base" / "prometheus"
RULES = PROMETHEUS / "rules" / "seamless-alerts.yaml"
RULE_TESTS = PROMETHEUS / "tests" / "seamless-alerts.test.yaml"
REQUIRED_ALERTS = {
    "SeamlessServingHighErrorRate": "seamless_serve_requests_total",
    "SeamlessServingHighLatencyP95": "seamless_serve_request_seconds_bucket",
    "SeamlessModelReloadFailed": "seamless_serve_model_reload_failures_total",
    "SeamlessOnlineFeatureMisses": "seamless_serve_online_feature_misses_total",
    "SeamlessFeatureDrift": "seamless_drift_psi",
    "SeamlessLiveAucLow": "seamless_live_roc_auc",
}


def _promtool(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def test_rules_pass_promtool_check(promtool: str) -> None:
    _promtool(promtool, "check", "rules", str(RULES))


def test_rules_unit_tests_pass(promtool: str) -> None:
    """Each alert fires on a bad series and stays quiet on a healthy one."""
    _promtool(promtool, "test", "rules", str(RULE_TESTS))


def test_every_required_alert_exists_and_is_tested() -> None:
    rules = {
        r["alert"]: r
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    for alert, metric in REQUIRED_ALERTS.items():
        assert alert in rules, f"alert {alert} is missing from {RULES.name}"
        assert metric in rules[alert]["expr"], f"alert {alert} does not use {metric}"
        cases = [c for t in tests for c in t.get("alert_rule_test", []) if c["alertname"] == alert]
        assert any(c.get("exp_alerts") for c in cases), f"no promtool test proves {alert} fires"
        assert any(not c.get("exp_alerts") for c in cases), (
            f"no promtool test proves {alert} stays quiet"
        )
        assert rules[alert].get("labels", {}).get("severity"), f"alert {alert} has no severity"


def test_rules_configmap_is_the_standalone_file(rendering: Rendering) -> None:
    cms = [
        c
        for c in rendering.of_kind("ConfigMap")
        if c["metadata"]["name"].startswith("prometheus-rules")
    ]
    assert len(cms) == 1, f"[{rendering.name}] expected one prometheus-rules ConfigMap"
    assert cms[0]["data"] == {"seamless-alerts.yaml": RULES.read_text()}


def test_prometheus_config_loads_the_rules_and_scrapes_the_namespace(rendering: Rendering) -> None:
    cm = next(
        c
        for c in rendering.of_kind("ConfigMap")
        if c["metadata"]["name"].startswith("prometheus-config")
    )
    config = yaml.safe_load(cm["data"]["prometheus.yml"])
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yaml"]
    # Targets come from DNS: each name must be a headless Service of the namespace whose
    # port is the one scraped.
    headless = {
        s["metadata"]["name"]: s
        for s in rendering.of_kind("Service")
        if s["spec"].get("clusterIP") == "None"
    }
    sd = [s for job in config["scrape_configs"] for s in job.get("dns_sd_configs", [])]
    assert sd, "Prometheus has no dns_sd_configs job for the serving pods"
    for s in sd:
        for name in s["names"]:
            svc, namespace = name.split(".")[:2]
            assert namespace == "seamless" and svc in headless, (
                f"prometheus.yml: {name} is not a headless Service of the seamless namespace"
            )
            ports = {p["port"] for p in headless[svc]["spec"]["ports"]}
            assert s["port"] in ports, f"prometheus.yml: {name} port {s['port']} not in {ports}"
    # Static targets (the dashboard's re-exported monitoring gauges): a Service of the
    # namespace, on one of its ports.
    services = {s["metadata"]["name"]: s for s in rendering.of_kind("Service")}
    static = [t for job in config["scrape_configs"] for c in job.get("static_configs", [])
              for t in c["targets"] if ".svc" in t]  # fmt: skip
    assert any(t.startswith("dashboard.") for t in static), "no scrape job for the dashboard"
    for target in static:
        host, port = target.rsplit(":", 1)
        svc, namespace = host.split(".")[:2]
        assert namespace == "seamless" and svc in services, f"prometheus.yml: {target}"
        assert int(port) in {p["port"] for p in services[svc]["spec"]["ports"]}, target
    dep = rendering.get("Deployment", "prometheus")
    assert dep is not None
    mounts = {
        m["mountPath"] for m in dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert "/etc/prometheus/rules" in mounts, "Deployment/prometheus does not mount the rules"


# ---- kind ---------------------------------------------------------------------------------


def test_kind_config_publishes_the_nodeports_on_loopback(renderings: dict[str, Rendering]) -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    mappings = [m for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    for m in mappings:
        assert m.get("listenAddress") == "127.0.0.1", (
            f"kind-config.yaml: port {m['hostPort']} not on 127.0.0.1"
        )
    mapped = {m["containerPort"] for m in mappings}
    node_ports = {
        svc["metadata"]["name"]: p["nodePort"]
        for svc in renderings["kind"].of_kind("Service")
        if svc["spec"].get("type") == "NodePort"
        for p in svc["spec"]["ports"]
    }
    # Prometheus has no authentication: no NodePort (kubectl port-forward instead).
    assert set(node_ports) == {"mlflow", "serving"}, f"kind NodePort Services: {node_ports}"
    unmapped = {name: port for name, port in node_ports.items() if port not in mapped}
    assert not unmapped, f"kind-config.yaml has no extraPortMappings for {unmapped}"
    stale = mapped - set(node_ports.values())
    assert not stale, f"kind-config.yaml publishes ports no NodePort Service uses: {stale}"


def test_prometheus_is_not_exposed(rendering: Rendering) -> None:
    """Prometheus has no authentication: its Service stays ClusterIP in every overlay."""
    svc = rendering.get("Service", "prometheus")
    assert svc is not None
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", (
        f"[{rendering.name}] Service/prometheus is {svc['spec']['type']}: Prometheus has no "
        "authentication; use `kubectl port-forward svc/prometheus 9090`"
    )


def test_kind_encrypts_secrets_at_rest(tmp_path: Path) -> None:
    """kind-config.yaml mounts the EncryptionConfiguration `make kind-up` writes and the
    API server reads it; the generator writes secretbox first (a 32-byte key), identity
    last, 0600, and never replaces an existing file (its key encrypts what etcd holds)."""
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    [node] = config["nodes"]
    [mount] = node["extraMounts"]
    assert mount["readOnly"] is True
    [patch] = [yaml.safe_load(p) for p in node["kubeadmConfigPatches"]]
    api = patch["apiServer"]
    [volume] = api["extraVolumes"]
    flag = api["extraArgs"]["encryption-provider-config"]
    assert mount["containerPath"] == volume["hostPath"] == volume["mountPath"] == flag
    assert volume["readOnly"] is True and volume["pathType"] == "File"
    make_target = (ROOT / "Makefile").read_text().split("\nkind-up:", 1)[1].split("\n\n", 1)[0]
    host = mount["hostPath"].removeprefix("./")
    assert f"gen_encryption_config.py {host}" in make_target  # written before kind starts

    tool = ROOT / "manifests" / "tools" / "gen_encryption_config.py"
    target = tmp_path / "build" / "kind" / "encryption-config.yaml"
    subprocess.run([sys.executable, str(tool), str(target)], check=True, capture_output=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    written = yaml.safe_load(target.read_text())
    assert (written["apiVersion"], written["kind"]) == (
        "apiserver.config.k8s.io/v1",
        "EncryptionConfiguration",
    )
    [rule] = written["resources"]
    assert rule["resources"] == ["secrets"]
    first, last = rule["providers"]
    [key] = first["secretbox"]["keys"]
    assert len(base64.b64decode(key["secret"])) == 32 and last == {"identity": {}}
    before = target.read_bytes()
    kept = subprocess.run(
        [sys.executable, str(tool), str(target)], check=True, capture_output=True, text=True
    )
    assert target.read_bytes() == before and "kept" in kept.stderr
    assert key["secret"] not in kept.stderr
