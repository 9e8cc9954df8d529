"""Who is looking: serving's tokens and roles, and a browser session cookie.

Credentials are serving's own (`serve/api/auth.TokenAuth`: the static tokens file or
JSON, or OIDC JWTs verified against the provider's JWKS), mapped to the access model
(`governance/access.py`): a `predict` token acts as `viewer` (every page but the audit
trail), an `admin` token as `ml_engineer` (the audit trail too: `audit_show`).

Scripts send `Authorization: Bearer <token>` on every request. A browser cannot set that
header on a link, so it signs in once and then carries a session cookie:

- `POST /login` (the sign-in form: token field, `next`) or `GET /login?token=...&next=/x`
  (for tools that can only open a URL, like headless Chromium) checks the token and
  answers 303 to `next` (a local path only) with the cookie set.
- The cookie holds no token and nothing derived from one: the actor id (`token:` and 12
  hex digits of the token's SHA-256, as the audit trail names serving callers, or
  `oidc:<sub>`), the mapped role and an expiry (8 h, or the JWT's own `exp` if sooner),
  with an HMAC-SHA256 over them under a server key (`SEAMLESS_UI_SESSION_KEY`, else a
  random key per process). It is `HttpOnly` (no script reads it; there are no scripts
  anyway), `SameSite=Lax`, `Path=/`, and `Secure` when serving HTTPS.

Trade-offs, written down:

- CSRF: every page is a read-only GET; the only state a request can change is the
  session itself (`/login`, `/logout`), and those refuse cross-site requests
  (`Sec-Fetch-Site: cross-site`, or an `Origin` of another host). So `Lax` costs nothing
  and keeps links from chat notifications working (with `Strict` the first click from
  Slack would show the sign-in page). Login CSRF (a victim signed in as the attacker)
  is what the cross-site check stops. Pages cannot be framed (`frame-ancestors 'none'`).
- Leaks: `GET /login?token=` puts the token in the URL, so into the browser history
  and anything that logs URLs. The server's access log drops query strings, responses
  carry `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, and the redirect
  takes the token out of the address bar; people should use the form, tools the URL.
- Revocation: a session outlives the removal of its static token until it expires or
  the server restarts with a new key; a JWT's session ends at the JWT's `exp`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import time
from contextlib import suppress
from dataclasses import dataclass

from components.common.errors import SeamlessError
from components.dashboard.settings import DashboardSettings
from components.governance import access
from components.serve.api.auth import TokenAuth
from components.serve.api.oidc import Refused, looks_like_jwt

log = logging.getLogger(__name__)
COOKIE = "seamless_ui"
NO_TOKENS = (
    "No dashboard tokens configured: give --tokens-file (lines 'token:role', serving's "
    "format), SEAMLESS_SERVE_TOKENS (JSON) or an OIDC provider (SEAMLESS_SERVE_OIDC_ISSUER "
    "and _AUDIENCE), or --no-auth for local development."
)


@dataclass(frozen=True)
class Viewer:
    actor: str
    role: str
    expires: float

    def may(self, action: str) -> bool:
        return access.allowed(action, self.role)

    def principal(self) -> access.Principal:
        return access.Principal(self.actor, self.role, "token")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Signed, expiring session cookies (see the module docstring)."""

    def __init__(self, key: bytes | None, hours: float) -> None:
        self.key = key or os.urandom(32)
        self.seconds = hours * 3600

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.key, b"seamless-ui-session\x00" + payload, hashlib.sha256).digest()

    def issue(self, viewer: Viewer) -> str:
        payload = json.dumps(
            {"a": viewer.actor, "r": viewer.role, "x": int(viewer.expires)},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def read(self, cookie: str | None) -> Viewer | None:
        if not cookie or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._mac(payload), given):
            return None
        try:
            data = json.loads(payload)
            viewer = Viewer(str(data["a"]), str(data["r"]), float(data["x"]))
        except (ValueError, KeyError, TypeError):
            return None
        if viewer.role not in access.ROLES or viewer.expires <= time.time():
            return None
        return viewer

    def lifetime(self, jwt_exp: float | None = None) -> float:
        end = time.time() + self.seconds
        return min(end, jwt_exp) if jwt_exp else end


class Gate:
    """Turns a bearer token or a session cookie into a `Viewer`."""

    def __init__(self, settings: DashboardSettings) -> None:
        from components.serve.api.oidc import verifier_from
        from components.serve.settings import ServeSettings

        # The OIDC settings are serving's own (SEAMLESS_SERVE_OIDC_*), read by its reader.
        oidc = verifier_from(ServeSettings(**settings.oidc)) if settings.oidc else None  # type: ignore[arg-type]
        # Built as "disabled" only to skip its refusal, which names serving's flags; the
        # dashboard's own sentence follows, then the real setting is put back.
        tokens = TokenAuth.from_sources(settings.tokens_file, settings.tokens_json, True, oidc)
        if not tokens.entries and oidc is None and not settings.auth_disabled:
            raise SeamlessError(NO_TOKENS)
        tokens.disabled = settings.auth_disabled
        self.tokens = tokens
        self.disabled = settings.auth_disabled
        self.sessions = Sessions(settings.session_key, settings.session_hours)

    def from_token(self, token: str, where: str) -> Viewer | None:
        """The viewer a token stands for; None if unknown (a refused JWT is audited)."""
        header = f"Bearer {token.strip()}"
        roles = self.tokens.roles_of(header)
        if roles is None:
            refused = self.tokens.refusal(header)
            if refused is not None:
                _audit_refused(*refused, where)
            return None
        jwt_exp = None
        if self.tokens.oidc is not None and looks_like_jwt(token.strip()):
            try:
                verified = self.tokens.oidc.verify(token.strip())  # cached: no second check
            except Refused:
                return None
            actor = f"oidc:{verified.subject}"
            jwt_exp = _jwt_exp(token.strip())
        else:
            actor = access.token_principal(token.strip(), roles).actor
        role = access.token_principal(token.strip(), roles).role
        return Viewer(actor, role, self.sessions.lifetime(jwt_exp))

    def viewer(self, authorization: str | None, cookie: str | None, where: str) -> Viewer | None:
        """Who sent this request: the bearer header first, else the session cookie."""
        if self.disabled:
            return Viewer("anonymous (--no-auth)", access.ML_ENGINEER, math.inf)
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return self.from_token(token, where)
        return self.sessions.read(cookie)


def _jwt_exp(token: str) -> float | None:
    import jwt

    with suppress(jwt.PyJWTError, ValueError, TypeError):
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        return float(exp) if exp is not None else None
    return None


def _audit_refused(actor: str, reason: str, where: str) -> None:
    from components.governance import audit

    # A read-only or unreachable audit store must not turn a 401 into a 500.
    with suppress(SeamlessError, OSError):
        audit.record(
            audit.ACCESS_DENIED,
            f"ui:{where}",
            {"action": "authenticate", "reason": reason, "credential": "oidc"},
            actor=actor,
        )


def deny(viewer: Viewer, action: str, where: str) -> str:
    """Audit a refused page view (as the CLI and serving do) and return the sentence."""
    try:
        access.require(action, f"ui:{where}", principal=viewer.principal())
    except access.AccessDenied as exc:
        return str(exc)
    except (SeamlessError, OSError):
        pass
    return f"{viewer.actor} (role {viewer.role}) may not {action}."
