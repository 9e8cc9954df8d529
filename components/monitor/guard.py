"""The retrain guard: the same drift on the same data does not retrain again and again.

A `retrain` decision records in the audit trail (the `monitoring_decision` event of the
monitored version) its *verdict* (the drifted features, whether live performance
breached) and the *data fingerprint* (the `source_sha256` of the tables the retrain
would ingest, computed with the ingest stage's own code). When a later check of the
same version would say `retrain` again, it does so only if

- the data changed: another fingerprint (or either one is unknown), or
- the signal is new: a feature drifts that did not then, or live performance breaches
  where it did not;

otherwise the decision is `retrain_skipped`. The version being the same means the last
retrain's challenger did not replace it (rejected by the gate, rolled back, or the
retrain failed): retraining on the same data, for the same reasons, would repeat that.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.monitor.results import RETRAIN


@dataclass
class GuardCheck:
    """What the guard found; `details` go into the decision's audit event."""

    allow: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def verdict(drifted: list[str], breach: bool) -> dict[str, Any]:
    """The signal behind a decision, as recorded: drifted features (sorted) and breach."""
    return {"drift": sorted(drifted), "breach": bool(breach)}


def new_signal(now: dict[str, Any], then: dict[str, Any]) -> list[str]:
    """What `now` says that `then` did not: newly drifted features, a new breach."""
    out = [f"drift in {f}" for f in now.get("drift", []) if f not in set(then.get("drift", []))]
    if now.get("breach") and not then.get("breach"):
        out.append("a live performance breach")
    return out


def data_fingerprint(config: SeamlessConfig, data_dir: str | Path | None) -> tuple[str | None, str]:
    """(source hash, "") of the tables a retrain would ingest now, or (None, why not).

    Runs the ingest stage's reading and normalization into a temporary folder (nothing
    is kept); its `source_sha256` ignores generated columns and row order, so the same
    source data gives the same hash on every run.
    """
    from components.ingest.stage import ingest_tables

    try:
        with tempfile.TemporaryDirectory(prefix="seamless-fingerprint-") as tmp:
            manifest = ingest_tables(config, data_dir or None, Path(tmp) / "dataset")
    except SeamlessError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    sha = manifest.get("source_sha256")
    return (str(sha), "") if sha else (None, "the ingest manifest has no source_sha256")


def last_retrain(model_name: str, version: str) -> dict[str, Any] | None:
    """The latest `retrain` decision recorded for this model version, if any."""
    from components.governance import audit

    subject = audit.model_subject(model_name, version)
    found = None
    for entry in audit.audit_log().entries():
        if entry.get("action") != audit.MONITORING_DECISION or entry.get("subject") != subject:
            continue
        if (entry.get("details") or {}).get("decision") == RETRAIN:
            found = entry
    return found


def check(
    config: SeamlessConfig,
    version: str,
    drifted: list[str],
    breach: bool,
    data_dir: str | Path | None,
) -> GuardCheck:
    """Whether a `retrain` for `version` may go ahead (see the module docstring)."""
    now = verdict(drifted, breach)
    sha, why = data_fingerprint(config, data_dir)
    details: dict[str, Any] = {"verdict": now, "data_source_sha256": sha}
    if sha is None:
        details["data_fingerprint_error"] = why[:500]
    previous = last_retrain(config.model.name, version)
    if previous is None:
        return GuardCheck(True, "", details)
    then_details = previous.get("details") or {}
    then = then_details.get("verdict") or {}
    then_sha = then_details.get("data_source_sha256")
    details["last_retrain"] = {"seq": previous.get("seq"), "time": previous.get("time")}
    when = f"the retrain decided at {previous.get('time', '?')} (audit seq {previous.get('seq')})"
    if sha is None or not then_sha:
        unknown = "now" if sha is None else "then"
        return GuardCheck(
            True, f"retrain allowed: the data fingerprint of {when} is unknown ({unknown})", details
        )
    fresh = new_signal(now, then)
    if sha != then_sha:
        return GuardCheck(True, f"new data since {when} (source {sha[:12]})", details)
    if fresh:
        return GuardCheck(True, f"new signal since {when}: {', '.join(fresh)}", details)
    return GuardCheck(
        False,
        f"retrain skipped: same data (source {sha[:12]}) and no new signal since {when}, "
        f"whose challenger did not replace v{version}; a retrain needs new data or a "
        "new signal (monitoring.retrain_requires_change)",
        details,
    )
