"""Manual and automatic alias moves as one audited operation: check access, move the
alias, record it, and update the local deployment record so serving and lineage agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.common.notifications_config import NotificationsConfig
from components.deploy.deployment import deploy_local
from components.governance import access, audit, hooks
from components.register.registry import AliasMove, promote_version, rollback_champion


def promote(
    model_name: str,
    version: str,
    reason: str,
    deploy_dir: Path | None = None,
    notifications: NotificationsConfig | None = None,
) -> AliasMove:
    """`seamless promote`: make `version` the champion (and the live model locally)."""
    access.require("promote", audit.model_subject(model_name, version))
    move = promote_version(model_name, version)
    hooks.on_manual_promotion(model_name, move.replaced, move.champion, reason, notifications)
    _redeploy(model_name, move.champion, deploy_dir)
    return move


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
