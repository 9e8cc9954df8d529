"""Datasets: each snapshot's hash, rows, validation verdict and per-column profile.

Read from the audit trail (`data_access` entries about `dataset:<sha256>`: ingest with its
sources and rows, validate with its verdict and kept report, features, train) and the
snapshot store (`governance.snapshots`: the manifest, the reports kept beside it). The
per-column profile is the validate stage's own (`validate.profile.profile_tables`)
computed from the snapshot's tables on first view; snapshots are immutable, so it is
kept (a few per process) instead of recomputed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from components.common.errors import SeamlessError
from components.common.tables import read_manifest
from components.governance.snapshots import (
    list_snapshots,
    remote_root,
    reports_for,
    snapshot_path,
)

_PROFILES: OrderedDict[str, dict[str, Any]] = OrderedDict()
_PROFILES_KEPT = 8
_lock = threading.Lock()


def is_sha(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _manifest(sha: str) -> dict[str, Any] | None:
    folder = snapshot_path(sha)
    if not folder.is_dir():
        return None
    try:
        return read_manifest(folder)
    except (SeamlessError, OSError, ValueError):
        return None


def _events(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        subject = str(e.get("subject") or "")
        if e.get("action") == "data_access" and subject.startswith("dataset:"):
            out.setdefault(subject.removeprefix("dataset:"), []).append(e)
    return out


def _summary(sha: str, events: list[dict[str, Any]], manifest: dict[str, Any] | None) -> dict:
    steps = [(e.get("details") or {}) for e in events]
    ingest = next((d for d in steps if d.get("step") == "ingest"), {})
    validations = [(e, e.get("details") or {}) for e in events]
    validations = [(e, d) for e, d in validations if d.get("step") == "validate"]
    if manifest is not None:
        tables = {n: t.get("rows") for n, t in (manifest.get("tables") or {}).items()}
    else:
        tables = {n: s.get("rows") for n, s in (ingest.get("sources") or {}).items()}
    last = validations[-1] if validations else None
    return {
        "sha256": sha,
        "ingested_at": (manifest or {}).get("ingested_at")
        or (events[0].get("time") if events else None),
        "tables": tables,
        "rows": sum(int(r or 0) for r in tables.values()),
        "validation": None if last is None else last[1].get("decision"),
        "validated_at": None if last is None else last[0].get("time"),
        "pipeline_runs": sorted(
            {str(d.get("pipeline_run_id")) for d in steps if d.get("pipeline_run_id")}
        ),
        "stored": manifest is not None,
    }


def list_datasets(entries: list[dict[str, Any]], limit: int = 50) -> list[dict[str, Any]]:
    """Newest first: every dataset the audit trail names, and snapshots it does not."""
    events = _events(entries)
    shas = list(events)
    shas += [s for s in list_snapshots() if s not in events]
    out = [_summary(s, events.get(s, []), _manifest(s)) for s in shas]
    out.sort(key=lambda d: str(d["ingested_at"] or ""), reverse=True)
    return out[:limit]


def dataset(entries: list[dict[str, Any]], sha: str) -> dict[str, Any] | None:
    """One dataset's page data; None when neither the trail nor the store knows it."""
    if not is_sha(sha):
        return None
    events = _events(entries).get(sha, [])
    manifest = _manifest(sha)
    if not events and manifest is None:
        return None
    out = _summary(sha, events, manifest)
    ingest = next(
        (
            e.get("details") or {}
            for e in events
            if (e.get("details") or {}).get("step") == "ingest"
        ),
        {},
    )
    out["sources"] = {
        name: {k: s.get(k) for k in ("source", "source_kind", "source_sha256", "rows")}
        for name, s in (ingest.get("sources") or {}).items()
    }
    if manifest is not None:
        out["table_hashes"] = {n: t.get("sha256") for n, t in manifest["tables"].items()}
        out["engine"] = manifest.get("engine", "local")
    out["validations"] = [
        {
            "time": e.get("time"),
            "actor": e.get("actor"),
            "decision": (e.get("details") or {}).get("decision"),
            "report": Path(str((e.get("details") or {}).get("report") or "")).name or None,
            "pipeline_run_id": (e.get("details") or {}).get("pipeline_run_id"),
        }
        for e in events
        if (e.get("details") or {}).get("step") == "validate"
    ]
    out["reports"] = [p.name for p in reports_for(sha)] if manifest is not None else []
    out["training_runs"] = [
        (e.get("details") or {}).get("run_id")
        for e in events
        if (e.get("details") or {}).get("step") == "train"
    ]
    out["features"] = [
        {
            k: (e.get("details") or {}).get(k)
            for k in ("feature_service", "feature_views", "rows", "training_set_sha256")
        }
        for e in events
        if (e.get("details") or {}).get("step") == "features"
    ]
    return out


def report_file(sha: str, name: str) -> Path | None:
    """A report kept beside snapshot `sha`, by file name; None when there is no such."""
    if not is_sha(sha):
        return None
    return next((p for p in reports_for(sha) if p.name == name), None)


def profile(sha: str) -> dict[str, Any] | None:
    """The per-column profile of every table of snapshot `sha` (None: not stored here or in
    `SEAMLESS_SNAPSHOT_ROOT`). Kept for the next view: snapshots never change."""
    with _lock:
        if sha in _PROFILES:
            _PROFILES.move_to_end(sha)
            return _PROFILES[sha]
    folder = snapshot_path(sha)
    if not folder.is_dir() and remote_root() is None:
        return None
    from components.common.tables import read_table
    from components.governance.snapshots import load_snapshot
    from components.validate.profile import profile_table

    if not folder.is_dir():
        load_snapshot(sha, verify=True)  # fetched from the object store into the cache
    manifest = read_manifest(folder)
    result: dict[str, Any] = {"tables": {}}
    for name in manifest.get("tables", {}):
        # One table at a time: a big snapshot is never in memory whole.
        result["tables"][name] = profile_table(read_table(folder, name))
    with _lock:
        _PROFILES[sha] = result
        while len(_PROFILES) > _PROFILES_KEPT:
            _PROFILES.popitem(last=False)
    return result
