"""Where a model version (or one prediction) came from, and what happened to it since.

The chain, with where each link is read from:

    sources ............ snapshot manifest (`source`, kind, source hash per table, and
                         the `pii` transforms: columns pseudonymized or dropped, key fingerprint)
    snapshot ........... snapshot store, addressed by the version's `seamless.data_sha256`
    validation ......... audit `data_access` step=validate + reports kept beside the snapshot
    features ........... version tag `seamless.feature_service` + audit step=features (views)
    training run ....... MLflow run of the version: params, tags, logged dataset inputs
    model version ...... MLflow registry: tags (seamless.*, holdout.*), aliases
    deployments ........ `<deployments>/history.jsonl` records of this version
    decisions .......... audit events whose subject is `model:<name>/<version>`
    batch scoring ...... audit `batch_scoring` events of the version: input, instants,
                         output and its hash, the offline tables the features came from

A missing link is listed under `gaps` rather than failing: older versions predate the
hooks, and a chain with a named hole is more useful than none. For a request id the
prediction log gives the model version, then the same chain follows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.env import deployments_dir, mlflow_tracking_uri, workspace
from components.common.errors import SeamlessError
from components.common.tables import read_manifest
from components.common.times import parse_utc
from components.governance import audit
from components.governance.snapshots import (
    reports_for,
    snapshot_path,
    snapshots_root,
    verify_snapshot,
)

_MODEL_ACTIONS = (
    audit.REGISTRY_CHANGE,
    audit.PROMOTION,
    audit.ROLLBACK,
    audit.DEPLOYMENT,
    audit.MODEL_RELOAD,
    audit.MONITORING_DECISION,
)


def _ms(ts: int | None) -> str | None:
    return None if not ts else datetime.fromtimestamp(ts / 1000, UTC).isoformat()


def _audit_events(subjects: set[str], log: audit.AuditLog | None) -> list[dict[str, Any]]:
    try:
        source = log or audit.audit_log()
        return [e for e in source.entries() if e.get("subject") in subjects]
    except SeamlessError:
        return []  # an unreachable audit database leaves a gap, reported by the caller


def _deployments(model_name: str, version: str, folder: Path) -> list[dict[str, Any]]:
    path = folder / "history.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("model_name") == model_name and str(rec.get("version")) == version:
            out.append(rec)
    return out


def _training_run(client: Any, run_id: str) -> dict[str, Any]:
    run = client.get_run(run_id)
    inputs = []
    for di in getattr(run.inputs, "dataset_inputs", None) or []:
        ds = di.dataset
        inputs.append(
            {
                "name": ds.name,
                "digest": ds.digest,
                "source_type": ds.source_type,
                "source": ds.source,
                "tags": {t.key: t.value for t in di.tags or []},
            }
        )
    return {
        "run_id": run_id,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "start_time": _ms(run.info.start_time),
        "end_time": _ms(run.info.end_time),
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "inputs": inputs,
    }


def model_lineage(
    model_name: str,
    version: str | int,
    *,
    log: audit.AuditLog | None = None,
    verify_content: bool = False,
) -> dict[str, Any]:
    """The whole chain for one model version as a JSON-ready dict."""
    from mlflow.exceptions import MlflowException

    from components.common.tracking import mlflow_client

    version = str(version)
    client = mlflow_client()
    try:
        mv = client.get_model_version(model_name, version)
    except MlflowException:
        raise SeamlessError(
            f"Model {model_name} version {version} does not exist in the MLflow registry "
            f"at {mlflow_tracking_uri()}."
        ) from None
    tags = dict(mv.tags)
    gaps: list[str] = []
    data_sha = tags.get("seamless.data_sha256") or ""
    chain: dict[str, Any] = {
        "model_name": model_name,
        "version": version,
        "model_version": {
            "name": model_name,
            "version": version,
            "created": _ms(mv.creation_timestamp),
            "source": mv.source,
            "run_id": mv.run_id,
            "aliases": sorted(getattr(mv, "aliases", []) or []),
            "tags": tags,
            "holdout_metrics": {
                k.removeprefix("holdout."): v for k, v in tags.items() if k.startswith("holdout.")
            },
            "description": mv.description or "",
        },
        "pipeline_run_id": tags.get("seamless.pipeline_run_id"),
        "data_sha256": data_sha or None,
    }

    # Snapshot and sources.
    snapshot: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = []
    if not data_sha:
        gaps.append("the model version has no seamless.data_sha256 tag")
    else:
        folder = snapshot_path(data_sha) if len(data_sha) == 64 else None
        if folder is not None and folder.is_dir():
            manifest = read_manifest(folder)
            problems = verify_snapshot(data_sha, content=verify_content)
            snapshot = {
                "sha256": data_sha,
                "path": str(folder),
                "intact": not problems,
                "problems": problems,
                "ingested_at": manifest.get("ingested_at"),
                "source_sha256": manifest.get("source_sha256"),
                # Snapshots from before the engine choice were all made locally.
                "engine": manifest.get("engine", "local"),
                **{k: manifest[k] for k in ("spark_version", "spark_master") if k in manifest},
                "tables": {
                    n: {"rows": e.get("rows"), "sha256": e.get("sha256")}
                    for n, e in manifest.get("tables", {}).items()
                },
                # Personal data: which columns ingest pseudonymized (and with which
                # key's fingerprint) or dropped; absent when the config tags none.
                **({"pii": manifest["pii"]} if manifest.get("pii") else {}),
            }
            sources = [
                {
                    "table": n,
                    "source": e.get("source"),
                    "kind": e.get("source_kind"),
                    "source_sha256": e.get("source_sha256"),
                    "engine": e.get("engine", manifest.get("engine", "local")),
                    **({"query": e["query"]} if "query" in e else {}),
                    **({"pii": e["pii"]} if e.get("pii") else {}),
                }
                for n, e in manifest.get("tables", {}).items()
            ]
            if problems:
                gaps.append(f"snapshot {data_sha[:12]} failed verification: {'; '.join(problems)}")
        else:
            gaps.append(f"no snapshot {data_sha[:12]} in {snapshots_root()}")
    chain["snapshot"] = snapshot
    chain["sources"] = sources

    subjects = {audit.model_subject(model_name, version)}
    if data_sha:
        subjects.add(audit.dataset_subject(data_sha))
    events = _audit_events(subjects, log)
    steps = [e for e in events if e.get("action") == audit.DATA_ACCESS]

    def step(name: str) -> list[dict[str, Any]]:
        return [e for e in steps if (e.get("details") or {}).get("step") == name]

    # Validation: every verdict on this snapshot, plus the reports kept beside it.
    validations = [
        {
            "time": e["time"],
            "actor": e["actor"],
            "decision": e["details"].get("decision"),
            "report": e["details"].get("report"),
            "pipeline_run_id": e["details"].get("pipeline_run_id"),
        }
        for e in step("validate")
    ]
    kept = [str(p) for p in reports_for(data_sha)] if len(data_sha) == 64 else []
    chain["validation"] = {
        "decision": tags.get("seamless.validation"),
        "runs": validations,
        "reports": kept,
    }
    if not validations and not kept:
        gaps.append("no validation report recorded for this snapshot")

    # Features.
    feature_events = step("features")
    latest = feature_events[-1]["details"] if feature_events else {}
    chain["features"] = {
        "feature_service": tags.get("seamless.feature_service") or latest.get("feature_service"),
        "feature_views": latest.get("feature_views", []),
        "training_set_sha256": latest.get("training_set_sha256"),
        "feast_repo": latest.get("feast_repo"),
    }
    if not feature_events:
        gaps.append("no features step recorded for this snapshot (feature views unknown)")

    # Training run.
    run_id = tags.get("seamless.train_run_id") or mv.run_id
    if run_id:
        try:
            chain["training_run"] = _training_run(client, run_id)
        except MlflowException:
            chain["training_run"] = None
            gaps.append(f"training run {run_id} is not in the tracking store")
    else:
        chain["training_run"] = None
        gaps.append("the model version names no training run")

    chain["deployments"] = _deployments(model_name, version, deployments_dir())
    chain["decisions"] = [
        {k: e.get(k) for k in ("seq", "time", "actor", "action", "details")}
        for e in events
        if e.get("action") in _MODEL_ACTIONS
    ]
    chain["batch_scoring"] = [
        {k: e.get(k) for k in ("seq", "time", "actor", "details")}
        for e in events
        if e.get("action") == audit.BATCH_SCORING
    ]
    chain["data_access"] = [
        {k: e.get(k) for k in ("seq", "time", "actor", "details")} for e in steps
    ]
    chain["gaps"] = gaps
    return chain


def find_request(request_id: str, predictions_dir: Path | None = None) -> dict[str, Any]:
    """The prediction log's record of one request (all its rows summarized): the folder,
    else the PostgreSQL table of `SEAMLESS_SERVE_LOG_URL` (as on a cluster), else
    `<workspace>/predictions`."""
    from components.predictions.postgres import redact
    from components.predictions.reader import read_log
    from components.predictions.records import LogQuery

    url = os.environ.get("SEAMLESS_SERVE_LOG_URL", "").strip()
    source: Path | str = predictions_dir or url or workspace() / "predictions"
    rows = list(read_log(source, "predictions", query=LogQuery(request_id=request_id)))
    if not rows:
        where = redact(source) if isinstance(source, str) else source
        raise SeamlessError(f"Request id {request_id} is not in the prediction log at {where}.")
    first = rows[0]
    return {
        "request_id": request_id,
        "time": first.get("ts"),
        "route": first.get("route"),
        "model_name": first.get("model_name"),
        "model_version": str(first.get("model_version")),
        "rows": len(rows),
        "entity_ids": [r.get("entity_id") for r in rows[:20]],
        "scores": [r.get("score") for r in rows[:20]],
        "decisions": [r.get("decision") for r in rows[:20]],
    }


def request_lineage(
    request_id: str,
    predictions_dir: Path | None = None,
    *,
    log: audit.AuditLog | None = None,
) -> dict[str, Any]:
    """The request, then the chain of the model version that answered it."""
    request = find_request(request_id, predictions_dir)
    chain = model_lineage(str(request["model_name"]), request["model_version"], log=log)
    return {"request": request, **chain}


# ---------------------------------------------------------------- text output


def render_tree(chain: dict[str, Any]) -> Any:
    """A rich Tree of the chain, sources at the root and decisions at the leaves."""
    from rich.tree import Tree

    title = f"[bold]{chain['model_name']} v{chain['version']}[/bold]"
    if chain.get("request"):
        req = chain["request"]
        title = f"[bold]request {req['request_id']}[/bold] ({req['rows']} rows, {req['time']})"
        title += f" -> {chain['model_name']} v{chain['version']}"
    root = Tree(title)
    if chain.get("request"):
        _request_rows(root, chain["request"])
    src = root.add("sources")
    for s in chain["sources"] or []:
        src.add(f"{s['table']}: {s['kind']} {s['source']} (sha256 {str(s['source_sha256'])[:12]})")
    if not chain["sources"]:
        src.add("[yellow]unknown[/yellow]")
    snap = chain.get("snapshot")
    if snap:
        state = "intact" if snap["intact"] else "[red]FAILED verification[/red]"
        engine = snap.get("engine", "local")
        if engine == "spark":
            engine += f" {snap.get('spark_version', '?')} on {snap.get('spark_master', '?')}"
        node = root.add(f"snapshot {snap['sha256'][:16]} ({state}, {engine}) {snap['path']}")
        for name, t in snap["tables"].items():
            node.add(f"{name}: {t['rows']} rows")
        pii = snap.get("pii")
        if pii:
            node.add(pii_line(pii))
    else:
        root.add(f"snapshot [yellow]{chain.get('data_sha256') or 'unknown'}[/yellow]")
    val = chain["validation"]
    vnode = root.add(f"validation: {val.get('decision') or 'unknown'}")
    for r in val["runs"]:
        vnode.add(f"{r['time']} {r['decision']} by {r['actor']}: {r['report']}")
    feats = chain["features"]
    views = ", ".join(feats["feature_views"]) or "views unknown"
    root.add(f"features: service {feats['feature_service']} ({views})")
    run = chain.get("training_run")
    if run:
        rnode = root.add(f"training run {run['run_id']} ({run['status']}, {run['start_time']})")
        for i in run["inputs"]:
            rnode.add(f"input {i['name']} digest {i['digest']}")
    mv = chain["model_version"]
    aliases = ", ".join(mv["aliases"]) or "no alias"
    mnode = root.add(f"model version {mv['name']} v{mv['version']} ({aliases})")
    for k, v in mv["holdout_metrics"].items():
        mnode.add(f"holdout {k} = {v}")
    dnode = root.add(f"deployments ({len(chain['deployments'])})")
    for d in chain["deployments"]:
        dnode.add(f"{d.get('deployed_at')} {d.get('target')} {d.get('model_uri')}")
    cnode = root.add(f"decisions ({len(chain['decisions'])})")
    for e in chain["decisions"]:
        cnode.add(f"#{e['seq']} {e['time']} {e['action']} by {e['actor']}")
    batches = chain.get("batch_scoring") or []
    if batches:
        bnode = root.add(f"batch scoring ({len(batches)})")
        for e in batches:
            d = e["details"]
            bnode.add(f"#{e['seq']} {e['time']} {d['rows']} rows of {d['input']} -> {d['output']}")
    if chain["gaps"]:
        gnode = root.add("[yellow]gaps[/yellow]")
        for g in chain["gaps"]:
            gnode.add(g)
    return root


def pii_line(pii: dict[str, Any]) -> str:
    """The snapshot's personal-data transforms in one line."""
    parts = []
    pseudo = [f"{t}.{c}" for t, cols in (pii.get("pseudonymized") or {}).items() for c in cols]
    if pseudo:
        parts.append(
            f"pseudonymized {', '.join(pseudo)} ({pii.get('method')}, key fingerprint "
            f"{pii.get('key_fingerprint')})"
        )
    dropped = [f"{t}.{c}" for t, cols in (pii.get("dropped") or {}).items() for c in cols]
    if dropped:
        parts.append(f"dropped {', '.join(dropped)}")
    return "pii: " + ("; ".join(parts) or "none")


def _request_rows(root: Any, req: dict[str, Any]) -> None:
    """What the request was answered: entity, score and decision per row (first 20)."""
    from rich.markup import escape

    shown = len(req.get("scores") or [])
    extra = f", first {shown} shown" if req["rows"] > shown else ""
    node = root.add(f"answered ({req['rows']} rows{extra}; route {req.get('route')})")
    ids, scores = req.get("entity_ids") or [], req.get("scores") or []
    rows = zip(ids, scores, req.get("decisions") or [], strict=False)
    for i, (entity, score, decision) in enumerate(rows):
        who = "no entity id (features sent)" if entity is None else f"entity {entity}"
        shown_score = f"{score:.4f}" if isinstance(score, int | float) else str(score)
        node.add(escape(f"[{i}] {who}: score {shown_score}, decision {decision}"))


# ---------------------------------------------------------------- OpenLineage

NAMESPACE = "seamless"
PRODUCER = "https://github.com/seamless/seamless/components/governance"


def openlineage_path() -> Path:
    return workspace() / "lineage" / "openlineage.jsonl"


def _when(value: str | None) -> datetime:
    return parse_utc(value) or datetime.now(UTC)


def openlineage_events(chain: dict[str, Any]) -> list[Any]:
    """The chain as OpenLineage COMPLETE run events, one per pipeline step.

    Jobs are the steps (`seamless.ingest` ... `seamless.deploy`) under a parent run
    for the pipeline run; datasets carry their content hashes as version facets.
    """
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent
    from openlineage.client.event_v2 import RunState as State
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        documentation_dataset,
        job_type_job,
        parent_run,
        tags_dataset,
    )
    from openlineage.client.uuid import generate_static_uuid

    name, version = chain["model_name"], chain["version"]
    pipeline_run = chain.get("pipeline_run_id") or f"unknown-{name}-{version}"
    created = _when(chain["model_version"].get("created"))
    ws = str(workspace())
    tracking = mlflow_tracking_uri()

    def run_id(job: str) -> str:
        return str(generate_static_uuid(created, f"{job}|{pipeline_run}|{name}|{version}".encode()))

    parent_id = run_id("pipeline")

    def dataset(
        cls: Any, namespace: str, ds_name: str, version_of: str | None, doc: str = "", **tags: Any
    ) -> Any:
        facets: dict[str, Any] = {}
        if version_of:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(version_of)
            )
        if doc:
            facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
                description=doc
            )
        if tags:
            facets["tags"] = tags_dataset.TagsDatasetFacet(
                tags=[
                    tags_dataset.TagsDatasetFacetFields(key=k, value=str(v), source="seamless")
                    for k, v in tags.items()
                    if v is not None
                ]
            )
        return cls(namespace=namespace, name=ds_name, facets=facets)

    def event(job: str, when: str | None, inputs: list[Any], outputs: list[Any]) -> Any:
        return RunEvent(
            eventType=State.COMPLETE,
            eventTime=_when(when).isoformat(),
            run=Run(
                runId=run_id(job),
                facets={
                    "parent": parent_run.ParentRunFacet.create(
                        parent_id, NAMESPACE, "seamless.training"
                    )
                },
            ),
            job=Job(
                namespace=NAMESPACE,
                name=f"seamless.{job}",
                facets={
                    "jobType": job_type_job.JobTypeJobFacet(
                        processingType="BATCH", integration="KUBEFLOW", jobType="TASK"
                    )
                },
            ),
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )

    data_sha = chain.get("data_sha256")
    snap = chain.get("snapshot") or {}
    snap_name = snap.get("path") or f"{ws}/snapshots/{data_sha}"
    events = []
    sources = [
        dataset(
            InputDataset,
            f"seamless.source.{s['kind']}",
            str(s["source"]),
            s.get("source_sha256"),
            table=s["table"],
        )
        for s in chain.get("sources", [])
    ]
    pii = snap.get("pii") or {}
    pii_tags = (
        {
            "pii_method": pii.get("method"),
            "pii_key_fingerprint": pii.get("key_fingerprint"),
            "pii_pseudonymized": ",".join(
                f"{t}.{c}" for t, cols in (pii.get("pseudonymized") or {}).items() for c in cols
            )
            or None,
            "pii_dropped": ",".join(
                f"{t}.{c}" for t, cols in (pii.get("dropped") or {}).items() for c in cols
            )
            or None,
        }
        if pii
        else {}
    )
    events.append(
        event(
            "ingest",
            snap.get("ingested_at"),
            sources,
            [
                dataset(
                    OutputDataset, "file", snap_name, data_sha, doc="ingested snapshot", **pii_tags
                )
            ],
        )
    )
    snap_in = dataset(InputDataset, "file", snap_name, data_sha)
    val = chain["validation"]
    reports = [
        dataset(OutputDataset, "file", r, None, doc="validation report") for r in val["reports"]
    ]
    when_val = val["runs"][-1]["time"] if val["runs"] else None
    events.append(event("validate", when_val, [snap_in], reports))
    feats = chain["features"]
    training_set = dataset(
        OutputDataset,
        "feast",
        str(feats.get("feature_service")),
        feats.get("training_set_sha256"),
        doc="point-in-time training set",
        views=",".join(feats.get("feature_views") or []) or None,
    )
    events.append(event("features", None, [snap_in], [training_set]))
    run = chain.get("training_run") or {}
    model_artifact = dataset(
        OutputDataset, tracking, f"runs/{run.get('run_id')}/model", run.get("run_id")
    )
    ts_in = dataset(
        InputDataset, "feast", str(feats.get("feature_service")), feats.get("training_set_sha256")
    )
    events.append(event("train", run.get("end_time"), [ts_in], [model_artifact]))
    mv = chain["model_version"]
    version_ds = dataset(
        OutputDataset,
        tracking,
        f"models/{name}/{version}",
        version,
        aliases=",".join(mv["aliases"]) or None,
        data_sha256=data_sha,
    )
    art_in = dataset(InputDataset, tracking, f"runs/{run.get('run_id')}/model", run.get("run_id"))
    events.append(event("register", mv.get("created"), [art_in], [version_ds]))
    for d in chain["deployments"]:
        target = dataset(OutputDataset, "seamless.deploy", f"{d.get('target')}/{name}", version)
        mv_in = dataset(InputDataset, tracking, f"models/{name}/{version}", version)
        events.append(event("deploy", d.get("deployed_at"), [mv_in], [target]))
    return events


def export_openlineage(chain: dict[str, Any], path: Path | None = None) -> Path:
    """Append the chain's OpenLineage events to a JSON-lines file (FileTransport)."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    target = path or openlineage_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    client = OpenLineageClient(
        transport=FileTransport(FileConfig(log_file_path=str(target), append=True))
    )
    for ev in openlineage_events(chain):
        client.emit(ev)
    return target


def iter_openlineage(path: Path | None = None) -> Iterator[dict[str, Any]]:
    target = path or openlineage_path()
    if target.is_file():
        for line in target.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)
