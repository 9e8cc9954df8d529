"""Models: versions with holdout metrics, gate decisions, aliases, and who moved them.

From the MLflow registry (bounded searches: registered models, the newest versions of
one model) and the audit trail: `registry_change` (the gate's decision, with both
numbers since the register hook records them under `gate`), `promotion` and `rollback`
(who, from which version to which, and the reason they gave), `deployment`.
"""

from __future__ import annotations

import re
from typing import Any

from components.common.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, holdout_tags

ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)
MOVES = ("promotion", "rollback")
EVENT_ACTIONS = (
    "registry_change",
    "promotion",
    "rollback",
    "deployment",
    "model_reload",
    "monitoring_decision",
    "batch_scoring",
)


def _ms(ts: int | None) -> str | None:
    from datetime import UTC, datetime

    return None if not ts else datetime.fromtimestamp(ts / 1000, UTC).isoformat()


def list_models(client: Any, limit: int = 100) -> list[dict[str, Any]]:
    models = client.search_registered_models(max_results=limit, order_by=["name ASC"])
    return [
        {
            "name": m.name,
            "aliases": {a: str(v) for a, v in sorted((getattr(m, "aliases", None) or {}).items())},
            "latest_version": max(
                (int(v.version) for v in (m.latest_versions or [])), default=None
            ),
            "updated": _ms(m.last_updated_timestamp),
        }
        for m in models
    ]


def _version(mv: Any) -> dict[str, Any]:
    tags = dict(mv.tags or {})
    return {
        "version": str(mv.version),
        "created": _ms(mv.creation_timestamp),
        "aliases": sorted(getattr(mv, "aliases", None) or []),
        "holdout": {k: as_number(v) for k, v in holdout_tags(tags).items()},
        "decision": tags.get("seamless.decision"),
        "reason": tags.get("seamless.decision_reason"),
        "data_sha256": tags.get("seamless.data_sha256") or None,
        "validation": tags.get("seamless.validation"),
        "pipeline_run_id": tags.get("seamless.pipeline_run_id"),
        "train_run_id": tags.get("seamless.train_run_id") or mv.run_id,
        "source": mv.source,
    }


def as_number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def _events_by_version(name: str, entries: list[dict[str, Any]]) -> dict[str, list[dict]]:
    prefix = f"model:{name}/"
    out: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        subject = str(e.get("subject") or "")
        if subject.startswith(prefix) and e.get("action") in EVENT_ACTIONS:
            out.setdefault(subject.removeprefix(prefix), []).append(e)
    return out


def _gate(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The gate's decision for a version: its `registry_change` entry."""
    reg = next((e for e in events if e.get("action") == "registry_change"), None)
    if reg is None:
        return None
    d = reg.get("details") or {}
    gate = d.get("gate") or {}
    reason = str(d.get("reason") or "")
    numbers = {k: gate.get(k) for k in ("metric", "challenger", "champion", "champion_version")}
    if numbers["challenger"] is None:
        numbers.update(gate_numbers(reason))
    return {
        "promoted": bool(d.get("promoted")),
        "reason": reason,
        **numbers,
        "champion_version": numbers.get("champion_version") or d.get("champion_version"),
        "time": reg.get("time"),
        "actor": reg.get("actor"),
    }


# The gate's sentences (evaluate/evaluation.py `gate`): "challenger roc_auc 0.8238 beats
# champion v1 0.8100 by ...", "challenger roc_auc 0.8100 vs champion v1 0.8238: ...".
_CHALLENGER = re.compile(r"\bchallenger ([A-Za-z_]\w*) (-?\d+(?:\.\d+)?)")
_CHAMPION = re.compile(r"\bchampion v(\w+) (-?\d+(?:\.\d+)?)")


def gate_numbers(reason: str) -> dict[str, Any]:
    """Metric, challenger and champion values as the gate's reason states them (rounded to
    4 decimals there): the audit entry's `registry_change` keeps the sentence, and entries
    written before the register hook recorded the numbers themselves have nothing else."""
    out: dict[str, Any] = {}
    if m := _CHALLENGER.search(reason):
        out["metric"], out["challenger"] = m.group(1), float(m.group(2))
    if m := _CHAMPION.search(reason):
        out["champion_version"], out["champion"] = m.group(1), float(m.group(2))
    return out


def _move(e: dict[str, Any]) -> dict[str, Any]:
    d = e.get("details") or {}
    version = str(e.get("subject") or "").rpartition("/")[2]
    return {
        "seq": e.get("seq"),
        "time": e.get("time"),
        "actor": e.get("actor"),
        "action": e.get("action"),
        "to_version": str(d.get("to_version") or version),
        "from_version": d.get("from_version") or d.get("replaced"),
        "manual": bool(d.get("manual")),
        "reason": d.get("reason") or "",
    }


def model_overview(
    client: Any, name: str, entries: list[dict[str, Any]], limit: int = 50
) -> dict[str, Any] | None:
    """The newest `limit` versions of `name` with gates and alias moves; None: unknown model."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        return None
    found = client.search_model_versions(
        f"name = '{filter_quoted(name)}'", max_results=limit, order_by=["version_number DESC"]
    )
    events = _events_by_version(name, entries)
    aliases = {a: str(v) for a, v in (getattr(registered, "aliases", None) or {}).items()}
    versions = []
    for mv in found:
        item = _version(mv)
        # Searched versions come without their aliases; the registered model has them all.
        item["aliases"] = sorted(a for a, v in aliases.items() if v == item["version"])
        item["gate"] = _gate(events.get(item["version"], []))
        versions.append(item)
    moves = [_move(e) for v in events.values() for e in v if e.get("action") in MOVES]
    moves.sort(key=lambda m: m["seq"] or 0, reverse=True)
    return {
        "name": name,
        "description": registered.description or "",
        "aliases": {a: aliases.get(a) for a in ALIASES},
        "other_aliases": {a: v for a, v in sorted(aliases.items()) if a not in ALIASES},
        "versions": versions,
        "moves": moves,
    }


def model_version(
    client: Any, name: str, version: str, entries: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """One version: its tags, gate, alias moves and every audit event; None: unknown."""
    from mlflow.exceptions import MlflowException

    if not version.isdigit():
        return None
    try:
        mv = client.get_model_version(name, version)
    except MlflowException:
        return None
    item = _version(mv)
    events = _events_by_version(name, entries).get(item["version"], [])
    item["name"] = name
    item["gate"] = _gate(events)
    item["moves"] = [_move(e) for e in events if e.get("action") in MOVES]
    item["events"] = [
        {k: e.get(k) for k in ("seq", "time", "actor", "action", "details")} for e in events
    ]
    item["description"] = mv.description or ""
    return item


def filter_quoted(value: str) -> str:
    """A value inside MLflow's single-quoted filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
