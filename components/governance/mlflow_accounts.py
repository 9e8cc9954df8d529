"""MLflow accounts the project sets up itself: a READ-only viewer (the dashboard's).

MLflow's basic-auth app (`mlflow server --app-name basic-auth`) has users and RBAC roles,
each role in a workspace (`default` here: the server's only one). One role with READ on
experiment `*` and registered_model `*` lets its users search and read every experiment,
run (metrics, params, artifacts), registered model, model version and alias, those
created later included, while every change to them is refused (403).

Creating something NEW is a right of the workspace, not of a resource type. With the
server's workspaces feature on (`mlflow server --enable-workspaces`, as
manifests/base/mlflow/deployment.yaml runs it) only a user holding USE or MANAGE on
`workspace *` (or an admin) may create experiments, registered models, prompts, gateway
secrets or MCP servers; the viewer's role has no workspace grant, so those get 403 too.
Without the feature MLflow lets every signed-in user create them (and then manage them),
and a DENY on `*` would hide the reads as well: `ensure_viewer` reads the server's
`server-info` and says so in its summary (`ViewerOutcome.creation_refused`).

`ensure_viewer` runs with an admin's credentials in the environment
(`MLFLOW_TRACKING_USERNAME`/`PASSWORD`, as every MLflow client) and is idempotent: the user
is created or gets the given password, the role is created or set to exactly its READ
grants, the user is given the role, and the grants MLflow gave the user on what it
created itself (its per-user role `__user_<id>__`, e.g. from before workspaces were on)
are taken away. It talks to the REST API itself, not through `mlflow.server.auth.client`:
that module imports the server's Flask-WTF, which clients (the runtime image) do not have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from components.common.errors import SeamlessError

log = logging.getLogger(__name__)

# The workspace every role lives in: the only one without workspaces, and the one requests
# without an X-MLFLOW-WORKSPACE header use with them (mlflow.utils.workspace_utils).
WORKSPACE = "default"
# What reading needs, measured against MLflow 3.17's server: READ on the two container
# types covers their sub-resources (runs, metrics, artifacts, model versions, aliases).
VIEWER_GRANTS: tuple[tuple[str, str, str], ...] = (
    ("experiment", "*", "READ"),
    ("registered_model", "*", "READ"),
)

_USERS = "/api/2.0/mlflow/users"
_ROLES = "/api/3.0/mlflow/roles"
_USER_ROLES = "/api/3.0/mlflow/users/roles/list"
_REVOKE_USER_GRANT = "/api/3.0/mlflow/users/permissions/revoke"
_SERVER_INFO = "/api/3.0/mlflow/server-info"
# The role MLflow keeps a user's own grants in (MANAGE on what the user created, grants
# given to the user by name): mlflow.server.auth.sqlalchemy_store.
_PER_USER_ROLE_PREFIX = "__user_"


@dataclass
class ViewerOutcome:
    """What `ensure_viewer` did, for the Job's log."""

    username: str
    role: str
    user_created: bool = False
    role_created: bool = False
    grants_added: list[str] = field(default_factory=list)
    grants_removed: list[str] = field(default_factory=list)
    role_assigned: bool = False
    admin_revoked: bool = False
    own_grants_removed: list[str] = field(default_factory=list)
    other_roles: list[str] = field(default_factory=list)
    # None: the server did not say (no server-info); False: it runs without workspaces,
    # so this user can still create new experiments and registered models.
    creation_refused: bool | None = None

    def summary(self) -> str:
        parts = [
            f"user {self.username} {'created' if self.user_created else 'password set'}",
            f"role {self.role} {'created' if self.role_created else 'present'}",
        ]
        if self.grants_added:
            parts.append(f"granted {', '.join(self.grants_added)}")
        if self.grants_removed:
            parts.append(f"removed {', '.join(self.grants_removed)}")
        parts.append("role assigned" if self.role_assigned else "role already assigned")
        if self.admin_revoked:
            parts.append("admin rights taken away")
        if self.own_grants_removed:
            parts.append(f"own grants taken away: {', '.join(self.own_grants_removed)}")
        if self.other_roles:
            parts.append(f"also holds roles {', '.join(self.other_roles)} (not changed)")
        if self.creation_refused:
            parts.append("creating experiments and models refused (workspaces on)")
        elif self.creation_refused is False:
            parts.append(
                "WARNING: the server runs without workspaces (mlflow server "
                "--enable-workspaces), so this user can still create new experiments and "
                "registered models"
            )
        return "; ".join(parts) + "."


class _Api:
    """JSON requests to the auth app with the environment's credentials and CA."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.utils.credentials import get_default_host_creds

        self.uri = tracking_uri.rstrip("/")
        self.creds = get_default_host_creds(self.uri)
        if not self.creds.username or not self.creds.password:
            raise SeamlessError(
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD must hold an MLflow "
                "admin's credentials to set up the viewer account."
            )

    def call(
        self, method: str, path: str, *, ok_missing: bool = False, **kwargs: Any
    ) -> dict[str, Any] | None:
        import requests
        from mlflow.utils.rest_utils import http_request

        try:
            resp = http_request(self.creds, path, method, max_retries=0, timeout=30, **kwargs)
        except (requests.RequestException, OSError) as exc:
            raise SeamlessError(f"MLflow at {self.uri} cannot be reached: {exc}") from exc
        except Exception as exc:  # MlflowException wrapping a connection failure
            raise SeamlessError(f"MLflow at {self.uri} cannot be reached: {exc}") from exc
        if resp.status_code == 401:
            raise SeamlessError(
                f"MLflow at {self.uri} refused the credentials of "
                f"{self.creds.username!r} (wrong admin username or password)."
            )
        if resp.status_code == 403:
            raise SeamlessError(
                f"MLflow at {self.uri} refused {method} {path}: {self.creds.username!r} "
                "is not an MLflow admin."
            )
        if resp.status_code == 404 and ok_missing:
            return None
        if resp.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" not in resp.text:
            raise SeamlessError(
                f"MLflow at {self.uri} has no {path}: the server does not run the basic-auth "
                "app (`mlflow server --app-name basic-auth`)."
            )
        if resp.status_code >= 400:
            raise SeamlessError(
                f"MLflow at {self.uri} answered {resp.status_code} to {method} {path}: "
                f"{resp.text[:300]}"
            )
        if not resp.content:
            return {}
        body: dict[str, Any] = resp.json()
        return body


def ensure_viewer(
    tracking_uri: str, username: str, password: str, role: str = "seamless-viewer"
) -> ViewerOutcome:
    """Make `username` (with `password`) a READ-only MLflow user through role `role`.

    Run with an MLflow admin's credentials in `MLFLOW_TRACKING_USERNAME`/`PASSWORD`
    (and `MLFLOW_TRACKING_SERVER_CERT_PATH` for a private CA). Safe to run again: it
    converges to the same state. Raises SeamlessError with one sentence when the server
    cannot be reached, the credentials are not an admin's, or the server has no auth app.
    """
    if not username or not password:
        raise SeamlessError("The viewer's MLflow username and password must not be empty.")
    api = _Api(tracking_uri)
    if username == api.creds.username:
        raise SeamlessError(
            f"The viewer account {username!r} is the admin account running this: "
            "give the viewer a user of its own."
        )
    out = ViewerOutcome(username=username, role=role)

    user = api.call("GET", f"{_USERS}/get", params={"username": username}, ok_missing=True)
    if user is None:
        api.call("POST", f"{_USERS}/create", json={"username": username, "password": password})
        out.user_created = True
    else:
        api.call(
            "PATCH",
            f"{_USERS}/update-password",
            json={"username": username, "password": password},
        )
        if user.get("user", {}).get("is_admin"):
            api.call(
                "PATCH", f"{_USERS}/update-admin", json={"username": username, "is_admin": False}
            )
            out.admin_revoked = True

    roles = (api.call("GET", f"{_ROLES}/list", params={"workspace": WORKSPACE}) or {}).get(
        "roles", []
    )
    found = next((r for r in roles if r.get("name") == role), None)
    if found is None:
        desc = "Seamless: READ on every experiment and registered model (the dashboard)."
        created = api.call(
            "POST",
            f"{_ROLES}/create",
            json={"workspace": WORKSPACE, "name": role, "description": desc},
        )
        found = (created or {})["role"]
        out.role_created = True
    role_id = int(found["id"])

    perms = (
        api.call("GET", f"{_ROLES}/permissions/list", params={"role_id": str(role_id)}) or {}
    ).get("role_permissions", [])
    wanted = set(VIEWER_GRANTS)
    have: set[tuple[str, str, str]] = set()
    for p in perms:
        key = (p["resource_type"], p["resource_pattern"], p["permission"])
        if key in wanted and key not in have:
            have.add(key)
        else:  # anything else on this role would be more than reading
            api.call(
                "DELETE",
                f"{_ROLES}/permissions/remove",
                json={"role_permission_id": int(p["id"])},
            )
            out.grants_removed.append(f"{key[2]} on {key[0]} {key[1]}")
    for rtype, pattern, perm in VIEWER_GRANTS:
        if (rtype, pattern, perm) not in have:
            api.call(
                "POST",
                f"{_ROLES}/permissions/add",
                json={
                    "role_id": role_id,
                    "resource_type": rtype,
                    "resource_pattern": pattern,
                    "permission": perm,
                },
            )
            out.grants_added.append(f"{perm} on {rtype} {pattern}")

    held = (api.call("GET", _USER_ROLES, params={"username": username}) or {}).get("roles", [])
    if not any(int(r["id"]) == role_id for r in held):
        api.call("POST", f"{_ROLES}/assign", json={"username": username, "role_id": role_id})
        out.role_assigned = True
    # The user's own grants: MANAGE on whatever it created (before workspaces were on) or
    # grants given to it by name. Each is more than reading; the resources stay.
    for r in held:
        if not str(r.get("name", "")).startswith(_PER_USER_ROLE_PREFIX):
            continue
        for p in r.get("permissions", []):
            api.call(
                "POST",
                _REVOKE_USER_GRANT,
                json={
                    "username": username,
                    "resource_type": p["resource_type"],
                    "resource_id": p["resource_pattern"],
                },
            )
            out.own_grants_removed.append(
                f"{p['permission']} on {p['resource_type']} {p['resource_pattern']}"
            )
    out.other_roles = sorted(
        str(r.get("name"))
        for r in held
        if int(r["id"]) != role_id and not str(r.get("name", "")).startswith(_PER_USER_ROLE_PREFIX)
    )
    info = api.call("GET", _SERVER_INFO, ok_missing=True)
    if info is not None and "workspaces_enabled" in info:
        out.creation_refused = bool(info["workspaces_enabled"])
    if out.creation_refused is False:
        log.warning("MLflow viewer: %s", out.summary())
    else:
        log.info("MLflow viewer: %s", out.summary())
    return out
