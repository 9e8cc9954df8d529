"""The dashboard in a real browser: `seamless ui` started for real on a loopback port, each
page loaded by headless Chromium (Debian's `chromium`, its own headless mode), the DOM it
built checked for the charts with the workspace's data, and a screenshot of each page kept
in `$SEAMLESS_TEST_ARTIFACTS` (default `tests/artifacts/`).

Chromium cannot send an Authorization header from the command line, so it signs in the
way a bookmark or a tool would: `/login?token=...&next=/page`, which answers with the
session cookie and a redirect (components/dashboard/auth.py). Flags as in
tests/browser/test_report_in_chromium.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.dashboard.workspace import HOSTILE
from tests.helpers import chromium
from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ADMIN = "browser-admin-token-8c1f"


@pytest.fixture(scope="module")
def server(dash: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`seamless ui` (as `python -m pipelines.ui_cli`) on a free loopback port."""
    here = tmp_path_factory.mktemp("ui")
    tokens = here / "tokens.txt"
    tokens.write_text(f"# the browser test's viewer and admin\n{ADMIN}:admin\n")
    port = free_port()
    log = here / "ui.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_SERVE_")}
    env.update(dash["env"])
    base = f"http://127.0.0.1:{port}"
    with http_daemon(
        [sys.executable, "-m", "pipelines.ui_cli", "--host", "127.0.0.1", "--port", str(port),
         "--workspace", str(dash["ws"]), "--tokens-file", str(tokens)],
        log, f"{base}/healthz", timeout_s=90, grace_s=10, poll_s=0.2, cwd=REPO, env=env,
    ):  # fmt: skip
        yield base
    # The sign-in URLs carried the token; the server's log must not have kept it.
    assert ADMIN not in log.read_text()


def browse(base: str, page: str, shot: str, height: int = 1800, token: str = ADMIN) -> chromium.Dom:
    """Sign in through the URL, load `page`, dump the DOM and keep a screenshot. Each
    call has a fresh browser profile: no cookie from an earlier page helps."""
    import tempfile

    screenshot = chromium.artifacts_dir() / f"dashboard-{shot}.png"
    screenshot.unlink(missing_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="chromium-dashboard-"))
    url = f"{base}/login?token={quote(token)}&next={quote(page)}" if token else f"{base}{page}"
    try:
        proc = chromium.run(
            profile, "--dump-dom", f"--screenshot={screenshot}", f"--window-size=1400,{height}", url
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert screenshot.is_file() and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 15_000, screenshot
    return chromium.Dom(proc.stdout)


def test_pages_render_their_charts_with_the_workspace_data(
    server: str, dash: dict[str, Any]
) -> None:
    name, (v1, v2) = dash["config"].model.name, dash["versions"]
    checks = dash["checks"]

    dom = browse(server, f"/monitoring?model={name}", "monitoring", 2400)
    (heat,) = dom.find("svg", "heatmap")
    cells = [i for i in dom.find("rect", "cell") if i > heat]
    features = {f.feature for c in checks for f in c.drift.features}
    assert len(cells) == len(features) * len(checks)
    drift = [i for i in cells if dom.elements[i][1].get("data-status") == "drift"]
    assert [dom.elements[i][1]["data-row"] for i in drift] == ["credit_utilization"]
    live = dom.find("circle", "live")
    assert len(live) == len(checks) * len(dom.find("svg", "linechart"))
    assert len(dom.find("circle", "holdout")) == len(live)
    (scores,) = dom.find("svg", "scores")
    assert len([i for i in dom.find("rect", "bar") if i > scores]) == 10

    dom = browse(server, f"/lineage/model/{name}/{v1}", "lineage", 1200)
    assert len(dom.find("svg", "lineage")) == 1
    nodes = [dom.elements[i][1]["data-node"] for i in dom.find("g", "node")]
    assert {"snapshot", "validation", "features", "training", "model"} <= set(nodes)
    assert len(dom.find("path", "edge")) >= len(nodes) - 1

    dom = browse(server, f"/models/{name}", "models", 1400)
    (versions,) = dom.find("table", "versions")
    (moves,) = dom.find("table", "moves")
    assert len([i for i in dom.find("tr") if versions < i < moves]) == 1 + len({v1, v2})
    # Who moved the champion: alice by hand (the hostile reason), then bob's rollback.
    assert len([i for i in dom.find("tr") if i > moves]) == 1 + 3
    tags = [t for t, _ in dom.elements]
    assert "img" not in tags and "script" not in tags  # the hostile reason stayed text
    assert HOSTILE in "".join(dom.text)

    dom = browse(server, "/runs", "runs", 2000)
    assert len(dom.find("section", "run")) >= 3

    dom = browse(server, f"/data/{dash['sha']}", "data", 2600)
    assert len(dom.find("table", "profile")) == 4 and len(dom.find("svg", "spark")) >= 10

    dom = browse(server, "/audit", "audit", 2000)
    (message,) = dom.find("p", "verify-message")
    assert dom.elements[message][1]["data-status"] == "ok"
    assert "is intact" in dom.text_of(message)

    dom = browse(server, "/", "overview", 1400)
    assert dom.find("table", "models") and dom.find("table", "runs")


def test_without_a_token_the_browser_gets_the_sign_in_form(server: str) -> None:
    dom = browse(server, "/models", "signin", 800, token="")
    fields = [a.get("name") for t, a in dom.elements if t == "input"]
    assert "token" in fields and "Sign in" in "".join(dom.text)
    assert not dom.find("table", "models")
