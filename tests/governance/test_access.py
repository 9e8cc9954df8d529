"""Roles, the permission table and denials that land in the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.errors import SeamlessError
from components.governance.access import (
    PERMISSIONS,
    ROLES,
    AccessDenied,
    Principal,
    allowed,
    require,
    resolve,
    token_principal,
)
from components.governance.audit import ACCESS_DENIED, FileAuditLog

pytestmark = pytest.mark.unit


def _roles(workspace: Path, text: str) -> None:
    (workspace / "access").mkdir(exist_ok=True)
    (workspace / "access" / "roles.yaml").write_text(text)


def test_permission_table_is_complete() -> None:
    assert all(roles <= set(ROLES) and roles for roles in PERMISSIONS.values())
    assert allowed("view", "viewer") and not allowed("promote", "data_engineer")
    assert allowed("rollback", "ml_engineer") and allowed("manage_access", "admin")
    with pytest.raises(SeamlessError, match="Unknown action 'fly'"):
        allowed("fly", "admin")


def test_denial_message_and_audit_event(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAMLESS_ACTOR", "dave")
    _roles(workspace, "alice: admin\ndave: data_engineer\n")
    with pytest.raises(AccessDenied) as err:
        require("promote", subject="model:credit/3")
    assert str(err.value) == (
        "dave (role data_engineer) may not promote: needs one of ml_engineer, admin."
    )
    assert isinstance(err.value, SeamlessError)
    log = FileAuditLog(workspace / "audit")
    [event] = list(log.entries())
    assert event["action"] == ACCESS_DENIED and event["actor"] == "dave"
    assert event["subject"] == "model:credit/3"
    assert event["details"]["action"] == "promote" and event["details"]["role"] == "data_engineer"
    assert log.verify().ok

    assert require("run_pipeline").role == "data_engineer"  # allowed: nothing written
    assert len(list(log.entries())) == 1


def test_unknown_user_is_viewer(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _roles(workspace, "alice: admin\n")
    monkeypatch.setenv("SEAMLESS_ACTOR", "eve")
    assert resolve() == Principal("eve", "viewer", "default")
    monkeypatch.setenv("SEAMLESS_ACTOR", "alice")
    assert resolve() == Principal("alice", "admin", "roles_file")


def test_env_role_wins(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _roles(workspace, "alice: viewer\n")
    monkeypatch.setenv("SEAMLESS_ACTOR", "alice")
    monkeypatch.setenv("SEAMLESS_ROLE", "ml_engineer")
    assert resolve().role == "ml_engineer"
    monkeypatch.setenv("SEAMLESS_ROLE", "root")
    with pytest.raises(SeamlessError, match="SEAMLESS_ROLE: role 'root' is not one of"):
        resolve()


def test_workspace_owner_without_roles_file(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEAMLESS_ACTOR", raising=False)
    monkeypatch.delenv("SEAMLESS_ROLE", raising=False)
    assert resolve().source == "workspace_owner"
    # Naming someone else explicitly, or having a roles file, switches the rule off.
    monkeypatch.setenv("SEAMLESS_ACTOR", "mallory")
    assert resolve() == Principal("mallory", "viewer", "default")


def test_bad_roles_file(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAMLESS_ACTOR", "bob")
    _roles(workspace, "bob: superuser\n")
    with pytest.raises(SeamlessError, match=r"roles.yaml, user 'bob': role 'superuser'"):
        resolve()
    _roles(workspace, "- bob\n")
    with pytest.raises(SeamlessError, match="must map user names to roles"):
        resolve()


def test_serving_tokens_map_to_roles() -> None:
    predict = token_principal("t0ken", {"predict"})
    admin = token_principal("s3cret", {"admin", "predict"})
    assert predict.role == "viewer" and admin.role == "ml_engineer"
    assert admin.actor.startswith("token:") and "s3cret" not in admin.actor
    assert require("predict", principal=predict) == predict
    assert require("reload_model", principal=admin) == admin
