"""The consumer's Prometheus endpoint (`--metrics-port`): its counters after events of
every outcome, parsed with prometheus_client's own text parser over HTTPS (a
certificate from gen_certs.py); then a real `prometheus` with the shipped scrape job
(manifests/base/prometheus/prometheus.yml, `stream-consumer`) scraping a real `seamless
stream consume` over TLS, checking the Service's name against the CA."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.config import SeamlessConfig
from components.features.store import open_store
from components.stream.consumer import Consumer, StreamSettings
from components.stream.events import encode
from components.stream.metrics import StreamMetrics, serve
from tests.helpers.certs import ours_and_other
from tests.helpers.mini_features import MINI
from tests.helpers.postgres import free_port
from tests.helpers.prometheus import prometheus_binary, prometheus_server, query
from tests.stream.world import event

pytestmark = [pytest.mark.slow, pytest.mark.stream]
SERVICE = "stream-consumer"
SERVER_NAME = f"{SERVICE}.seamless.svc.cluster.local"
PROMETHEUS_YML = Path(__file__).resolve().parents[2] / "manifests/base/prometheus/prometheus.yml"


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def scrape(url: str, ca: Path) -> dict[str, float]:
    """`name{labels}` -> value, through prometheus_client's text parser."""
    from prometheus_client.parser import text_string_to_metric_families

    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, timeout=5, context=context) as answer:
        text = answer.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def test_the_metrics_count_every_outcome(
    redis_repo: Path, stream_config: SeamlessConfig, client: Any, tmp_path: Path
) -> None:
    tls = ours_and_other(tmp_path, SERVICE, hosts=("127.0.0.1",))["ours"]
    stream = "s:metrics"
    for e in (
        event("m-1", 61, ago(30), score=1.0),  # written
        event("m-1", 61, ago(30), score=1.0),  # duplicate
        event("m-2", 61, ago(300), score=2.0),  # late
        event("m-3", 61, "noon"),  # malformed: a dead letter
    ):
        client.xadd(stream, encode(e))
    settings = StreamSettings(stream=stream, block_ms=100)
    worker = Consumer(stream_config, redis_repo, open_store(redis_repo), client, settings)
    worker.metrics = StreamMetrics(client, stream, settings.group)
    port = free_port()
    server = serve(
        worker.metrics, port, "127.0.0.1", str(tls / f"{SERVICE}.crt"), str(tls / f"{SERVICE}.key")
    )
    try:
        url = f"https://127.0.0.1:{port}/metrics"
        before = scrape(url, tls / "ca.crt")
        assert before['seamless_stream_events_total{outcome="written"}'] == 0
        assert before["seamless_stream_redis_up"] == 1
        worker.run(idle_exit_s=0.5)
        client.xadd(stream, encode(event("m-4", 62, ago(5))))  # sent, not yet read: lag 1
        got = scrape(url, tls / "ca.crt")
    finally:
        server.shutdown()
    for outcome in ("written", "late", "duplicate", "malformed"):
        assert got[f'seamless_stream_events_total{{outcome="{outcome}"}}'] == 1, (outcome, got)
    assert got['seamless_stream_online_rows_total{view="facts_view"}'] == 1
    assert got['seamless_stream_offline_rows_total{view="facts_view"}'] == 2  # written + late
    assert got["seamless_stream_batches_total"] == 1
    assert got["seamless_stream_redelivered_total"] == 0
    assert 0 < got["seamless_stream_batch_seconds"] < 60
    assert abs(got["seamless_stream_last_batch_timestamp_seconds"] - time.time()) < 60
    assert got["seamless_stream_freshness_seconds_count"] == 1
    assert 25 < got["seamless_stream_freshness_seconds_sum"] < 120
    assert (got["seamless_stream_pending"], got["seamless_stream_lag"]) == (0, 1)


def test_prometheus_scrapes_the_consumer_over_tls(
    redis: Any, redis_repo: Path, client: Any, tmp_path: Path
) -> None:
    prometheus_binary()  # before any set-up: unavailable here means skipped
    tls = ours_and_other(tmp_path, SERVICE, hosts=())["ours"]  # the Service's names only
    stream, port, prom_port = "s:metrics-prom", free_port(), free_port()
    for n in range(5):
        client.xadd(stream, encode(event(f"p-{n}", 70 + n, ago(20))))
    (tmp_path / "mini.yaml").write_text(MINI)
    # The shipped job, pointed at loopback: its scheme, path and server_name stay.
    (job,) = [j for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]
              if j["job_name"] == "stream-consumer"]  # fmt: skip
    assert job["tls_config"]["server_name"] == SERVER_NAME
    job["tls_config"]["ca_file"] = str(tls / "ca.crt")
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    job["scrape_interval"] = "1s"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [job]}))
    consume = [
        sys.executable, "-m", "pipelines.cli", "stream", "consume", "--config", "mini.yaml",
        "--redis-url", f"redis://{redis.host}:{redis.port}/0", "--stream", stream,
        "--metrics-port", str(port), "--metrics-tls-cert", str(tls / f"{SERVICE}.crt"),
        "--metrics-tls-key", str(tls / f"{SERVICE}.key"),
    ]  # fmt: skip
    log = (tmp_path / "consume.log").open("wb")
    proc = subprocess.Popen(
        consume, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "SEAMLESS_FEAST_REPO": str(redis_repo),
             "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    try:
        with prometheus_server(config, prom_port, tmp_path):
            deadline, found = time.monotonic() + 90, []
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "consume.log").read_text()[-2000:]
                found = query(prom_port, 'seamless_stream_events_total{outcome="written"}')
                if found and float(found[0]["value"][1]) == 5:
                    break
                time.sleep(0.5)
            up = query(prom_port, 'up{job="stream-consumer"}')
            pending = query(prom_port, "seamless_stream_pending")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert found and float(found[0]["value"][1]) == 5, (
        (tmp_path / "prometheus.log").read_text()[-1500:],
        (tmp_path / "consume.log").read_text()[-1500:],
    )
    assert [float(u["value"][1]) for u in up] == [1.0]
    assert [float(p["value"][1]) for p in pending] == [0.0]
    assert code == 0, (tmp_path / "consume.log").read_text()[-2000:]
