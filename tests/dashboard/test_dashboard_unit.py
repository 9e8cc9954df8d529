"""The dashboard's pieces without a workspace: escaping, the SVG charts, the step-log
parser, the bounded prediction-log summary, and where a sign-in may redirect to."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from components.dashboard import charts
from components.dashboard.app import _cross_site, _local_path
from components.dashboard.graph import Graph, Node, render
from components.dashboard.markup import Safe, el, esc, path, text
from components.dashboard.pages import volume_bars
from components.dashboard.runs import parse_log, runs_from_audit
from components.predictions.files import AppendLog, segments
from components.predictions.summary import summarize

pytestmark = pytest.mark.unit
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_every_value_is_text_unless_built_here() -> None:
    page = el("td", HOSTILE, title=HOSTILE, class_="x")
    assert "<script" not in page and "<img" not in page
    assert page.count("&lt;script&gt;") == 2 and "&quot;&gt;" in page
    assert el("p", Safe("<b>kept</b>")) == "<p><b>kept</b></p>"
    assert esc(None) == "—" and esc(True) == "yes" and text(12345.678) == "12,346"
    assert path("models", "a/b?c", "1") == "/models/a%2Fb%3Fc/1"


def test_charts_carry_their_numbers_and_escape_labels() -> None:
    cells = {("f1", 0): charts.Cell(0.31, "drift"), ("f1", 1): charts.Cell(0.02, "ok")}
    svg = charts.heatmap(["f1", HOSTILE], ["run a", "run b"], cells)
    assert "<script" not in svg and "&lt;script&gt;" in svg
    values = re.findall(r'class="cell status-(\w+)"[^>]*data-value="([^"]+)"', svg)
    assert values == [("drift", "0.31"), ("ok", "0.02")]
    assert svg.count('class="cell empty"') == 2  # the hostile row was never measured

    line = charts.line_chart(
        ["a", "b", "c", "d"], [charts.Series("live", [0.8, None, 0.7, 0.75], css_class="live")]
    )
    assert line.count("<polyline") == 2  # a missing value breaks the line
    assert re.findall(r'data-value="([^"]+)"', line) == ["0.8", "0.7", "0.75"]
    bars = charts.bar_chart(["x", "y"], [3, 0])
    assert re.findall(r'data-count="(\d+)"', bars) == ["3", "0"]
    assert "No" in charts.bar_chart([], []) and "No" in charts.line_chart([], [])


def test_graph_lays_out_by_depth() -> None:
    g = Graph()
    g.add(Node("a", "source a"))
    g.add(Node("b", "source b"))
    g.add(Node("s", "snapshot"), "a", "b")
    g.add(Node("m", HOSTILE, href="/models/m/1"), "s")
    svg = render(g)
    xs = {
        n: float(x)
        for n, x in re.findall(r'data-node="(\w)"><title>[^<]*</title><rect x="(\d+)"', svg)
    }
    assert xs["a"] == xs["b"] < xs["s"] < xs["m"]
    assert svg.count('class="edge"') == 3 and "<script" not in svg


KFP_LOG = """\
09:00:00.100 - INFO - Running pipeline: \x1b[95m'seamless-training'\x1b[0m
--------------------------------------------------------------------------------
09:00:00.200 - INFO - Executing task \x1b[96m'ingest'\x1b[0m
                "pipeline_run_id": "4242",
09:00:02.700 - INFO - Task \x1b[96m'ingest'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
09:00:02.800 - INFO - Executing task \x1b[96m'validate'\x1b[0m
09:00:10.300 - ERROR - Task \x1b[96m'validate'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
"""


def test_step_log_gives_tasks_times_and_status(tmp_path: Path) -> None:
    log = tmp_path / "training-20260110-090000.log"
    log.write_text(KFP_LOG)
    run = parse_log(log)
    assert run is not None and run.run_id == "4242" and run.pipeline == "training"
    assert run.status == "failed"
    assert [(t.name, t.status, t.seconds) for t in run.tasks] == [
        ("ingest", "succeeded", 2.5),
        ("validate", "failed", 7.5),
    ]
    assert parse_log(tmp_path / "notes.log") is None


def test_audit_runs_are_grouped_by_pipeline_run_id() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    sha = "a" * 64

    def entry(seconds: int, action: str, subject: str, **details: object) -> dict:
        when = (t0 + timedelta(seconds=seconds)).isoformat()
        return {"time": when, "action": action, "subject": subject, "details": details}

    runs = runs_from_audit(
        [
            entry(0, "data_access", f"dataset:{sha}", step="ingest", pipeline_run_id="r1",
                  sources={"t": {"rows": 5}}),
            entry(4, "data_access", f"dataset:{sha}", step="validate", pipeline_run_id="r1",
                  decision="fail", report="/x/validation-1.html"),
            entry(9, "promotion", "model:m/1", reason="by hand"),  # no run: not a step
        ]
    )  # fmt: skip
    (run,) = runs.values()
    assert [s.name for s in run.steps] == ["ingest", "validate"]
    assert run.steps[1].seconds == 4.0 and run.seconds == 4.0
    assert run.outcome.startswith("validation failed")
    assert {"label": "validation report", "href": f"/data/{sha}/reports/validation-1.html"} in (
        run.steps[1].links
    )


def _records(n: int, start: datetime, version: str, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "ts": (start + timedelta(minutes=i)).isoformat(),
            "request_id": f"r{seed}-{i}",
            "model_name": "m",
            "model_version": version,
            "score": float(rng.random()),
        }
        for i in range(n)
    ]


def test_summary_counts_hours_versions_and_scores(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    first, second = _records(90, start, "1", 1), _records(30, start + timedelta(hours=3), "2", 2)
    log = AppendLog(tmp_path, "predictions")
    log.open()
    log.append(first + second)
    log.append([{**first[0], "model_name": "other"}])
    log.close()
    found = summarize(tmp_path, "m")
    assert found.records == 120 and found.complete
    assert found.per_hour == {"2026-01-01T10": 30, "2026-01-01T11": 60, "2026-01-01T13": 30}
    assert found.per_version == {"1": 90, "2": 30}
    scores = [r["score"] for r in first + second]
    assert found.score_bins == np.histogram(scores, bins=10, range=(0, 1))[0].tolist()
    assert found.first_ts == start.isoformat()
    assert summarize(tmp_path, "nope").records == 0


def test_summary_reads_only_the_newest_segments(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    log = AppendLog(tmp_path, "predictions", segment_bytes=2_000)
    log.open()
    for k in range(10):
        log.append(_records(20, start + timedelta(hours=k), str(k), k))
    log.close()
    assert len(segments(tmp_path, "predictions")) >= 5
    bounded = summarize(tmp_path, "m", max_records=50)
    assert 50 <= bounded.records < 200 and not bounded.complete
    assert max(bounded.per_version) == "9"  # the newest records, not the oldest
    assert summarize(tmp_path, "m").records == 200


def test_volume_buckets_hours_then_days() -> None:
    span, bars = volume_bars({"2026-01-01T10": 3, "2026-01-01T13": 1})
    assert span == "hour" and list(bars.values()) == [3, 0, 0, 1]
    span, bars = volume_bars({"2026-01-01T10": 3, "2026-01-01T13": 1, "2026-01-09T00": 2})
    assert span == "day" and bars["2026-01-01"] == 4 and bars["2026-01-05"] == 0
    assert len(bars) == 9


def test_sign_in_redirects_stay_on_this_server() -> None:
    assert _local_path("/models/x?y=1") == "/models/x?y=1"
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil", "models", "", None):
        assert _local_path(bad) == "/"

    class Req:
        def __init__(self, **headers: str) -> None:
            self.headers = {k.replace("_", "-"): v for k, v in headers.items()}

    assert _cross_site(Req(sec_fetch_site="cross-site"))  # type: ignore[arg-type]
    assert _cross_site(Req(origin="http://evil.example", host="127.0.0.1:8765"))  # type: ignore[arg-type]
    assert not _cross_site(Req(origin="http://127.0.0.1:8765", host="127.0.0.1:8765"))  # type: ignore[arg-type]
    assert not _cross_site(Req(sec_fetch_site="none"))  # type: ignore[arg-type]


def test_a_local_runs_report_is_linked_and_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kfp.local run folder next to its step log: the run lists the validate task's
    report, and the dashboard serves that file, sandboxed."""
    from fastapi.testclient import TestClient

    from components.dashboard.app import create_app
    from components.dashboard.layout import REPORT_CSP
    from components.dashboard.settings import DashboardSettings

    ws = tmp_path / "ws"
    (ws / "logs").mkdir(parents=True)
    (ws / "logs" / "training-20260110-090000.log").write_text(KFP_LOG)
    report = ws / "kfp" / "seamless-training-2026-01-10-09-00-01-123456" / "validate" / "report"
    report.parent.mkdir(parents=True)
    report.write_text("<html><body>the report</body></html>")
    (ws / "kfp" / "seamless-training-2026-01-10-11-00-00-000001" / "validate").mkdir(parents=True)
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with TestClient(create_app(DashboardSettings(auth_disabled=True))) as client:
        (run,) = client.get("/api/runs").json()["runs"]
        assert run["id"] == "4242" and run["status"] == "failed"
        assert run["artifacts"] == [
            {"label": "validate report", "href": "/runs/4242/report/validate"}
        ]
        served = client.get(run["artifacts"][0]["href"])
        assert served.status_code == 200 and served.text == report.read_text()
        assert served.headers["content-security-policy"] == REPORT_CSP
        assert client.get("/runs/4242/report/monitor").status_code == 404
        assert client.get("/runs/4242/report/../../etc").status_code == 404


def test_the_command_checks_its_tls_files_first() -> None:
    from typer.testing import CliRunner

    from components.common.errors import SeamlessError
    from pipelines.cli import app

    done = CliRunner().invoke(app, ["ui", "--tls-cert", "ui.crt", "--no-auth"])
    assert isinstance(done.exception, SeamlessError)
    assert str(done.exception) == "HTTPS needs both --tls-cert and --tls-key."
