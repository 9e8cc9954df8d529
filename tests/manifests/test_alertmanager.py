"""Alertmanager: the rendered config (manifests/tools/render_alertmanager.py), its routes
checked with amtool, the objects the overlays render, and one alert end to end: Debian's
Prometheus evaluates the shipped rules, fires and sends it over HTTPS (the shipped
`alerting:` TLS settings, verified against a CA made here) to Debian's Alertmanager,
which serves HTTPS with the shipped web config and routes it with the shipped routes to a
webhook and a Slack-compatible receiver on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_objects import MANIFESTS, Rendering

from tests.helpers.certs import ours_and_other
from tests.helpers.loopback import answer, loopback_server
from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon
from tests.helpers.prometheus import prometheus_binary, prometheus_server
from tests.helpers.require import unavailable
from tests.helpers.webhook import Receiver, webhook_receiver

TOOL = MANIFESTS / "tools" / "render_alertmanager.py"
RULES = MANIFESTS / "base" / "prometheus" / "rules" / "seamless-alerts.yaml"
TEMPLATE = MANIFESTS / "base" / "alertmanager" / "alertmanager.yml"
WEB_CONFIG = MANIFESTS / "base" / "alertmanager" / "web.yml"
PROMETHEUS = MANIFESTS / "base" / "prometheus" / "prometheus.yml"
AM_NAME = "alertmanager.seamless.svc.cluster.local"
WEBHOOK = "https://alerts.example.com/hook/T0KEN"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXX"


def binary(*names: str, package: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    unavailable(f"{names[0]} is missing: install Debian's `{package}` package")


@pytest.fixture(scope="module")
def amtool() -> str:
    return binary("amtool", package="prometheus-alertmanager")


def render(overlay: Path, urls: str | None) -> subprocess.CompletedProcess[str]:
    (overlay / "secrets").mkdir(parents=True, exist_ok=True)
    if urls is not None:
        (overlay / "secrets" / "alerting.env").write_text(urls)
    return subprocess.run(
        [sys.executable, str(TOOL), str(overlay)], capture_output=True, text=True, timeout=60
    )


def rendered(overlay: Path, urls: str | None) -> dict[str, Any]:
    result = render(overlay, urls)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load((overlay / "secrets" / "alertmanager.yml").read_text())


def integrations(config: dict[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {
        r["name"]: {k: v for k, v in r.items() if k.endswith("_configs")}
        for r in config["receivers"]
    }


# ---- rendering -----------------------------------------------------------------------


def test_urls_fill_their_integrations_and_the_file_is_private(tmp_path: Path) -> None:
    config = rendered(tmp_path, f"ALERT_WEBHOOK_URL={WEBHOOK}\nALERT_SLACK_URL={SLACK}\n")
    for name, kinds in integrations(config).items():
        assert kinds["webhook_configs"][0]["url"] == WEBHOOK, name
        assert kinds["slack_configs"][0]["api_url"] == SLACK, name
        assert "url_env" not in kinds["webhook_configs"][0]
    out = tmp_path / "secrets" / "alertmanager.yml"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    result = render(tmp_path, None)
    assert WEBHOOK not in result.stderr + result.stdout  # URLs are never printed


def test_unset_urls_leave_their_integrations_out(tmp_path: Path) -> None:
    config = rendered(tmp_path, f"# only a webhook\nALERT_WEBHOOK_URL={WEBHOOK}\n")
    for kinds in integrations(config).values():
        assert list(kinds) == ["webhook_configs"]
    config = rendered(tmp_path, "")
    assert all(kinds == {} for kinds in integrations(config).values())
    # Without the file at all (an overlay before gen_secrets ran) the routes still render.
    (tmp_path / "secrets" / "alerting.env").unlink()
    assert integrations(rendered(tmp_path, None))


@pytest.mark.parametrize(
    ("urls", "sentence"),
    [
        ("ALERT_WEBHOOK_URL=ftp://x/y\n", "env:1: ALERT_WEBHOOK_URL is not an http(s) URL"),
        ("ALERT_WEBHOK_URL=https://x/y\n", "ALERT_WEBHOK_URL is not a key any receiver uses"),
        ("\nhttps://x/y\n", "alerting.env:2: expected KEY=URL"),
    ],
)
def test_bad_urls_are_refused_in_one_sentence(tmp_path: Path, urls: str, sentence: str) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "alertmanager.yml").write_text("old\n")
    result = render(tmp_path, urls)
    assert result.returncode != 0
    assert sentence in result.stderr
    assert "x/y" not in result.stderr  # the URL itself is not echoed
    assert (tmp_path / "secrets" / "alertmanager.yml").read_text() == "old\n"  # untouched


def test_gen_secrets_renders_it_and_check_sees_a_stale_file(manifests_copy: Path) -> None:
    for overlay in ("kind", "production"):
        path = manifests_copy / "overlays" / overlay / "secrets" / "alertmanager.yml"
        assert path.is_file(), f"gen_secrets.py did not render {path}"
        check = [sys.executable, str(TOOL), str(path.parents[1]), "--check"]
        assert subprocess.run(check, capture_output=True).returncode == 0
    stale = manifests_copy.parent / "stale-overlay"
    stale.mkdir()
    rendered(stale, "")
    (stale / "secrets" / "alerting.env").write_text(f"ALERT_WEBHOOK_URL={WEBHOOK}\n")
    result = subprocess.run(
        [sys.executable, str(TOOL), str(stale), "--check"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "out of date" in result.stderr


# ---- amtool ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    overlay = tmp_path_factory.mktemp("overlay")
    rendered(overlay, f"ALERT_WEBHOOK_URL={WEBHOOK}\nALERT_SLACK_URL={SLACK}\n")
    return overlay / "secrets" / "alertmanager.yml"


@pytest.mark.parametrize("urls", ["both", "none"])
def test_amtool_accepts_the_rendered_config(
    amtool: str, tmp_path: Path, full_config: Path, urls: str
) -> None:
    path = full_config if urls == "both" else tmp_path / "secrets" / "alertmanager.yml"
    if urls == "none":
        rendered(tmp_path, "")
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def shipped_alerts() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [
        (rule["alert"], rule["labels"]["severity"])
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_every_shipped_alert_routes_by_its_severity(amtool: str, full_config: Path) -> None:
    alerts = shipped_alerts()
    assert {severity for _, severity in alerts} == {"critical", "warning"}
    expected = {"critical": "seamless-critical", "warning": "seamless-warning"}
    for alert, severity in [*alerts, ("SomeoneElsesAlert", "info")]:
        want = expected.get(severity, "seamless-warning")  # the default route
        result = subprocess.run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={full_config}",
                f"--verify.receivers={want}",
                f"alertname={alert}",
                f"severity={severity}",
                "namespace=seamless",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{alert} ({severity}): {result.stdout}{result.stderr}"


# ---- the rendered overlays ------------------------------------------------------------


def test_overlays_run_alertmanager_from_the_rendered_secret(rendering: Rendering) -> None:
    dep = rendering.get("Deployment", "alertmanager")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in container["args"]
    secret_name = next(v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v)
    secret = rendering.get("Secret", secret_name)
    assert secret_name.startswith("alertmanager-config-")  # hash suffix: a change rolls it
    assert set(secret["data"]) == {"alertmanager.yml"}
    assert dep["spec"]["template"]["metadata"]["labels"]["seamless.dev/notifier"] == "true"
    assert container["image"].startswith("quay.io/prometheus/alertmanager:v")


def test_prometheus_sends_its_alerts_to_the_alertmanager_service(rendering: Rendering) -> None:
    cm = next(
        c
        for c in rendering.of_kind("ConfigMap")
        if c["metadata"]["name"].startswith("prometheus-config")
    )
    config = yaml.safe_load(cm["data"]["prometheus.yml"])
    (target,) = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    host, port = target.rsplit(":", 1)
    svc = rendering.get("Service", "alertmanager")
    assert svc is not None
    assert host == AM_NAME
    assert int(port) in {p["port"] for p in svc["spec"]["ports"]}
    assert svc["spec"]["type"] == "ClusterIP"  # no authentication: port-forward for the UI
    # Over HTTPS, verified against the CA Prometheus mounts, for the name dialled.
    (am,) = config["alerting"]["alertmanagers"]
    assert am["scheme"] == "https", am
    assert am["tls_config"] == {"ca_file": "/etc/prometheus/tls/ca.crt", "server_name": host}
    assert not am["tls_config"].get("insecure_skip_verify"), am


def test_alertmanager_serves_https_with_the_tls_secret(rendering: Rendering) -> None:
    """--web.config.file points at the shipped web.yml, whose certificate and key are the
    files of the mounted Secret alertmanager-tls; probes speak HTTPS."""
    dep = rendering.get("Deployment", "alertmanager")
    assert dep is not None
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    flag = next(a for a in container["args"] if a.startswith("--web.config.file="))
    web_path = Path(flag.split("=", 1)[1])
    sources = {
        v["name"]: (v.get("configMap") or {}).get("name")
        or (v.get("secret") or {}).get("secretName", "")
        for v in pod["volumes"]
    }
    mounted = {m["mountPath"]: sources[m["name"]] for m in container["volumeMounts"]}
    web_map = rendering.get("ConfigMap", mounted[str(web_path.parent)])
    assert web_map is not None
    web = yaml.safe_load(web_map["data"][web_path.name])
    assert web == yaml.safe_load(WEB_CONFIG.read_text())
    tls = web["tls_server_config"]
    for key in ("cert_file", "key_file"):
        assert mounted[tls[key].rsplit("/", 1)[0]].startswith("alertmanager-tls-"), key
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe


# ---- end to end -----------------------------------------------------------------------


class Counter:
    """A scrape target exposing seamless_serve_model_reload_failures_total."""

    def __init__(self) -> None:
        self.value = 0


@contextmanager
def metrics_target(counter: Counter) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (
                "# TYPE seamless_serve_model_reload_failures_total counter\n"
                f"seamless_serve_model_reload_failures_total {counter.value}\n"
            ).encode()
            answer(self, body, "text/plain; version=0.0.4")

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler) as url:
        yield url.removeprefix("http://")


def scraped_at_zero(port: int) -> None:
    query = f"http://127.0.0.1:{port}/api/v1/query?query=" + urllib.parse.quote(
        "count_over_time(seamless_serve_model_reload_failures_total[1m])"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(query, timeout=5) as resp:
            result = json.load(resp)["data"]["result"]
        if result and float(result[0]["value"][1]) >= 2:
            return
        time.sleep(0.5)
    pytest.fail("Prometheus did not scrape the target twice in 60 s")


def wait_for_posts(receiver: Receiver, seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bodies := receiver.bodies():
            return bodies
        time.sleep(0.5)
    return []


def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """Certificates as gen_certs.py issues them (`alertmanager` for its Service names) under
    `ours/`, another CA's for the same names under `other/`; the shipped web.yml pointed
    at ours. Returns (web config, our CA)."""
    ours = ours_and_other(tmp_path, "alertmanager", hosts=())["ours"]
    web = yaml.safe_load(WEB_CONFIG.read_text())
    web["tls_server_config"].update(
        cert_file=str(ours / "alertmanager.crt"), key_file=str(ours / "alertmanager.key")
    )
    (tmp_path / "web.yml").write_text(yaml.safe_dump(web))
    return tmp_path / "web.yml", ours / "ca.crt"


def alerting_to(target: str, ca: Path) -> dict[str, Any]:
    """The shipped `alerting:` block (scheme, TLS settings, the Service's name checked),
    with the CA file of this test and the loopback address in place of the Service's."""
    alerting = yaml.safe_load(PROMETHEUS.read_text())["alerting"]
    (am,) = alerting["alertmanagers"]
    am["tls_config"]["ca_file"] = str(ca)
    am["static_configs"] = [{"targets": [target]}]
    return dict(alerting)


def pinned(host: str, port: int, name: str, ca: Path) -> tuple[int, str]:
    """GET /-/ready at host:port over TLS, checking the certificate for `name` against `ca`."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as conn,
    ):
        conn.sendall(f"GET /-/ready HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        answer_ = b""
        while chunk := conn.recv(4096):
            answer_ += chunk
        version = conn.version() or ""
    status_line = answer_.split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1]), version


def test_alertmanager_serves_the_shipped_web_config_over_https(tmp_path: Path) -> None:
    """The shipped web.yml: HTTPS only; a client checking the Service's name against our
    CA gets /-/ready; another CA and a name the certificate lacks are refused."""
    alertmanager = binary(
        "prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager"
    )
    web, ca = tls_files(tmp_path)
    rendered(tmp_path, "")  # the shipped routes, no receiver URLs
    port = free_port()
    ours = ssl.create_default_context(cafile=str(ca))
    ours.check_hostname = False  # the daemon wait dials 127.0.0.1; names are checked below
    with http_daemon(
        [
            alertmanager,
            f"--config.file={tmp_path / 'secrets' / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web}",
            "--cluster.listen-address=",
        ],
        tmp_path / "alertmanager.log",
        f"https://127.0.0.1:{port}/-/ready",
        tls=ours,
    ):
        status, version = pinned("127.0.0.1", port, AM_NAME, ca)
        assert status == 200 and version in ("TLSv1.2", "TLSv1.3"), (status, version)
        other = tmp_path / "other" / "secrets" / "tls" / "ca.crt"
        with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
            pinned("127.0.0.1", port, AM_NAME, other)
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            pinned("127.0.0.1", port, "prometheus.seamless.svc.cluster.local", ca)
        # Plain HTTP: Go's TLS server answers 400, never Alertmanager's API.
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=10) as r:
                pytest.fail(f"plain HTTP answered {r.status}")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400, exc
        except OSError:
            pass


def test_a_firing_rule_reaches_the_webhook_and_slack_receivers(tmp_path: Path) -> None:
    prometheus_binary()
    alertmanager = binary(
        "prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager"
    )
    counter = Counter()
    am_port, prom_port = free_port(), free_port()
    am = f"127.0.0.1:{am_port}"
    web, ca = tls_files(tmp_path)
    am_ready = ssl.create_default_context(cafile=str(ca))
    am_ready.check_hostname = False  # dialled at 127.0.0.1; Prometheus checks the name
    with (
        webhook_receiver("/hook/T0KEN") as hook,
        webhook_receiver("/services/T000/B000/XXXX") as slack,
        metrics_target(counter) as target,
    ):
        # The shipped routes and receivers; only the waits are shortened for a test.
        config = rendered(tmp_path, f"ALERT_WEBHOOK_URL={hook.url}\nALERT_SLACK_URL={slack.url}\n")
        config["route"].update(group_wait="1s", group_interval="1s")
        am_config = tmp_path / "alertmanager.yml"
        am_config.write_text(yaml.safe_dump(config))
        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],  # the shipped rules, unchanged
                    "alerting": alerting_to(am, ca),
                    "scrape_configs": [
                        {"job_name": "serving", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        with (
            http_daemon(
                [
                    alertmanager,
                    f"--config.file={am_config}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    f"--web.config.file={web}",
                    "--cluster.listen-address=",
                ],
                tmp_path / "alertmanager.log",
                f"https://127.0.0.1:{am_port}/-/ready",
                tls=am_ready,
            ),
            prometheus_server(prom_config, prom_port, tmp_path),
        ):
            # Prometheus' first scrape comes a few seconds after start (discovery is
            # batched): the counter must be seen at 0 before it increases.
            scraped_at_zero(prom_port)
            assert hook.bodies() == [] and slack.bodies() == []
            counter.value = 1  # a serving pod failed to load the new champion
            posts = wait_for_posts(hook, 60)
            assert posts, "no alert reached the webhook in 60 s:\n" + "\n".join(
                (tmp_path / f"{name}.log").read_text()[-1500:]
                for name in ("prometheus", "alertmanager")
            )
            assert wait_for_posts(slack, 20), "no alert reached the Slack receiver"

    (body,) = posts[:1]
    assert body["status"] == "firing"
    assert body["receiver"] == "seamless-warning"
    (alert,) = body["alerts"]
    assert alert["labels"]["alertname"] == "SeamlessModelReloadFailed"
    assert alert["labels"]["severity"] == "warning"
    assert "failed to load" in alert["annotations"]["summary"]
    message = json.dumps(slack.bodies()[0])
    assert "SeamlessModelReloadFailed (warning)" in message
    assert "A serving pod failed to load the new champion model." in message
