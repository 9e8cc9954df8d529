"""Bearer JWTs from an OIDC provider at serving: keys generated here, the JWKS and the
discovery document served on 127.0.0.1, real signatures (PyJWT + cryptography).

Every bad token gets 401 and an `access_denied` audit entry naming the claimed subject and
the reason; static tokens keep working beside JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.governance.audit import ACCESS_DENIED, FileAuditLog
from components.serve.api.app import create_app
from components.serve.api.oidc import OidcVerifier, Refused
from tests.helpers.loopback import answer, loopback_server
from tests.serving.conftest import make_settings

AUDIENCE = "seamless-serving"
BODY = {"entity_ids": [100000]}


@dataclass
class Provider:
    """An OIDC provider on loopback: keys by kid, a JWKS and a discovery document."""

    url: str = ""
    keys: dict[str, Any] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    jwks_fetches: int = 0

    def add_key(self, kid: str, kind: str = "rsa", publish: bool = True) -> None:
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = key
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            public = self.keys[kid].public_key()
            if isinstance(public, rsa.RSAPublicKey):
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
            else:
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
            out.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": out}

    def token(self, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "alice@example.com",
            "iat": now,
            "exp": now + 300,
            "roles": ["predict"],
            **claims,
        }
        return jwt.encode(payload, self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture()
def provider() -> Iterator[Provider]:
    p = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": p.url, "jwks_uri": f"{p.url}/jwks.json"}
            elif self.path == "/jwks.json":
                p.jwks_fetches += 1
                body = p.jwks()
            else:
                self.send_response(404)
                self.end_headers()
                return
            answer(self, json.dumps(body).encode(), "application/json")

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler) as url:
        p.url = url
        p.add_key("k1")
        p.add_key("e1", kind="ec")
        yield p


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tampered(token: str, **changes: Any) -> str:
    """The token with its payload edited and the original signature kept."""
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode()).rstrip(b"=")
    return f"{head}.{edited.decode()}.{sig}"


def _part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(**claims: Any) -> str:
    head = {"alg": "none", "typ": "JWT", "kid": "k1"}
    return f"{_part(json.dumps(head).encode())}.{_part(json.dumps(claims).encode())}."


def hmac_signed(secret: bytes, **claims: Any) -> str:
    """HS256 with `secret` (PyJWT itself refuses a PEM key as an HMAC secret)."""
    head = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    signing = f"{_part(json.dumps(head).encode())}.{_part(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_part(sig)}"


def test_tokens_are_checked_and_every_refusal_is_audited(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig, provider: Provider
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("static-predict-token-0123456789:predict\n")
    settings = make_settings(
        tmp_path,
        auth_disabled=False,
        tokens_file=tokens,
        oidc_issuer=provider.url,  # the JWKS found through the discovery document
        oidc_audience=AUDIENCE,
        oidc_roles_claim="groups",
        oidc_role_map=json.dumps({"ml-engineers": "admin", "scoring-apps": "predict"}),
    )
    p = provider
    good = p.token(groups=["scoring-apps"])
    public_pem = (
        p.keys["k1"]
        .public_key()
        .public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    refused = {
        "token expired": p.token(groups=["scoring-apps"], exp=int(time.time()) - 120),
        "wrong audience": p.token(groups=["scoring-apps"], aud="another-service"),
        "wrong issuer": p.token(groups=["scoring-apps"], iss="https://evil.example.com"),
        "unknown signing key 'k9'": jwt.encode(
            {"sub": "mallory", "iss": p.url, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": "k9"},
        ),
        "algorithm 'none' is not accepted": unsigned(
            sub="mallory",
            iss=p.url,
            aud=AUDIENCE,
            exp=int(time.time()) + 60,
            groups=["ml-engineers"],
        ),
        "bad signature": tampered(good, groups=["ml-engineers"], sub="mallory"),
        # The provider's public key used as an HMAC secret (algorithm confusion).
        "algorithm 'HS256' is not accepted": hmac_signed(
            public_pem, sub="mallory", iss=p.url, aud=AUDIENCE, exp=int(time.time()) + 60
        ),
        "malformed token": "not.a.jwt",
    }
    with TestClient(create_app(settings, serve_config)) as client:
        assert client.post("/v1/predict", json=BODY, headers=bearer(good)).status_code == 200
        ec_token = p.token(kid="e1", alg="ES256", groups="scoring-apps ml-engineers")
        assert client.post("/admin/reload", headers=bearer(ec_token)).status_code == 200
        # Authenticated, but no role this service maps: 403, not 401.
        nobody = p.token(groups=["finance"])
        assert client.post("/v1/predict", json=BODY, headers=bearer(nobody)).status_code == 403
        assert client.post("/admin/reload", headers=bearer(good)).status_code == 403
        static = bearer("static-predict-token-0123456789")
        assert client.post("/v1/predict", json=BODY, headers=static).status_code == 200
        for reason, token in refused.items():
            answer = client.post("/v1/predict", json=BODY, headers=bearer(token))
            assert answer.status_code == 401, reason
            assert answer.headers["www-authenticate"] == "Bearer"

    denied = [
        e
        for e in FileAuditLog().entries()
        if e["action"] == ACCESS_DENIED and e["details"].get("credential") == "oidc"
    ]
    reasons = {e["details"]["reason"]: e["actor"] for e in denied[-len(refused) :]}
    assert set(reasons) == set(refused)
    assert reasons["token expired"] == "oidc:alice@example.com"
    assert reasons["bad signature"] == "oidc:mallory"  # as claimed: the audit says so
    assert reasons["malformed token"] == "oidc:unknown"
    assert all(e["subject"] == "serve:/v1/predict" for e in denied[-len(refused) :])


def test_unknown_kids_refresh_the_jwks_at_most_once_per_interval(provider: Provider) -> None:
    verifier = OidcVerifier(
        provider.url, AUDIENCE, jwks_url=f"{provider.url}/jwks.json", min_refresh_s=0.5
    )
    assert verifier.verify(provider.token()).roles == {"predict"}
    assert provider.jwks_fetches == 1
    # A rotated key, published after serving started: found by refetching the JWKS.
    provider.add_key("k2")
    time.sleep(0.6)
    assert verifier.verify(provider.token(kid="k2", roles="admin")).roles == {"admin", "predict"}
    assert provider.jwks_fetches == 2
    # Random kids within the interval cost no fetch.
    provider.add_key("k3", publish=False)
    for _ in range(20):
        with pytest.raises(Refused, match="unknown signing key 'k3'"):
            verifier.verify(provider.token(kid="k3"))
    assert provider.jwks_fetches == 2
    time.sleep(0.6)  # after the interval, the next unknown kid fetches once more
    with pytest.raises(Refused, match="unknown signing key 'k3'"):
        verifier.verify(provider.token(kid="k3"))
    assert provider.jwks_fetches == 3


@pytest.mark.parametrize(
    ("settings", "sentence"),
    [
        ({"oidc_issuer": "https://id.example.com"}, "needs both SEAMLESS_SERVE_OIDC_ISSUER"),
        ({"oidc_issuer": "http://id.example.com", "oidc_audience": "x"}, "must be an https://"),
        ({"oidc_issuer": "LOCAL", "oidc_audience": "x", "oidc_role_map": "[1]"}, "a JSON object"),
        ({"oidc_issuer": "LOCAL", "oidc_audience": "x", "oidc_role_map": '{"g": "x"}'}, "['x']"),
    ],
)  # fmt: skip
def test_bad_oidc_settings_stop_the_start_in_one_sentence(
    tmp_path: Path,
    serve_config: SeamlessConfig,
    provider: Provider,
    settings: dict[str, str],
    sentence: str,
) -> None:
    chosen = {k: provider.url if v == "LOCAL" else v for k, v in settings.items()}
    with pytest.raises(SeamlessError, match=re.escape(sentence)):
        create_app(make_settings(tmp_path, auth_disabled=False, **chosen), serve_config)


def test_seamless_serve_reads_the_oidc_variables(ws: Path, tmp_path: Path) -> None:
    from tests.helpers.cli import run_cli

    done = run_cli(
        "serve", "--workspace", str(ws), "--port", "0",
        cwd=tmp_path, timeout=120, SEAMLESS_SERVE_OIDC_ISSUER="https://id.example.com",
    )  # fmt: skip
    assert done.returncode == 1
    assert "OIDC needs both SEAMLESS_SERVE_OIDC_ISSUER and SEAMLESS_SERVE_OIDC_AUDIENCE" in (
        done.stderr
    )
