"""Bearer JWTs from an OIDC provider, beside the static tokens of `auth.py`.

A token is accepted when its signature verifies against the provider's JWKS (RS*/PS*/ES*
only; `alg: none` and HMAC are refused, so a public key can never act as a shared
secret), and its `iss`, `aud`, `exp` (and `nbf`, `iat` when present) hold, with a small
clock leeway. Roles come from a configurable claim (a list, or a space-separated
string), mapped to serving's roles (`predict`, `admin`) by `role_map` (default: the
names themselves). The JWKS is fetched from `jwks_url` (or the issuer's discovery
document), cached, and fetched again for an unknown `kid`, at most once per
`min_refresh_s` so random `kid`s cannot turn serving into a load on the provider.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt

from components.common.errors import SeamlessError

if TYPE_CHECKING:
    from components.serve.settings import ServeSettings

log = logging.getLogger(__name__)
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
ROLES = frozenset({"predict", "admin"})
ACCEPTED_CACHE = 4096
"""Accepted tokens remembered at most (the cache starts over when full)."""


class Refused(Exception):
    """A JWT that is not accepted: `reason` for the audit trail, `subject` as claimed."""

    def __init__(self, reason: str, subject: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.subject = subject


@dataclass(frozen=True)
class Verified:
    subject: str
    roles: frozenset[str]


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts: what a static token (hex, no dots) never is."""
    return token.count(".") == 2


def _https_or_loopback(url: str, what: str) -> None:
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise SeamlessError(f"{what} must be an https:// URL (http only on loopback), got {url!r}.")


def _claimed_subject(token: str) -> str | None:
    """The `sub` a token claims, unverified (what a refused caller said it was)."""
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return None
    return sub if isinstance(sub, str) else None


def _fetch_json(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.load(resp)


class Jwks:
    """The provider's signing keys by `kid`, fetched on first use and on unknown kids."""

    def __init__(self, url: str, timeout_s: float = 5.0, min_refresh_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.min_refresh_s = min_refresh_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        try:
            data = _fetch_json(self.url, self.timeout_s)
            keys = jwt.PyJWKSet.from_dict(data).keys
        except (OSError, ValueError, jwt.PyJWKSetError) as exc:
            log.error("Cannot read the JWKS at %s: %s", self.url, exc)
            return  # keep the keys we have; an unknown kid stays unknown
        finally:
            self._fetched_at = time.monotonic()
        self._keys = {k.key_id: k for k in keys if k.key_id}

    def key(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self.min_refresh_s:
                self._refresh()
            return self._keys.get(kid)


class OidcVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        roles_claim: str = "roles",
        role_map: dict[str, str] | None = None,
        leeway_s: float = 30.0,
        min_refresh_s: float = 30.0,
    ) -> None:
        _https_or_loopback(issuer, "The OIDC issuer (SEAMLESS_SERVE_OIDC_ISSUER)")
        if not audience:
            raise SeamlessError("The OIDC audience (SEAMLESS_SERVE_OIDC_AUDIENCE) is empty.")
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.role_map = role_map or {r: r for r in ROLES}
        bad = sorted(set(self.role_map.values()) - ROLES)
        if bad:
            raise SeamlessError(
                f"SEAMLESS_SERVE_OIDC_ROLE_MAP maps to unknown roles {bad}; use predict or admin."
            )
        self.leeway_s = leeway_s
        self._accepted: dict[bytes, tuple[Verified, float]] = {}
        self.jwks = Jwks(jwks_url or self._discover(), min_refresh_s=min_refresh_s)
        _https_or_loopback(self.jwks.url, "The JWKS URL (SEAMLESS_SERVE_OIDC_JWKS_URL)")

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            found = _fetch_json(url, 5.0).get("jwks_uri")
        except (OSError, ValueError, AttributeError) as exc:
            raise SeamlessError(f"Cannot read the OIDC discovery document {url}: {exc}.") from None
        if not isinstance(found, str):
            raise SeamlessError(f"The OIDC discovery document {url} has no jwks_uri.")
        return found

    def verify(self, token: str) -> Verified:
        """The token's subject and serving roles; `Refused` with the reason otherwise.

        An accepted token is remembered (by digest) until its `exp`: a client sends the
        same token on every request, and the signature need not be checked each time."""
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._accepted.get(digest)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            verified, expires = self._check(token)
        except Refused as exc:
            exc.subject = _claimed_subject(token)  # for the audit trail: only when refused
            raise
        if len(self._accepted) >= ACCEPTED_CACHE:
            self._accepted.clear()
        self._accepted[digest] = (verified, expires)
        return verified

    def _check(self, token: str) -> tuple[Verified, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Refused("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise Refused(f"algorithm {alg!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise Refused("no key id (kid) in the token header")
        key = self.jwks.key(kid)
        if key is None:
            raise Refused(f"unknown signing key {kid!r}")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused("token expired") from None
        except jwt.InvalidAudienceError:
            raise Refused("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise Refused("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise Refused("bad signature") from None
        except jwt.PyJWTError as exc:
            raise Refused(f"invalid token: {exc}") from None
        return Verified(str(claims["sub"]), self._roles(claims)), float(claims["exp"])

    def _roles(self, claims: dict[str, Any]) -> frozenset[str]:
        raw = claims.get(self.roles_claim)
        names = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        roles = {self.role_map[n] for n in names if isinstance(n, str) and n in self.role_map}
        return frozenset(roles | ({"predict"} if "admin" in roles else set()))


def verifier_from(settings: ServeSettings) -> OidcVerifier | None:
    """The verifier the settings ask for (None: static tokens only)."""
    issuer, audience = settings.oidc_issuer, settings.oidc_audience
    if not (issuer or audience):
        return None
    if not (issuer and audience):
        raise SeamlessError(
            "OIDC needs both SEAMLESS_SERVE_OIDC_ISSUER and SEAMLESS_SERVE_OIDC_AUDIENCE."
        )
    role_map: Any = None
    if settings.oidc_role_map:
        try:
            role_map = json.loads(settings.oidc_role_map)
        except ValueError:
            role_map = None
        if not isinstance(role_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in role_map.items()
        ):
            raise SeamlessError(
                "SEAMLESS_SERVE_OIDC_ROLE_MAP must be a JSON object of claim value -> "
                'role, e.g. {"ml-engineers": "admin", "apps": "predict"}.'
            )
    return OidcVerifier(
        issuer,
        audience,
        jwks_url=settings.oidc_jwks_url,
        roles_claim=settings.oidc_roles_claim,
        role_map=role_map,
    )
