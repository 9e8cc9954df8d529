"""Alertmanager: the rendered config (manifests/tools/render_alertmanager.py), its routes
checked with amtool, the objects the overlays render, and one alert end to end: Debian's
Prometheus evaluates the shipped rules, fires, Debian's Alertmanager routes it with the
shipped routes to a webhook and a Slack-compatible receiver on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import time
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

from tests.helpers.loopback import answer, loopback_server
from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon
from tests.helpers.require import unavailable
from tests.helpers.webhook import Receiver, webhook_receiver

TOOL = MANIFESTS / "tools" / "render_alertmanager.py"
RULES = MANIFESTS / "base" / "prometheus" / "rules" / "seamless-alerts.yaml"
TEMPLATE = MANIFESTS / "base" / "alertmanager" / "alertmanager.yml"
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
    assert host == "alertmanager.seamless.svc.cluster.local"
    assert int(port) in {p["port"] for p in svc["spec"]["ports"]}
    assert svc["spec"]["type"] == "ClusterIP"  # no authentication: port-forward for the UI


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


def test_a_firing_rule_reaches_the_webhook_and_slack_receivers(tmp_path: Path) -> None:
    prometheus = binary("prometheus", package="prometheus")
    alertmanager = binary(
        "prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager"
    )
    counter = Counter()
    am_port, prom_port = free_port(), free_port()
    am = f"127.0.0.1:{am_port}"
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
                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am]}]}]},
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
                    "--cluster.listen-address=",
                ],
                tmp_path / "alertmanager.log",
                f"http://127.0.0.1:{am_port}/-/ready",
            ),
            http_daemon(
                [
                    prometheus,
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                tmp_path / "prometheus.log",
                f"http://127.0.0.1:{prom_port}/-/ready",
            ),
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
