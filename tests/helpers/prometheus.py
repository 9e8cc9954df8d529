"""A real Prometheus on loopback for tests that check what it scrapes."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.process import http_daemon
from tests.helpers.require import unavailable


def prometheus_binary() -> str:
    """Debian's `prometheus`, or the test is unavailable (skipped here, failed in CI)."""
    found = shutil.which("prometheus")
    if found is None:
        unavailable("no prometheus binary: apt-get install prometheus")
        raise AssertionError("unreachable")
    return found


@contextmanager
def prometheus_server(config: Path, port: int, workdir: Path) -> Iterator[None]:
    """Prometheus with `config` on 127.0.0.1:`port`, ready; its log is workdir/prometheus.log."""
    with http_daemon(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        workdir / "prometheus.log",
        f"http://127.0.0.1:{port}/-/ready",
    ):
        yield


def query(port: int, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as answer:
        return list(json.load(answer)["data"]["result"])
