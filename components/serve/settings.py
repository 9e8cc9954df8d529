"""Serving settings: built by the CLI from flags, or from the environment when called.

Nothing is read at import time; `ServeSettings.from_env` reads `SEAMLESS_SERVE_*`
variables only when the app factory asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components.common.config import default_config_path
from components.common.env import feast_repo_path, workspace
from components.common.errors import SeamlessError

LOG_SYNC_MODES = ("fsync", "write")


SPOOL_MAX_BYTES = 512 * 1024 * 1024
"""Default bound of each log's spool (`spool_max_bytes`)."""


@dataclass(frozen=True)
class ServeSettings:
    """Everything the serving app needs besides the use-case config."""

    config_path: Path = field(default_factory=default_config_path)
    """Use-case YAML (model name, feature service, threshold, entity key)."""
    model_name: str | None = None
    """Registered model name; default: the config's `model.name`."""
    alias: str = "champion"
    """MLflow alias that names the live version."""
    poll_seconds: float = 30.0
    """How often the alias is re-read for a hot swap; 0 turns polling off."""
    max_batch: int = 1000
    """Largest batch (entities or instances) accepted; larger answers 413."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body read; larger answers 413 before the rest is read (a batch
    of `max_batch` full feature rows fits with room to spare)."""
    max_concurrency: int = 32
    """Prediction requests in flight at once; beyond it answers 429 with Retry-After."""
    max_queue_ms: float = 50.0
    """Queueing budget: while the event loop runs later than this (its scheduling delay,
    sampled every 5-50 ms), prediction requests are answered 503 with Retry-After at once
    (components/serve/overload.py); 0 turns shedding off."""
    feast_repo: Path | None = None
    """Feast repo folder; default `components.common.env.feast_repo_path()`."""
    predictions_dir: Path | None = None
    """Prediction log folder; default `<workspace>/predictions`."""
    feedback_dir: Path | None = None
    """Feedback (ground truth) log folder; default `<workspace>/feedback`."""
    segment_bytes: int = 64 * 1024 * 1024
    """A log segment is closed and a new one started beyond this size."""
    log_url: str | None = field(default=None, repr=False)
    """`postgresql://user@host:port/db`: log predictions and feedback to PostgreSQL tables
    (the cluster) instead of segment files (SEAMLESS_SERVE_LOG_URL; password from the URL
    or PGPASSWORD; `postgres://` and `postgresql+psycopg2://` accepted). Kept out of
    repr() since the URL may hold a password."""
    spool_dir: Path | None = None
    """With `log_url`: folder where prediction and feedback records are spooled (fsynced
    framed files) while PostgreSQL is unreachable, and drained from, in order, once it is
    back; one serving process per folder. Default `<workspace>/spool`
    (SEAMLESS_SERVE_SPOOL_DIR). Survives a restart of the process, not the loss of the
    folder (on Kubernetes: an emptyDir lives as long as the pod)."""
    spool_max_bytes: int = SPOOL_MAX_BYTES
    """With `log_url`: most bytes each log (predictions, feedback) may spool; beyond it
    predictions get 503 and readiness fails until the spool drains (records are never
    dropped). 0 turns spooling off: an unreachable PostgreSQL then means 503
    (SEAMLESS_SERVE_SPOOL_MAX_BYTES)."""
    log_sync: str = "fsync"
    """When a prediction is answered relative to its log record: `fsync` (default) once
    the record is on disk; `write` once written, with an fsync every second in the
    background (a killed server loses nothing it answered; an OS crash may lose up to a
    second; PostgreSQL: `synchronous_commit = off`). SEAMLESS_SERVE_LOG_SYNC."""
    auth_disabled: bool = False
    """Serve without bearer tokens (local development only; logged loudly)."""
    tokens_file: Path | None = None
    """File of `token:role[,role]` lines (SEAMLESS_SERVE_TOKENS_FILE)."""
    tokens_json: str | None = None
    """JSON object token -> role or [roles] (SEAMLESS_SERVE_TOKENS)."""
    oidc_issuer: str | None = None
    """Accept bearer JWTs from this OIDC issuer (`iss`; https, or http on loopback)
    besides the static tokens (SEAMLESS_SERVE_OIDC_ISSUER). Needs `oidc_audience`."""
    oidc_audience: str | None = None
    """The `aud` a token must carry (SEAMLESS_SERVE_OIDC_AUDIENCE)."""
    oidc_jwks_url: str | None = None
    """The provider's JWKS; default: `jwks_uri` of the issuer's discovery document
    (SEAMLESS_SERVE_OIDC_JWKS_URL)."""
    oidc_roles_claim: str = "roles"
    """The claim holding the caller's roles, a list or a space-separated string
    (SEAMLESS_SERVE_OIDC_ROLES_CLAIM)."""
    oidc_role_map: str | None = None
    """JSON object claim value -> `predict` or `admin` (SEAMLESS_SERVE_OIDC_ROLE_MAP);
    default: the values `predict` and `admin` themselves."""

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise SeamlessError(f"max_batch must be at least 1, got {self.max_batch}.")
        if self.max_body_bytes < 1:
            raise SeamlessError(f"max_body_bytes must be at least 1, got {self.max_body_bytes}.")
        if self.max_concurrency < 1:
            raise SeamlessError(f"max_concurrency must be at least 1, got {self.max_concurrency}.")
        if self.max_queue_ms < 0:
            raise SeamlessError(f"max_queue_ms must be >= 0 (0: off), got {self.max_queue_ms}.")
        if self.log_sync not in LOG_SYNC_MODES:
            raise SeamlessError(
                f"log_sync (SEAMLESS_SERVE_LOG_SYNC / --log-sync) must be one of "
                f"{', '.join(LOG_SYNC_MODES)}, got {self.log_sync!r}."
            )
        if self.spool_max_bytes < 0:
            raise SeamlessError(
                "spool_max_bytes (SEAMLESS_SERVE_SPOOL_MAX_BYTES) must be >= 0 (0: no "
                f"spooling), got {self.spool_max_bytes}."
            )
        if self.poll_seconds < 0:
            raise SeamlessError(f"poll_seconds must be >= 0, got {self.poll_seconds}.")
        if self.log_url is not None:
            from components.predictions.postgres import is_pg_url

            if not is_pg_url(self.log_url):
                scheme = self.log_url.split("://", 1)[0] if "://" in self.log_url else "none"
                raise SeamlessError(
                    "log_url (SEAMLESS_SERVE_LOG_URL / --log-url) must be a postgresql:// "
                    f"URL, got scheme {scheme!r}."
                )

    def feast_path(self) -> Path:
        return self.feast_repo or feast_repo_path()

    def predictions_path(self) -> Path:
        return self.predictions_dir or workspace() / "predictions"

    def feedback_path(self) -> Path:
        return self.feedback_dir or workspace() / "feedback"

    def spool_path(self) -> Path:
        return self.spool_dir or workspace() / "spool"

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Settings from `SEAMLESS_SERVE_*` variables (used by `uvicorn --factory`)."""
        env = os.environ
        kwargs: dict[str, object] = {}
        if env.get("SEAMLESS_CONFIG"):
            kwargs["config_path"] = Path(env["SEAMLESS_CONFIG"])
        for name, key, cast in (
            ("poll_seconds", "SEAMLESS_SERVE_POLL_SECONDS", float),
            ("max_batch", "SEAMLESS_SERVE_MAX_BATCH", int),
            ("max_body_bytes", "SEAMLESS_SERVE_MAX_BODY_BYTES", int),
            ("max_concurrency", "SEAMLESS_SERVE_MAX_CONCURRENCY", int),
            ("max_queue_ms", "SEAMLESS_SERVE_MAX_QUEUE_MS", float),
            ("spool_max_bytes", "SEAMLESS_SERVE_SPOOL_MAX_BYTES", int),
        ):
            if env.get(key):
                try:
                    kwargs[name] = cast(env[key])
                except ValueError:
                    raise SeamlessError(
                        f"Environment variable {key}={env[key]!r} is not a {cast.__name__}."
                    ) from None
        if env.get("SEAMLESS_SERVE_TOKENS_FILE"):
            kwargs["tokens_file"] = Path(env["SEAMLESS_SERVE_TOKENS_FILE"])
        if env.get("SEAMLESS_SERVE_SPOOL_DIR"):
            kwargs["spool_dir"] = Path(env["SEAMLESS_SERVE_SPOOL_DIR"])
        if env.get("SEAMLESS_SERVE_TOKENS"):
            kwargs["tokens_json"] = env["SEAMLESS_SERVE_TOKENS"]
        kwargs.update(oidc_from_env(env))
        if env.get("SEAMLESS_SERVE_LOG_SYNC"):
            kwargs["log_sync"] = env["SEAMLESS_SERVE_LOG_SYNC"]
        if env.get("SEAMLESS_SERVE_LOG_URL"):
            kwargs["log_url"] = env["SEAMLESS_SERVE_LOG_URL"]
        kwargs["auth_disabled"] = env.get("SEAMLESS_SERVE_AUTH_DISABLED", "") == "true"
        return cls(**kwargs)  # type: ignore[arg-type]


def oidc_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The `oidc_*` settings given by `SEAMLESS_SERVE_OIDC_*` variables."""
    names = ("issuer", "audience", "jwks_url", "roles_claim", "role_map")
    return {
        f"oidc_{n}": env[f"SEAMLESS_SERVE_OIDC_{n.upper()}"]
        for n in names
        if env.get(f"SEAMLESS_SERVE_OIDC_{n.upper()}")
    }
