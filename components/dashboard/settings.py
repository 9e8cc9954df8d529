"""Dashboard settings: built by `seamless ui` from its flags, or from the environment.

Tokens are serving's (one Secret for both): `SEAMLESS_SERVE_TOKENS_FILE`,
`SEAMLESS_SERVE_TOKENS` and the `SEAMLESS_SERVE_OIDC_*` variables. Nothing is read at
import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from components.common.errors import SeamlessError

SESSION_KEY_ENV = "SEAMLESS_UI_SESSION_KEY"


@dataclass(frozen=True)
class DashboardSettings:
    tokens_file: Path | None = None
    """File of `token:role[,role]` lines, serving's format (`predict`, `admin`)."""
    tokens_json: str | None = field(default=None, repr=False)
    """JSON object token -> role or [roles] (SEAMLESS_SERVE_TOKENS)."""
    oidc: dict[str, str] = field(default_factory=dict)
    """`oidc_*` settings as serving reads them (`serve.settings.oidc_from_env`)."""
    auth_disabled: bool = False
    """No tokens at all (local development only; `--no-auth`)."""
    session_key: bytes | None = field(default=None, repr=False)
    """Key of the browser session cookie's MAC (SEAMLESS_UI_SESSION_KEY, at least 32
    characters); default a random key per process (sessions end with the process; set
    one key for every replica behind a Service)."""
    session_hours: float = 8.0
    """How long a browser session lasts (a JWT's own expiry shortens it)."""
    secure_cookies: bool = False
    """Mark the session cookie `Secure` (on when serving HTTPS)."""
    runs_limit: int = 20
    versions_limit: int = 50
    monitoring_limit: int = 30
    audit_page_size: int = 50
    traffic_max_records: int = 200_000
    metrics_ttl_s: float = 15.0
    """`/metrics` reads MLflow at most this often (Prometheus scrapes every 15 s)."""

    def __post_init__(self) -> None:
        if self.session_key is not None and len(self.session_key) < 32:
            raise SeamlessError(
                f"{SESSION_KEY_ENV} must be at least 32 characters (a random string)."
            )
        if self.session_hours <= 0:
            raise SeamlessError(f"session_hours must be positive, got {self.session_hours}.")

    @classmethod
    def from_env(cls, **overrides: object) -> DashboardSettings:
        from components.serve.settings import oidc_from_env

        env = os.environ
        kwargs: dict[str, object] = {"oidc": oidc_from_env(env)}
        if env.get("SEAMLESS_SERVE_TOKENS_FILE"):
            kwargs["tokens_file"] = Path(env["SEAMLESS_SERVE_TOKENS_FILE"])
        if env.get("SEAMLESS_SERVE_TOKENS"):
            kwargs["tokens_json"] = env["SEAMLESS_SERVE_TOKENS"]
        if env.get(SESSION_KEY_ENV):
            kwargs["session_key"] = env[SESSION_KEY_ENV].encode()
        kwargs["auth_disabled"] = env.get("SEAMLESS_UI_AUTH_DISABLED", "") == "true"
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)  # type: ignore[arg-type]
