"""The lineage of a model version or of one request, as a graph of boxes and arrows.

The chain itself is `governance.lineage` (`model_lineage`, `request_lineage`), the
same dict `seamless lineage --json` prints; this module only turns it into nodes and
edges: sources -> snapshot -> validation -> features -> training run -> model version
-> deployments / batch scoring, and for a request, the request -> the version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.dashboard.graph import Graph, Node
from components.dashboard.markup import path


def _short(value: Any, n: int = 12) -> str:
    return str(value)[:n] if value else "unknown"


def lineage_graph(chain: dict[str, Any]) -> Graph:
    g = Graph()
    name, version = chain["model_name"], chain["version"]
    sha = chain.get("data_sha256")
    source_ids = []
    for i, s in enumerate(chain.get("sources") or []):
        node = g.add(
            Node(
                f"source-{i}",
                f"source {s.get('table')}",
                [
                    f"{s.get('kind')}: {Path(str(s.get('source') or '')).name}",
                    f"sha256 {_short(s.get('source_sha256'))}",
                ],
                "source",
            )
        )
        source_ids.append(node.id)
    snap = chain.get("snapshot")
    if sha:
        rows = sum(int(t.get("rows") or 0) for t in (snap or {}).get("tables", {}).values())
        state = "intact" if snap and snap.get("intact") else "not verified" if snap else "missing"
        g.add(
            Node(
                "snapshot",
                f"snapshot {_short(sha)}",
                [f"{rows} rows", state],
                "snapshot",
                path("data", sha),
            ),
            *source_ids,
        )
    upstream = ["snapshot"] if sha else source_ids
    val = chain.get("validation") or {}
    if val.get("decision") or val.get("runs"):
        g.add(
            Node(
                "validation",
                f"validation: {val.get('decision') or 'unknown'}",
                [
                    f"{len(val.get('runs') or [])} run(s)",
                    f"{len(val.get('reports') or [])} report(s)",
                ],
                "validation",
                path("data", sha) if sha else None,
            ),
            *upstream,
        )
        upstream = ["validation"]
    feats = chain.get("features") or {}
    if feats.get("feature_service"):
        views = feats.get("feature_views") or []
        g.add(
            Node(
                "features",
                f"features {feats['feature_service']}",
                [", ".join(views) or "views unknown"],
                "features",
            ),
            *upstream,
        )
        upstream = ["features"]
    run = chain.get("training_run")
    if run:
        g.add(
            Node(
                "training",
                f"training run {_short(run.get('run_id'), 10)}",
                [str(run.get("status")), str(run.get("start_time") or "")[:19]],
                "training",
            ),
            *upstream,
        )
        upstream = ["training"]
    mv = chain.get("model_version") or {}
    aliases = ", ".join(mv.get("aliases") or []) or "no alias"
    holdout = mv.get("holdout_metrics") or {}
    ranked = [k for k in ("roc_auc", "pr_auc", "f1") if k in holdout] + sorted(holdout)
    metric = (ranked[0], holdout[ranked[0]]) if ranked else None
    g.add(
        Node(
            "model",
            f"{name} v{version}",
            [aliases, f"holdout {metric[0]} {metric[1]}" if metric else "no holdout metrics"],
            "model",
            path("models", name, version),
        ),
        *upstream,
    )
    for i, d in enumerate(chain.get("deployments") or []):
        g.add(
            Node(
                f"deploy-{i}",
                f"deployed {d.get('target', '')}".strip(),
                [str(d.get("deployed_at") or "")[:19]],
                "deployment",
            ),
            "model",
        )
    for i, b in enumerate(chain.get("batch_scoring") or []):
        d = b.get("details") or {}
        g.add(
            Node(
                f"batch-{i}",
                f"batch scoring #{b.get('seq')}",
                [f"{d.get('rows')} rows", Path(str(d.get("output") or "")).name],
                "batch",
            ),
            "model",
        )
    req = chain.get("request")
    if req:
        g.add(
            Node(
                "request",
                f"request {_short(req.get('request_id'), 24)}",
                [
                    f"{req.get('rows')} rows, route {req.get('route')}",
                    str(req.get("time") or "")[:19],
                ],
                "request",
            ),
            "model",
        )
    return g
