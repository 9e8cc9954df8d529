"""The dashboard over a real small workspace (tests/dashboard/workspace.py), through HTTP.

Every number a page shows is compared with the same number read independently from
where it is kept: the MLflow registry and runs, the audit trail file, the snapshot's
Parquet tables, the prediction log. Also: tokens and roles (401, 403 with the denial
audited), the browser session cookie, 404 sentences, hostile text, the security
headers, no reference to another host, and an empty workspace.
"""

from __future__ import annotations

import hashlib
import html
import json
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from components.common.tables import read_manifest
from components.dashboard.app import create_app
from components.dashboard.auth import COOKIE
from components.dashboard.layout import CSP, REPORT_CSP
from components.dashboard.settings import DashboardSettings
from components.governance.audit import FileAuditLog
from components.governance.lineage import model_lineage
from components.governance.snapshots import reports_for, snapshot_path
from components.predictions.reader import read_log
from tests.dashboard.workspace import HOSTILE, RUN_1, RUN_2
from tests.helpers.cli import run_cli

pytestmark = [pytest.mark.governance, pytest.mark.slow]

ADMIN, PREDICT = "dash-admin-token-0123", "dash-predict-token-4567"
TOKENS = json.dumps({ADMIN: "admin", PREDICT: "predict"})
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_PREDICT = {"Authorization": f"Bearer {PREDICT}"}


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(DashboardSettings(tokens_json=TOKENS))


@pytest.fixture()
def client(app: Any, dash_env: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def pages(dash: dict[str, Any]) -> list[str]:
    name, (v1, _) = dash["config"].model.name, dash["versions"]
    return [
        "/", "/runs", "/data", f"/data/{dash['sha']}", "/models", f"/models/{name}",
        f"/models/{name}/{v1}", f"/monitoring?model={name}", "/lineage",
        f"/lineage/model/{name}/{v1}", f"/lineage/request/{dash['request_ids'][0]}", "/audit",
    ]  # fmt: skip


class Dom(HTMLParser):
    """Start tags with their attributes, in document order."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def having(self, tag: str, css: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and css in (a.get("class") or "").split()]


# ----------------------------------------------------------------- access


def test_every_page_needs_a_valid_token(client: TestClient, dash: dict[str, Any]) -> None:
    for page in [*pages(dash), "/api/runs", "/api/audit"]:
        bare = client.get(page)
        assert bare.status_code == 401, page
        assert bare.headers["www-authenticate"] == "Bearer"
        wrong = client.get(page, headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401, page
        client.cookies.set(COOKIE, "eyJhIjoieCIsInIiOiJhZG1pbiJ9.AAAA")
        assert client.get(page).status_code == 401, page
        client.cookies.clear()
    # A browser gets the sign-in form; a script gets one sentence.
    assert 'action="/login"' in client.get("/models").text
    assert client.get("/api/models").json() == {
        "error": "Sign in: this page needs a valid token (missing or unknown)."
    }


def test_a_predict_token_sees_everything_but_the_audit_trail(
    client: TestClient, dash: dict[str, Any]
) -> None:
    for page in pages(dash):
        answer = client.get(page, headers=AS_PREDICT)
        if page == "/audit":
            assert answer.status_code == 403
            assert "(role viewer) may not audit_show: needs one of data_engineer" in answer.text
        else:
            assert answer.status_code == 200, (page, answer.text[:300])
    assert client.get("/api/audit", headers=AS_PREDICT).status_code == 403
    # The refusal is on the record, under the token's audit name, never the token itself.
    actor = "token:" + hashlib.sha256(PREDICT.encode()).hexdigest()[:12]
    denied = [e for e in FileAuditLog().entries() if e["action"] == "access_denied"]
    assert denied and denied[-1]["actor"] == actor and denied[-1]["subject"] == "ui:/api/audit"
    assert PREDICT not in (dash["ws"] / "audit" / "audit.jsonl").read_text()
    assert client.get("/audit", headers=AS_ADMIN).status_code == 200


def test_browser_session_cookie(client: TestClient, dash: dict[str, Any]) -> None:
    signed = client.post(
        "/login", data={"token": PREDICT, "next": "/models"}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/models"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and PREDICT not in cookie
    session = signed.cookies[COOKIE]
    assert client.get("/models").status_code == 200  # the client kept the cookie
    assert client.get("/audit").status_code == 403  # still a viewer
    # Tampering with the signed content breaks the MAC.
    body, mac = session.split(".")
    client.cookies.clear()
    client.cookies.set(COOKIE, body.replace(body[:8], "AAAAAAAA") + "." + mac)
    assert client.get("/models").status_code == 401
    client.cookies.clear()
    # The URL form (what headless Chromium uses), a bad token, and no open redirect.
    via_url = client.get(f"/login?token={ADMIN}&next=//elsewhere.example/x", follow_redirects=False)
    assert via_url.status_code == 303 and via_url.headers["location"] == "/"
    assert client.get("/login?token=nope", follow_redirects=False).status_code == 401
    # Signing in from another site (login CSRF) is refused.
    cross = client.post(
        "/login", data={"token": ADMIN}, headers={"Origin": "http://attacker.example"},
        follow_redirects=False,
    )  # fmt: skip
    assert cross.status_code == 403
    fetch = client.get(
        f"/login?token={ADMIN}", headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert fetch.status_code == 403
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]


# ----------------------------------------------------------------- pages


def test_runs_show_steps_durations_status_and_artifacts(
    client: TestClient, dash: dict[str, Any]
) -> None:
    runs = {r["id"]: r for r in client.get("/api/runs", headers=AS_ADMIN).json()["runs"]}
    first, second = runs[RUN_1], runs[RUN_2]
    steps = ["ingest", "validate", "features", "train", "register", "promote", "deploy"]
    assert [s["name"] for s in first["steps"]] == steps
    assert [s["name"] for s in second["steps"]] == ["train", "register"]
    assert first["pipeline"] == second["pipeline"] == "training"
    v1, v2 = dash["versions"]
    assert first["outcome"] == f"credit_risk version {v1} promoted"
    verdict = "promoted" if dash["gates"][1].decision == "promote" else "kept as challenger"
    assert second["outcome"] == f"credit_risk version {v2} {verdict}"
    # Audit-timed durations are the gaps between the run's own audit entries.
    mine = [e for e in FileAuditLog().entries() if e["details"].get("pipeline_run_id") == RUN_1]
    times = [pd.Timestamp(e["time"]) for e in mine]
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    assert [s["seconds"] for s in first["steps"][1:]] == pytest.approx(gaps, abs=1e-3)
    # The validation report link serves the report kept beside the snapshot, sandboxed.
    (report,) = [a for s in first["steps"] for a in s["links"] if a["label"] == "validation report"]
    kept = reports_for(dash["sha"])[0]
    answer = client.get(report["href"], headers=AS_ADMIN)
    assert answer.status_code == 200 and answer.content == kept.read_bytes()
    assert answer.headers["content-security-policy"] == REPORT_CSP

    # The batch scoring run went through kfp.local: its step log gives the task's times
    # and status, and the audit entry the step wrote falls inside that task.
    (batch,) = [r for r in runs.values() if r["pipeline"] == "batch-scoring"]
    scored = [e for e in FileAuditLog().entries() if e["action"] == "batch_scoring"][-1]
    assert batch["id"] == scored["details"]["pipeline_run_id"]
    assert scored["details"]["batch_id"] == json.loads(dash["batch"])["batch_id"]
    assert batch["status"] == "succeeded" and batch["timing"] == "log"
    (task,) = batch["steps"]
    assert task["name"] == "batch-score" and task["status"] == "succeeded"
    start, end = pd.Timestamp(task["started"]), pd.Timestamp(task["ended"])
    assert start <= pd.Timestamp(scored["time"]) <= end
    assert task["seconds"] == pytest.approx((end - start).total_seconds(), abs=1e-3)
    assert task["summary"] == f"{scored['details']['rows']} rows scored by v{v1}"
    assert batch["log"] and (dash["ws"] / "logs" / batch["log"]).is_file()

    page = client.get("/runs", headers=AS_ADMIN).text
    for run_id in (RUN_1, RUN_2, batch["id"]):
        assert f'id="run-{run_id}"' in page
    seconds = task["seconds"]
    assert (f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min") in page


def test_data_pages_show_rows_verdict_and_the_column_profile(
    client: TestClient, dash: dict[str, Any]
) -> None:
    sha = dash["sha"]
    listed = client.get("/api/data", headers=AS_ADMIN).json()["datasets"]
    (mine,) = [d for d in listed if d["sha256"] == sha]
    manifest = read_manifest(snapshot_path(sha))
    assert mine["tables"] == {n: t["rows"] for n, t in manifest["tables"].items()}
    assert mine["rows"] == sum(t["rows"] for t in manifest["tables"].values())
    assert mine["validation"] == dash["validation"]
    assert mine["pipeline_runs"] == [RUN_1, RUN_2]

    found = client.get(f"/api/data/{sha}", headers=AS_ADMIN).json()
    profile = found["profile"]["tables"]
    for table in manifest["tables"]:
        frame = pd.read_parquet(snapshot_path(sha) / f"{table}.parquet")
        columns = {c["name"]: c for c in profile[table]["columns"]}
        assert list(columns) == list(frame.columns)
        for name in frame.columns:
            assert columns[name]["nulls"] == int(frame[name].isna().sum()), (table, name)
    page = client.get(f"/data/{sha}", headers=AS_ADMIN)
    dom = Dom(page.text)
    shown = [a.get("data-table") for a in dom.having("table", "profile")]
    assert shown == list(manifest["tables"])
    assert len(dom.having("svg", "spark")) >= 10  # numeric columns draw their histogram
    assert f"/data/{sha}/reports/{reports_for(sha)[0].name}" in page.text


def test_models_show_versions_gates_aliases_and_who_moved_them(
    client: TestClient, dash: dict[str, Any]
) -> None:
    name, (v1, v2) = dash["config"].model.name, dash["versions"]
    mlflow = MlflowClient()
    registered = mlflow.get_registered_model(name)
    found = client.get(f"/api/models/{name}", headers=AS_ADMIN).json()
    aliases = {a: str(v) for a, v in registered.aliases.items()}
    assert found["aliases"] == {
        a: aliases.get(a) for a in ("champion", "challenger", "previous_champion")
    }
    by_version = {v["version"]: v for v in found["versions"]}
    assert list(by_version) == [v2, v1]
    for version, item in by_version.items():
        tags = mlflow.get_model_version(name, version).tags
        holdout = {k[8:]: float(v) for k, v in tags.items() if k.startswith("holdout.")}
        assert item["holdout"] == holdout
        assert item["aliases"] == sorted(a for a, v in aliases.items() if v == version)
    # The gate's two numbers, exactly as the gate computed them (the register hook records
    # them in the audit entry).
    for version, decision in zip((v1, v2), dash["gates"], strict=True):
        gate = by_version[version]["gate"]
        assert gate["promoted"] is (decision.decision == "promote")
        assert gate["metric"] == decision.metric
        assert gate["challenger"] == decision.challenger
        assert gate["champion"] == decision.champion
        if decision.champion is not None:
            assert gate["champion_version"] == decision.champion_version
    # Who moved the champion, and why: from the audit trail, newest first.
    moves = found["moves"]
    assert [(m["action"], m["actor"]) for m in moves[:2]] == [
        ("rollback", "bob"),
        ("promotion", "alice"),
    ]
    assert moves[1]["reason"] == HOSTILE and moves[1]["to_version"] == v2
    assert moves[0]["reason"] == "live AUC dropped after the switch"

    page = client.get(f"/models/{name}", headers=AS_ADMIN).text
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert "<img" not in page and "<b>" not in page
    gate_2 = dash["gates"][1]
    assert f"challenger {gate_2.challenger:.4f}" in page
    one = client.get(f"/models/{name}/{v2}", headers=AS_ADMIN).text
    assert html.escape(HOSTILE) in one and HOSTILE not in one


def test_unknown_names_are_404_in_one_sentence(client: TestClient, dash: dict[str, Any]) -> None:
    name = dash["config"].model.name
    sha = dash["sha"]
    cases = [  # (path, sentence, has a JSON twin under /api)
        ("/models/nope", "There is no registered model named 'nope'.", True),
        (f"/models/{name}/99", f"Model '{name}' has no version '99'.", True),
        (f"/models/{name}/abc", f"Model '{name}' has no version 'abc'.", True),
        ("/data/" + "0" * 64, "No dataset snapshot " + "0" * 64 + " is recorded here.", True),
        ("/data/not-a-sha", "No dataset snapshot not-a-sha is recorded here.", True),
        (f"/data/{sha}/reports/nope.html",
         f"Snapshot {sha[:12]} has no report named nope.html.", False),
        ("/monitoring?model=nope", "There is no registered model named 'nope' to monitor.", True),
        (f"/lineage/model/{name}/99", f"Model '{name}' has no version '99'.", True),
        ("/lineage/request/no-such-request",
         "Request id 'no-such-request' is not in the prediction log.", True),
        ("/audit?page=9", "The audit trail has no page 9.", True),
        ("/monitoring/" + "f" * 32 + "/report",
         "No monitoring run " + "f" * 32 + " with a report is recorded.", False),
        ("/no/such/page", "There is no such page.", False),
    ]  # fmt: skip
    for path, sentence, twin in cases:
        answer = client.get(path, headers=AS_ADMIN)
        assert answer.status_code == 404, path
        assert html.escape(sentence) in answer.text, (path, answer.text[-600:])
        if twin:
            api = client.get("/api" + path, headers=AS_ADMIN)
            assert api.status_code == 404 and api.json() == {"error": sentence}, path
    bad = client.get("/audit?page=x", headers=AS_ADMIN)
    assert bad.status_code == 400 and "Parameter page" in bad.text


def test_monitoring_shows_drift_performance_and_traffic(
    client: TestClient, dash: dict[str, Any]
) -> None:
    name, (v1, _) = dash["config"].model.name, dash["versions"]
    found = client.get(f"/api/monitoring?model={name}", headers=AS_ADMIN).json()
    checks = dash["checks"]
    assert [r["run_id"] for r in found["runs"]] == [c.mlflow_run_id for c in checks]
    for run, check in zip(found["runs"], checks, strict=True):
        assert run["decision"] == check.decision and run["version"] == check.model_version
        assert run["psi"] == {f.feature: pytest.approx(f.psi) for f in check.drift.features}
        assert run["status"] == {f.feature: f.status for f in check.drift.features}
        assert run["live"]["roc_auc"] == pytest.approx(check.performance.metrics["roc_auc"])
    assert found["runs"][1]["status"]["credit_utilization"] == "drift"
    holdout = float(MlflowClient().get_model_version(name, v1).tags["holdout.roc_auc"])
    assert found["performance"]["roc_auc"]["holdout"] == [holdout, holdout]
    # Traffic: the whole (small) log, counted here from the log itself.
    records = [r for r in read_log(dash["ws"] / "predictions", "predictions")]
    traffic = found["traffic"]
    assert traffic["records"] == len(records) and traffic["complete"]
    scores = np.array([r["score"] for r in records], dtype=float)
    expected = np.histogram(np.clip(scores, 0, 0.999999), bins=10, range=(0, 1))[0]
    assert traffic["score_bins"] == expected.tolist()
    assert sum(traffic["per_hour"].values()) == len(records)

    page = client.get(f"/monitoring?model={name}", headers=AS_ADMIN)
    dom = Dom(page.text)
    features = {f.feature for c in checks for f in c.drift.features}
    cells = [a for t, a in dom.tags if t == "rect" and "cell" in (a.get("class") or "")]
    drawn = [a for a in cells if "empty" not in (a.get("class") or "")]
    finite = sum(1 for c in checks for f in c.drift.features if np.isfinite(f.psi))
    assert len(drawn) == finite and len(cells) == len(features) * len(checks)
    hot = [
        a for a in drawn if a["data-row"] == "credit_utilization" and a["data-status"] == "drift"
    ]
    assert len(hot) == 1 and float(hot[0]["data-value"] or 0) > 0.25
    live = [a for a in dom.having("circle", "live") if a.get("data-series") == "live roc_auc"]
    assert [float(a["data-value"] or 0) for a in live] == pytest.approx(
        [c.performance.metrics["roc_auc"] for c in checks]
    )
    bars = dom.having("rect", "bar")
    assert sum(int(a["data-count"] or 0) for a in bars) == 2 * len(records)  # volume + scores
    # Each run's drift report, from its MLflow run, sandboxed.
    report = client.get(f"/monitoring/{checks[1].mlflow_run_id}/report", headers=AS_ADMIN)
    assert report.status_code == 200 and "credit_utilization" in report.text
    assert report.headers["content-security-policy"] == REPORT_CSP


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_re_export_the_latest_monitoring_run_for_prometheus(
    client: TestClient, dash: dict[str, Any]
) -> None:
    """On a cluster the monitor step's textfile goes with its pod: Prometheus scrapes the
    dashboard, which publishes the latest run from MLflow as the same series."""
    from prometheus_client import generate_latest

    from components.monitor.exporters import prometheus_registry

    answer = client.get("/metrics")  # open, like serving's
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    served = _samples(answer.text)
    latest = dash["checks"][-1]
    written = _samples(generate_latest(prometheus_registry(latest)).decode())
    stamp = "seamless_monitor_last_run_timestamp_seconds"
    for key, value in written.items():
        if key[0] == stamp or value != value:  # NaN (a p-value) is not logged to MLflow
            continue
        assert served.get(key) == pytest.approx(value), key
    assert {k for k in served if k[0] != stamp} <= set(written)
    assert ("seamless_drift_psi", (("feature", "credit_utilization"), ("model", latest.model_name),
            ("version", latest.model_version))) in served  # fmt: skip
    run = MlflowClient().get_run(str(latest.mlflow_run_id))
    [(_, when)] = [(k, v) for k, v in served.items() if k[0] == stamp]
    assert when == pytest.approx(run.info.start_time / 1000)


def test_lineage_graph_of_a_version_and_of_a_request(
    client: TestClient, dash: dict[str, Any]
) -> None:
    name, (v1, _) = dash["config"].model.name, dash["versions"]
    chain = client.get(f"/api/lineage/model/{name}/{v1}", headers=AS_ADMIN).json()
    direct = json.loads(json.dumps(model_lineage(name, v1), default=str))
    for key in ("data_sha256", "sources", "validation", "features", "deployments", "gaps"):
        assert chain[key] == direct[key], key
    page = client.get(f"/lineage/model/{name}/{v1}", headers=AS_ADMIN).text
    dom = Dom(page)
    nodes = [a["data-node"] for t, a in dom.tags if t == "g" and a.get("data-node")]
    tables = [f"source-{i}" for i in range(len(direct["sources"]))]
    assert nodes[: len(tables) + 4] == [*tables, "snapshot", "validation", "features", "training"]
    assert "model" in nodes and any(n.startswith("deploy-") for n in nodes)
    assert any(n.startswith("batch-") for n in nodes)
    edges = {
        (a["data-from"], a["data-to"]) for t, a in dom.tags if t == "path" and a.get("data-to")
    }
    assert {("snapshot", "validation"), ("training", "model")} <= edges

    request_id = dash["request_ids"][0]
    one = client.get(f"/api/lineage/request/{request_id}", headers=AS_ADMIN).json()
    assert one["request"]["request_id"] == request_id and one["version"] == v1
    drawn = Dom(client.get(f"/lineage/request/{request_id}", headers=AS_ADMIN).text)
    links = {
        (a["data-from"], a["data-to"]) for t, a in drawn.tags if t == "path" and a.get("data-to")
    }
    assert ("model", "request") in links


def test_audit_trail_with_its_verification(client: TestClient, dash: dict[str, Any]) -> None:
    log = FileAuditLog()
    found = client.get("/api/audit", headers=AS_ADMIN).json()
    verified = log.verify()
    assert found["verify"]["status"] == "ok" and found["verify"]["message"] == verified.message()
    entries = list(log.entries())
    assert found["total"] == len(entries)
    assert [e["seq"] for e in found["entries"]] == [e["seq"] for e in reversed(entries)][:50]
    page = client.get("/audit", headers=AS_ADMIN).text
    assert verified.head_hash in page
    # Details are shown as JSON text: the hostile reason is there, inert.
    assert html.escape(json.dumps(HOSTILE, ensure_ascii=False)[1:-1]) in page
    assert HOSTILE not in page and "<img" not in page


def test_headers_and_no_other_host_anywhere(client: TestClient, dash: dict[str, Any]) -> None:
    for page in [*pages(dash), "/api/runs", "/static/dashboard.css"]:
        answer = client.get(page, headers=AS_ADMIN)
        assert answer.status_code == 200, page
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "http://" not in answer.text and "https://" not in answer.text, page
        if page.startswith("/api") or page.endswith(".css"):
            continue
        dom = Dom(answer.text)
        assert not [t for t, _ in dom.tags if t in ("script", "iframe", "object", "embed")]
        for _, attrs in dom.tags:
            for key in ("href", "src", "action"):
                value = attrs.get(key)
                assert value is None or value.startswith(("/", "#")), (page, key, value)
            assert not any(k.startswith("on") for k in attrs), (page, attrs)


def test_an_empty_workspace_shows_empty_states(
    app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "empty"
    ws.mkdir()
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SEAMLESS_FEAST_REPO", raising=False)
    sentences = {
        "/": "No registered model yet: run the training pipeline first.",
        "/runs": "No pipeline run recorded yet",
        "/data": "No dataset snapshot yet: ingest some data first.",
        "/models": "No registered model yet: run the training pipeline first.",
        "/monitoring": "No registered model yet, so nothing is monitored.",
        "/audit": "The audit trail is empty.",
    }
    with TestClient(app) as client:
        for page, sentence in sentences.items():
            answer = client.get(page, headers=AS_ADMIN)
            assert answer.status_code == 200, (page, answer.text[-500:])
            assert sentence in answer.text, page
        assert client.get("/models/credit_risk", headers=AS_ADMIN).status_code == 404
    assert sorted(p.name for p in ws.iterdir()) == []  # read-only: nothing was created


def test_the_command_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    unset = ("SEAMLESS_SERVE_TOKENS", "SEAMLESS_SERVE_TOKENS_FILE", "SEAMLESS_SERVE_OIDC_ISSUER",
             "SEAMLESS_SERVE_OIDC_AUDIENCE")  # fmt: skip
    done = run_cli("ui", "--workspace", str(ws), cwd=tmp_path, drop=unset)
    assert done.returncode == 1
    assert "No dashboard tokens configured" in done.stderr and "Traceback" not in done.stderr
    # The module form (what a pod's command can be) checks the workspace before starting.
    missing = subprocess.run(
        [sys.executable, "-m", "pipelines.ui_cli", "--workspace", str(tmp_path / "nope"),
         "--no-auth"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert f"Workspace {tmp_path / 'nope'} does not exist." in missing.stderr
