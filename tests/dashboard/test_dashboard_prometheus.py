"""Prometheus scrapes the monitoring gauges from the dashboard as the cluster's config says
(the shipped `monitoring` job: HTTPS, the CA, the Service's name checked), so the drift and
live-AUC alerts have their series on a cluster, where the monitor step's textfile is gone.
Real `seamless ui` over TLS with gen_certs.py's certificate, real Prometheus."""

from __future__ import annotations

import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.certs import ours_and_other
from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon
from tests.helpers.prometheus import prometheus_binary, prometheus_server, query

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = ROOT / "manifests" / "base" / "prometheus" / "prometheus.yml"


def test_prometheus_scrapes_the_monitoring_gauges_over_tls(
    dash: dict[str, Any], tmp_path: Path
) -> None:
    prometheus_binary()  # before any set-up: unavailable here means skipped
    tls = ours_and_other(tmp_path, "dashboard", hosts=())["ours"]
    (tmp_path / "tokens").write_text("viewer-token-0123456789:predict\n")
    ui_port, prom_port = free_port(), free_port()
    ready = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ready.check_hostname = False  # dialled at 127.0.0.1; Prometheus checks the name

    (job,) = [j for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]
              if j["job_name"] == "monitoring"]  # fmt: skip
    job["tls_config"]["ca_file"] = str(tls / "ca.crt")  # the shipped server_name stays
    job["static_configs"] = [{"targets": [f"127.0.0.1:{ui_port}"]}]
    job["scrape_interval"] = "1s"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [job]}))

    ui = [
        sys.executable, "-c", "from pipelines.cli import main; main()", "ui",
        "--port", str(ui_port), "--tokens-file", str(tmp_path / "tokens"),
        "--tls-cert", str(tls / "dashboard.crt"), "--tls-key", str(tls / "dashboard.key"),
    ]  # fmt: skip
    env = {**os.environ, **dash["env"], "PYTHONPATH": str(ROOT)}
    with (
        http_daemon(
            ui,
            tmp_path / "ui.log",
            f"https://127.0.0.1:{ui_port}/healthz",
            timeout_s=120,
            tls=ready,
            env=env,
            cwd=ROOT,
        ),  # fmt: skip
        prometheus_server(config, prom_port, tmp_path),
    ):
        deadline, found = time.monotonic() + 60, []
        while time.monotonic() < deadline and not found:
            found = query(prom_port, 'seamless_drift_psi{feature="credit_utilization"}')
            time.sleep(0.5)
        up = query(prom_port, 'up{job="monitoring"}')
    assert found, (
        "no monitoring series scraped in 60 s:\n"
        + ((tmp_path / "prometheus.log").read_text()[-1500:])
    )
    latest = dash["checks"][-1]
    psi = next(f.psi for f in latest.drift.features if f.feature == "credit_utilization")
    (series,) = found
    assert series["metric"]["model"] == latest.model_name
    assert series["metric"]["version"] == latest.model_version
    assert series["metric"]["service"] == "dashboard"
    assert float(series["value"][1]) == pytest.approx(psi)
    assert [float(u["value"][1]) for u in up] == [1.0]
