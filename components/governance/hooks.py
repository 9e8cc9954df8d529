"""One call per stage that records what audit and lineage need; the stages call these.

Each hook writes to the configured audit log (`audit.audit_log()`) and returns what
it wrote. Events about data use the subject `dataset:<sha256>` with `details.step`;
events about a model version use `model:<name>/<version>`. Lineage reads exactly these.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.common.notifications_config import EventKind, NotificationsConfig
from components.common.tables import read_manifest
from components.governance import audit, notify
from components.governance.snapshots import attach_report, require_durable_root, store_snapshot


def before_ingest() -> None:
    """Refuse, before any data is read, what `on_ingest` could not keep."""
    require_durable_root()


def on_ingest(dataset_folder: str | Path, pipeline_run_id: str = "") -> dict[str, Any]:
    """After ingest wrote its dataset: snapshot it and record which sources it came from."""
    snapshot = store_snapshot(dataset_folder)
    manifest = read_manifest(snapshot)
    sources = {
        name: {
            "source": entry.get("source"),
            "source_kind": entry.get("source_kind"),
            "source_sha256": entry.get("source_sha256"),
            "rows": entry.get("rows"),
            **({"query": entry["query"]} if "query" in entry else {}),
            # Which columns were pseudonymized (and with which key) or dropped.
            **({"pii": entry["pii"]} if entry.get("pii") else {}),
        }
        for name, entry in manifest.get("tables", {}).items()
    }
    return audit.record(
        audit.DATA_ACCESS,
        audit.dataset_subject(str(manifest["sha256"])),
        {
            "step": "ingest",
            "pipeline_run_id": pipeline_run_id,
            "snapshot": str(snapshot),
            "sources": sources,
        },
    )


def on_validate(
    dataset_folder: str | Path,
    report_path: str | Path,
    decision: str,
    pipeline_run_id: str = "",
    notifications: NotificationsConfig | None = None,
    counts: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """After validate: keep the report beside the snapshot and record the verdict; a
    `fail` is also sent to the receivers of `validation_failure`."""
    sha = str(read_manifest(dataset_folder)["sha256"])
    kept = attach_report(sha, report_path, "validation")
    entry = audit.record(
        audit.DATA_ACCESS,
        audit.dataset_subject(sha),
        {
            "step": "validate",
            "pipeline_run_id": pipeline_run_id,
            "decision": decision,
            "report": str(kept),
        },
    )
    if decision == "fail":
        numbers = {k: int(v) for k, v in (counts or {}).items() if k.startswith("failed")}
        event = notify.Event(
            "validation_failure",
            f"Validation failed for dataset {sha[:12]}: a critical expectation failed, so "
            "nothing trained on it is promoted.",
            reason=f"report {kept}",
            dataset_sha256=sha,
            numbers=numbers,
        )
        notify.emit(notifications, event)
    return entry


def on_features(meta: Mapping[str, Any], pipeline_run_id: str = "") -> dict[str, Any]:
    """After features, with the metadata `run_features` returns; `pushed_rows` names the
    views whose training rows include events from the stream consumer (components/stream)."""
    details = {
        "step": "features",
        "pipeline_run_id": pipeline_run_id,
        "feature_service": meta.get("feature_service"),
        "feature_views": list(meta.get("feature_views", [])),
        "training_set_sha256": meta.get("training_set_sha256"),
        "rows": meta.get("rows"),
        "feast_repo": meta.get("feast_repo"),
    }
    pushed = {view: n for view, n in dict(meta.get("pushed_rows") or {}).items() if n}
    if pushed:
        details["pushed_rows"] = pushed
    return audit.record(audit.DATA_ACCESS, audit.dataset_subject(str(meta["data_sha256"])), details)


def on_train(model_meta: Mapping[str, Any], pipeline_run_id: str = "") -> dict[str, Any]:
    """After train, with `run_training(...)["model"]`."""
    return audit.record(
        audit.DATA_ACCESS,
        audit.dataset_subject(str(model_meta.get("data_sha256", ""))),
        {
            "step": "train",
            "pipeline_run_id": pipeline_run_id,
            "run_id": model_meta.get("run_id"),
            "model_uri": model_meta.get("model_uri"),
        },
    )


def on_register(
    registration: Any,
    pipeline_run_id: str = "",
    reason: str = "",
    notifications: NotificationsConfig | None = None,
    gate: Mapping[str, Any] | None = None,
    compliance: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """After register, with its `Registration`: a registry change, plus a promotion if any.
    Receivers hear `promotion` or `rejection`, with the gate's numbers (`gate`: the
    evaluation record: metric, challenger, champion, champion_version). `compliance` (the
    policy's result, governance/compliance.py) goes into the entry: its verdict, reason,
    each check and the segment counts."""
    reg = registration.to_dict() if hasattr(registration, "to_dict") else dict(registration)
    subject = audit.model_subject(reg["model_name"], reg["version"])
    details = {**reg, "pipeline_run_id": pipeline_run_id, "reason": reason[:2000]}
    if gate is not None:
        keys = ("decision", "reason", "metric", "challenger", "champion", "champion_version")
        details["gate"] = {k: gate.get(k) for k in keys}
    if compliance is not None:
        details["compliance"] = {
            "result": compliance.get("tag"),
            "reason": str(compliance.get("reason", ""))[:2000],
            "checks": [
                {k: c.get(k) for k in ("name", "passed", "sentence", "subject")}
                for c in compliance.get("checks") or []
            ],
            "counts": dict(compliance.get("counts") or {}),
        }
    events = [audit.record(audit.REGISTRY_CHANGE, subject, details)]
    if reg.get("promoted"):
        events.append(
            audit.record(
                audit.PROMOTION,
                subject,
                {
                    "alias": "champion",
                    "from_version": reg.get("previous_champion_version"),
                    "to_version": reg["version"],
                    "pipeline_run_id": pipeline_run_id,
                    "reason": reason[:2000],
                },
            )
        )
    notify.emit(notifications, _register_event(reg, reason, gate or {}, compliance or {}))
    return events


def _register_event(
    reg: Mapping[str, Any],
    reason: str,
    gate: Mapping[str, Any],
    compliance: Mapping[str, Any],
) -> notify.Event:
    name, version = str(reg["model_name"]), str(reg["version"])
    numbers = {
        "metric": gate.get("metric"),
        "challenger": gate.get("challenger"),
        "champion": gate.get("champion"),
        "champion_version": gate.get("champion_version"),
    }
    if compliance:
        numbers["compliance"] = compliance.get("tag")
    if reg.get("promoted"):
        before = reg.get("previous_champion_version")
        was = f" (was version {before})" if before else " (the first champion)"
        summary = f"{name} version {version} was promoted to champion{was}."
        return notify.Event("promotion", summary, reason, name, version, numbers=numbers)
    if compliance.get("tag") == "fail":
        summary = (
            f"{name} version {version} was registered as challenger and not promoted: it "
            f"failed the compliance policy (version {reg.get('champion_version')} stays "
            "champion)."
        )
    else:
        summary = (
            f"{name} version {version} was registered as challenger; the gate kept version "
            f"{reg.get('champion_version')} as champion."
        )
    return notify.Event("rejection", summary, reason, name, version, numbers=numbers)


def on_deploy(record: Mapping[str, Any]) -> dict[str, Any]:
    """After deploy, with the deployment record (`deploy_local` / `roll_serving`)."""
    return audit.record(
        audit.DEPLOYMENT,
        audit.model_subject(str(record["model_name"]), str(record["version"])),
        dict(record),
    )


def on_manual_promotion(
    model_name: str,
    from_version: str | None,
    to_version: str,
    reason: str = "",
    notifications: NotificationsConfig | None = None,
    compliance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """After `seamless promote` moved `champion` by hand, past the gate. `compliance`:
    the version's recorded policy result, and whether an admin overrode it
    (`override_compliance`), which the entry and the event then say."""
    overridden = bool(compliance and compliance.get("override_compliance"))
    summary = (
        f"{model_name} version {to_version} was promoted to champion by hand "
        f"(was version {from_version})"
        + (", overriding its failed compliance policy." if overridden else ".")
    )
    details: dict[str, Any] = {"replaced": from_version, "reason": reason, "manual": True}
    if compliance is not None:
        details["compliance"] = dict(compliance)
    return _champion_moved(audit.PROMOTION, model_name, from_version, to_version, reason,
                           details, summary, notifications)  # fmt: skip


def on_rollback(
    model_name: str,
    from_version: str,
    to_version: str,
    reason: str = "",
    notifications: NotificationsConfig | None = None,
) -> dict[str, Any]:
    """After `champion` moved back; the subject is the version now live."""
    summary = (
        f"{model_name} was rolled back: version {to_version} is champion again "
        f"(was {from_version})."
    )
    details = {"from_version": from_version, "to_version": to_version, "reason": reason}
    return _champion_moved(audit.ROLLBACK, model_name, from_version, to_version, reason,
                           details, summary, notifications)  # fmt: skip


def _champion_moved(
    action: str,
    model_name: str,
    from_version: str | None,
    to_version: str,
    reason: str,
    details: Mapping[str, Any],
    summary: str,
    notifications: NotificationsConfig | None,
) -> dict[str, Any]:
    """Record a move of `champion` by hand or back (subject: the version now live), then
    tell the receivers (`promotion` or `rollback`)."""
    entry = audit.record(action, audit.model_subject(model_name, to_version), details)
    kind: EventKind = "rollback" if action == audit.ROLLBACK else "promotion"
    numbers = {"from_version": from_version, "to_version": to_version}
    event = notify.Event(kind, summary, reason, model_name, to_version, numbers=numbers)
    notify.emit(notifications, event)
    return entry


def on_batch_scoring(result: Mapping[str, Any], pipeline_run_id: str = "") -> dict[str, Any]:
    """After batch scoring wrote its scores: which version scored what, when, and where
    the scores went (lineage lists it under the model version)."""
    return audit.record(
        audit.BATCH_SCORING,
        audit.model_subject(str(result["model_name"]), str(result["model_version"])),
        {
            "pipeline_run_id": pipeline_run_id,
            **{
                k: result[k]
                for k in (
                    "batch_id",
                    "input",
                    "input_sha256",
                    "timing",
                    "rows",
                    "output",
                    "output_sha256",
                    "positives",
                    "rows_without_any_feature",
                    "without_features",
                    "rows_left_out",
                    "feature_sources",
                    "prediction_log",
                )
            },
        },
    )


def on_model_reload(
    model_name: str, version: str, previous: str | None, actor: str | None = None
) -> dict[str, Any]:
    """After serving swapped models (admin reload or alias poll)."""
    return audit.record(
        audit.MODEL_RELOAD,
        audit.model_subject(model_name, version),
        {"previous_version": previous},
        actor=actor,
    )


# Monitoring verdicts that call for action: drift or a performance breach (a retrain ran,
# or was skipped because one already ran on the same data).
DRIFT_DECISIONS = ("retrain", "retrain_skipped")


def on_monitoring_decision(
    model_name: str,
    version: str,
    decision: str,
    details: Mapping[str, Any] | None = None,
    notifications: NotificationsConfig | None = None,
) -> dict[str, Any]:
    """After a monitor decided (drift alarm, retrain, keep, roll back). A drift or
    breach verdict is sent to the receivers of `drift`."""
    details = dict(details or {})
    entry = audit.record(
        audit.MONITORING_DECISION,
        audit.model_subject(model_name, version),
        {"decision": decision, **details},
    )
    if decision in DRIFT_DECISIONS:
        # The window's headline figures; the per-feature ones are in the drift report.
        numbers = {k: v for k, v in details.items() if "." not in k and isinstance(v, int | float)}
        reason = str(details.get("reason", ""))
        summary = f"Monitoring of {model_name} version {version} decided {decision}."
        event = notify.Event("drift", summary, reason, model_name, version, numbers=numbers)
        notify.emit(notifications, event)
    return entry
