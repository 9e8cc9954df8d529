"""Bearer tokens with roles (`predict`, `admin`).

Tokens come from a file of `token:role[,role]` lines (`SEAMLESS_SERVE_TOKENS_FILE`,
`#` starts a comment) and/or a JSON object token -> role or [roles]
(`SEAMLESS_SERVE_TOKENS`). `admin` implies `predict`. Only SHA-256 digests of the
tokens are kept in memory and compared with `hmac.compare_digest`; tokens are never
logged. With an OIDC provider configured (`oidc.py`), a bearer JWT is verified against
it instead. Without any token or provider the app refuses to start unless auth is
disabled explicitly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from components.common.errors import SeamlessError
from components.serve.api.oidc import OidcVerifier, Refused, looks_like_jwt

ROLES = frozenset({"predict", "admin"})


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _roles(raw: list[str], where: str) -> frozenset[str]:
    roles = frozenset(r.strip() for r in raw if r.strip())
    unknown = sorted(roles - ROLES)
    if not roles or unknown:
        raise SeamlessError(
            f"{where}: roles must be among {sorted(ROLES)}, got {sorted(roles) or 'none'}."
        )
    return roles | ({"predict"} if "admin" in roles else set())


def parse_tokens_file(path: Path) -> list[tuple[bytes, frozenset[str]]]:
    if not path.is_file():
        raise SeamlessError(f"Tokens file {path} does not exist.")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        token, sep, roles = line.rpartition(":")
        if not sep or not token:
            # The line itself is not echoed: it holds a secret.
            raise SeamlessError(f"Tokens file {path}, line {n}: expected 'token:role[,role]'.")
        out.append((_digest(token), _roles(roles.split(","), f"Tokens file {path}, line {n}")))
    return out


def parse_tokens_json(text: str) -> list[tuple[bytes, frozenset[str]]]:
    where = "SEAMLESS_SERVE_TOKENS"
    try:
        raw = json.loads(text)
    except ValueError:
        raise SeamlessError(f"{where} is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise SeamlessError(f"{where} must be a JSON object of token -> role or [roles].")
    out = []
    for i, (token, roles) in enumerate(raw.items()):
        listed = [roles] if isinstance(roles, str) else roles
        if not isinstance(listed, list) or not all(isinstance(r, str) for r in listed):
            raise SeamlessError(f"{where}: entry {i + 1} must map to a role or a list of roles.")
        out.append((_digest(str(token)), _roles(listed, f"{where}: entry {i + 1}")))
    return out


class TokenAuth:
    """Checks `Authorization: Bearer <token>` headers against the configured roles."""

    def __init__(
        self,
        entries: list[tuple[bytes, frozenset[str]]],
        disabled: bool = False,
        oidc: OidcVerifier | None = None,
    ):
        if not entries and oidc is None and not disabled:
            raise SeamlessError(
                "No serving tokens configured: set SEAMLESS_SERVE_TOKENS_FILE (lines "
                "'token:role'), SEAMLESS_SERVE_TOKENS (JSON) or an OIDC provider "
                "(SEAMLESS_SERVE_OIDC_ISSUER and _AUDIENCE), or disable auth explicitly "
                "for local development (--no-auth)."
            )
        self.entries = entries
        self.disabled = disabled
        self.oidc = oidc

    @classmethod
    def from_sources(
        cls,
        tokens_file: Path | None,
        tokens_json: str | None,
        disabled: bool,
        oidc: OidcVerifier | None = None,
    ) -> TokenAuth:
        entries = []
        if tokens_file is not None:
            entries += parse_tokens_file(tokens_file)
        if tokens_json:
            entries += parse_tokens_json(tokens_json)
        return cls(entries, disabled=disabled, oidc=oidc)

    def refusal(self, authorization: str | None) -> tuple[str, str] | None:
        """(actor, reason) of a refused bearer JWT, for the audit trail; None for anything
        else (no header, a static token: those are not attributable to anyone)."""
        token = _bearer(authorization)
        if self.oidc is None or token is None or not looks_like_jwt(token):
            return None
        try:
            self.oidc.verify(token)
        except Refused as exc:
            return f"oidc:{exc.subject or 'unknown'}", exc.reason
        return None

    def roles_of(self, authorization: str | None) -> frozenset[str] | None:
        """Roles of the bearer token in the header; None when missing or unknown."""
        if self.disabled:
            return ROLES
        token = _bearer(authorization)
        if token is None:
            return None
        if self.oidc is not None and looks_like_jwt(token):
            try:
                return self.oidc.verify(token).roles
            except Refused:
                return None
        digest = _digest(token)
        found: frozenset[str] | None = None
        for known, roles in self.entries:  # no early exit: same work for any token
            if hmac.compare_digest(digest, known):
                found = roles
        return found


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
