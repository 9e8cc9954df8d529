"""The Grafana dashboard (manifests/grafana/): a data-source variable every panel uses,
a layout without overlaps, every PromQL expression parsed by promtool, every metric it
reads one that Seamless exports, and the ConfigMap that Grafana's sidecar loads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.require import unavailable

pytestmark = pytest.mark.manifests

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "manifests" / "grafana"
DASHBOARD = json.loads((FOLDER / "seamless-dashboard.json").read_text())
# Grafana's own variables, replaced by durations before promtool reads the expressions.
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p["targets"]]


def test_one_datasource_variable_that_every_panel_and_query_uses() -> None:
    [variable] = DASHBOARD["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels():
        assert panel["datasource"] == wanted, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == wanted for t in panel["targets"]), panel["title"]


def test_ids_are_unique_and_panels_do_not_overlap() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    boxes = [p["gridPos"] for p in DASHBOARD["panels"]]
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (a, b)
    assert DASHBOARD["uid"] == "seamless-overview"


def test_every_expression_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed: apt-get install prometheus")
    rules = []
    for n, expr in enumerate(_exprs()):
        for variable, duration in GRAFANA_RANGES.items():
            expr = expr.replace(variable, duration)
        assert "$" not in expr, f"a dashboard variable promtool cannot read: {expr}"
        rules.append({"record": f"seamless:dashboard_query_{n}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def _exported() -> set[str]:
    """Series names serving registers, and the ones the monitoring job writes."""
    from components.common.monitoring_gauges import gauge_names
    from components.serve.metrics import ServeMetrics

    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in ServeMetrics().registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names | gauge_names()


def test_every_metric_read_is_one_seamless_exports() -> None:
    read = {name for expr in _exprs() for name in re.findall(r"seamless_[a-z_]+", expr)}
    assert read, "no Seamless metric in the dashboard"
    assert read - _exported() == set()
    # Both sources are on it: serving and the monitoring pipeline.
    assert any(n.startswith("seamless_serve_") for n in read)
    assert {"seamless_drift_psi", "seamless_live_roc_auc"} <= read


def test_the_configmap_carries_the_sidecar_label(kubectl: str) -> None:
    out = subprocess.run(
        [kubectl, "kustomize", str(FOLDER)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    [config_map] = list(yaml.safe_load_all(out))
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "seamless-grafana-dashboard"
    assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert json.loads(config_map["data"]["seamless-dashboard.json"]) == DASHBOARD
