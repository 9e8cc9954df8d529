"""Who may do what: four roles, one permission table, `require(action)`.

Roles, from least to most trusted: `viewer`, `data_engineer`, `ml_engineer`, `admin`.

| action        | viewer | data_eng | ml_eng | admin | guards                          |
|---------------|:------:|:--------:|:------:|:-----:|---------------------------------|
| view          |   x    |    x     |   x    |   x   | status, lineage, reports        |
| predict       |   x    |    x     |   x    |   x   | serving prediction routes       |
| audit_show    |        |    x     |   x    |   x   | reading the audit trail         |
| audit_verify  |        |    x     |   x    |   x   | checking the audit chain        |
| run_pipeline  |        |    x     |   x    |   x   | training/ingest runs, submit    |
| materialize   |        |    x     |   x    |   x   | loading the online store        |
| register      |        |          |   x    |   x   | new model versions              |
| promote       |        |          |   x    |   x   | moving `champion`               |
| rollback      |        |          |   x    |   x   | moving `champion` back          |
| deploy        |        |          |   x    |   x   | making a version live           |
| reload_model  |        |          |   x    |   x   | serving `/admin/reload`         |
| override_compliance |  |          |        |   x   | promoting past a failed policy  |
| manage_access |        |          |        |   x   | editing the roles file          |

The audit trail names people and what they touched, so reading it is not for the
default role.

The actor (see `audit.current_actor`) gets its role from, in order:

1. `SEAMLESS_ROLE` in the environment: how pods get theirs (set in the manifest next to
   the service account). Locally it is a convenience, not a security boundary: whoever
   runs the CLI can already edit the workspace files.
2. The roles file `<workspace>/access/roles.yaml` (`SEAMLESS_ROLES_FILE` overrides the
   path), a mapping `user: role`, e.g. `alice: admin` or
   `"system:serviceaccount:seamless:pipeline": ml_engineer`.
3. No roles file at all and the actor is the OS user who owns the workspace folder:
   `admin`, so a fresh local workspace works for its creator. This rule never applies to
   a service account or an explicit `SEAMLESS_ACTOR`, and disappears once a roles file
   exists.
4. Anyone else, including users missing from the roles file: `viewer`.

Serving tokens (`components/serve/api/auth.py`) map into this model as follows; the token,
not the process environment, decides what a request may do:

| token role | acts as | may |
|---|---|---|
| predict | viewer | view, predict |
| admin | ml_engineer | the above plus reload_model (/admin) |

A request's actor for the audit trail is `token:<first 12 hex of the token's sha256>`
(the token itself is never written anywhere).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.common.env import workspace
from components.common.errors import SeamlessError
from components.governance import audit

VIEWER = "viewer"
DATA_ENGINEER = "data_engineer"
ML_ENGINEER = "ml_engineer"
ADMIN = "admin"
ROLES = (VIEWER, DATA_ENGINEER, ML_ENGINEER, ADMIN)
DEFAULT_ROLE = VIEWER

_ALL = frozenset(ROLES)
_DATA = frozenset({DATA_ENGINEER, ML_ENGINEER, ADMIN})
_ML = frozenset({ML_ENGINEER, ADMIN})

PERMISSIONS: dict[str, frozenset[str]] = {
    "view": _ALL,
    "predict": _ALL,
    "audit_show": _DATA,
    "audit_verify": _DATA,
    "run_pipeline": _DATA,
    "materialize": _DATA,
    "register": _ML,
    "promote": _ML,
    "rollback": _ML,
    "deploy": _ML,
    "reload_model": _ML,
    # Setting the compliance policy aside is an admin's decision, never a model builder's.
    "override_compliance": frozenset({ADMIN}),
    "manage_access": frozenset({ADMIN}),
}

SERVING_TOKEN_ROLES = {"predict": VIEWER, "admin": ML_ENGINEER}
"""Serving token role -> the role it acts as here."""


class AccessDenied(SeamlessError):
    """The actor's role does not allow the action (already written to the audit trail)."""


@dataclass(frozen=True)
class Principal:
    actor: str
    role: str
    source: str
    """Where the role came from: env, roles_file, workspace_owner, default, token."""


def roles_file() -> Path:
    override = os.environ.get("SEAMLESS_ROLES_FILE")
    return Path(override) if override else workspace() / "access" / "roles.yaml"


def _check_role(role: str, where: str) -> str:
    if role not in ROLES:
        raise SeamlessError(f"{where}: role {role!r} is not one of {list(ROLES)}.")
    return role


def load_roles(path: Path) -> dict[str, str]:
    """The roles file as user -> role; errors name the file and the user."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SeamlessError(f"Roles file {path} is not valid YAML ({exc}).") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SeamlessError(f"Roles file {path} must map user names to roles.")
    return {str(u): _check_role(str(r), f"Roles file {path}, user {u!r}") for u, r in raw.items()}


def _owns_workspace(actor: str) -> bool:
    import getpass

    try:
        me = getpass.getuser()
    except (KeyError, OSError):
        return False
    ws = workspace()
    # Root can edit any workspace anyway (and the docker runner hands it to the image's
    # user), so for root ownership is not what tells who created it.
    return actor == me and ws.exists() and (os.getuid() == 0 or ws.stat().st_uid == os.getuid())


def resolve(actor: str | None = None) -> Principal:
    """The acting principal and its role (rules in the module docstring)."""
    env_actor = os.environ.get("SEAMLESS_ACTOR", "").strip()
    who = actor or audit.current_actor()
    env_role = os.environ.get("SEAMLESS_ROLE", "").strip()
    if env_role:
        return Principal(who, _check_role(env_role, "SEAMLESS_ROLE"), "env")
    path = roles_file()
    if path.is_file():
        roles = load_roles(path)
        if who in roles:
            return Principal(who, roles[who], "roles_file")
        return Principal(who, DEFAULT_ROLE, "default")
    explicit = bool(env_actor) or actor is not None
    if not explicit and not who.startswith("system:serviceaccount:") and _owns_workspace(who):
        return Principal(who, ADMIN, "workspace_owner")
    return Principal(who, DEFAULT_ROLE, "default")


def token_principal(token: str, token_roles: Iterable[str]) -> Principal:
    """A serving request's principal: the strongest role its token's roles map to."""
    mapped = [SERVING_TOKEN_ROLES[r] for r in token_roles if r in SERVING_TOKEN_ROLES]
    role = max(mapped, key=ROLES.index) if mapped else VIEWER
    digest = hashlib.sha256(token.encode()).hexdigest()[:12]
    return Principal(f"token:{digest}", role, "token")


def allowed(action: str, role: str) -> bool:
    if action not in PERMISSIONS:
        raise SeamlessError(f"Unknown action {action!r}; known: {sorted(PERMISSIONS)}.")
    return role in PERMISSIONS[action]


def require(
    action: str,
    subject: str = "",
    principal: Principal | None = None,
    log: audit.AuditLog | None = None,
) -> Principal:
    """Return the principal if it may do `action`; else audit the denial and raise.

    Allowed mutating actions are audited by the caller, with what was actually done.
    """
    who = principal or resolve()
    if allowed(action, who.role):
        return who
    needs = [r for r in ROLES if r in PERMISSIONS[action]]
    message = f"{who.actor} (role {who.role}) may not {action}: needs one of {', '.join(needs)}."
    (log or audit.audit_log()).append(
        audit.ACCESS_DENIED,
        subject or action,
        {"action": action, "role": who.role, "role_source": who.source, "needs": needs},
        actor=who.actor,
    )
    raise AccessDenied(message)
