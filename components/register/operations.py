"""Manual and automatic alias moves as one audited operation: check access, move the
alias, record it, and update the local deployment record so serving and lineage agree.

A manual promotion also answers to the compliance policy (governance/compliance.py): a
version that failed it, or that was never checked while the config declares one, is
refused unless an admin sets the policy aside (`override_compliance`) and says why. The
override is in the audit entry, the notification and the model card's approval trail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.common.errors import SeamlessError
from components.common.notifications_config import NotificationsConfig
from components.common.tracking import mlflow_client
from components.deploy.deployment import deploy_local
from components.governance import access, audit, compliance, hooks
from components.register import model_card
from components.register.registry import AliasMove, promote_version, rollback_champion


class ComplianceRefused(SeamlessError):
    """The version may not become champion without an admin's override."""


def _version_tags(model_name: str, version: str) -> tuple[str, dict[str, str], str]:
    from mlflow.exceptions import MlflowException

    try:
        mv = mlflow_client().get_model_version(model_name, str(version))
    except MlflowException:
        raise SeamlessError(f"Model {model_name} has no version {version}.") from None
    tags = dict(mv.tags)
    return str(mv.version), tags, str(tags.get("seamless.train_run_id") or mv.run_id or "")


def compliance_block(
    model_name: str, version: str, tags: dict[str, str], policy_declared: bool
) -> str | None:
    """Why `version` may not be promoted by hand without an override, or None."""
    state = tags.get(compliance.TAG)
    if state == "fail":
        why = tags.get(compliance.REASON_TAG) or "no reason recorded"
        return f"{model_name} v{version} failed the compliance policy ({why})"
    if policy_declared and state != "pass":
        return (
            f"{model_name} v{version} was never checked against the compliance policy the "
            "config declares (it was registered without one)"
        )
    return None


def promote(
    model_name: str,
    version: str,
    reason: str,
    deploy_dir: Path | None = None,
    notifications: NotificationsConfig | None = None,
    *,
    override_compliance: bool = False,
    policy_declared: bool = False,
) -> AliasMove:
    """`seamless promote`: make `version` the champion (and the live model locally).

    `policy_declared`: the config has a `compliance:` policy, so an unchecked version is
    refused too. `override_compliance`: an admin promotes a refused version anyway;
    `reason` is then required and recorded."""
    subject = audit.model_subject(model_name, version)
    access.require("promote", subject)
    version, tags, run_id = _version_tags(model_name, version)
    blocked = compliance_block(model_name, version, tags, policy_declared)
    record: dict[str, Any] | None = None
    if blocked:
        if not override_compliance:
            raise ComplianceRefused(
                f"Refusing to promote: {blocked}; an admin may promote it anyway with "
                '--override-compliance --reason "why".'
            )
        access.require("override_compliance", subject)
        if not reason.strip():
            raise SeamlessError(
                "--override-compliance needs --reason saying why the policy is set aside."
            )
        record = {
            "result": tags.get(compliance.TAG, "none"),
            "policy_reason": tags.get(compliance.REASON_TAG, ""),
            "override_compliance": True,
            "override_reason": reason,
        }
    elif compliance.TAG in tags:
        record = {"result": tags[compliance.TAG], "override_compliance": False}
    move = promote_version(model_name, version)
    entry = hooks.on_manual_promotion(
        model_name, move.replaced, move.champion, reason, notifications, compliance=record
    )
    move.compliance_overridden = bool(record and record["override_compliance"])
    _approve_card(model_name, version, run_id, reason, record, entry)
    _redeploy(model_name, move.champion, deploy_dir)
    return move


def _approve_card(
    model_name: str,
    version: str,
    run_id: str,
    reason: str,
    record: dict[str, Any] | None,
    entry: dict[str, Any],
) -> None:
    """The manual promotion joins the card's approval trail (a version from before model
    cards has none to update)."""
    if not run_id:
        return
    approval = model_card.approval(
        "manual_promotion",
        "promote",
        reason,
        override_compliance=bool(record and record.get("override_compliance")),
        audit_seq=entry.get("seq"),
    )
    try:
        model_card.record_approval(run_id, version, approval)
    except Exception as exc:  # the move is done and audited; say what is missing
        raise SeamlessError(
            f"{model_name} v{version} is champion now (audited), but its model card on run "
            f"{run_id} could not be updated: {exc}"
        ) from None


def rollback(
    model_name: str,
    to_version: str | None,
    reason: str,
    deploy_dir: Path | None = None,
    notifications: NotificationsConfig | None = None,
) -> AliasMove:
    """`seamless rollback` and the post-deploy check: champion back to the previous one."""
    access.require("rollback", audit.model_subject(model_name, to_version or "previous"))
    move = rollback_champion(model_name, to_version)
    hooks.on_rollback(model_name, str(move.replaced), move.champion, reason, notifications)
    _redeploy(model_name, move.champion, deploy_dir)
    return move


def _redeploy(model_name: str, version: str, deploy_dir: Path | None) -> dict[str, Any] | None:
    if deploy_dir is None:
        return None
    record = deploy_local(model_name, version, deploy_dir)
    hooks.on_deploy(record)
    return record
