"""Who may look: serving's token roles mapped to the access model, the signed session
cookie, and OIDC JWTs (keys and a JWKS made here, on loopback, as tests/serving/test_oidc.py
does for serving): accepted, or refused with 401 and an audit entry naming the subject."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from components.common.errors import SeamlessError
from components.dashboard.app import create_app
from components.dashboard.auth import COOKIE, Gate, Sessions, Viewer
from components.dashboard.settings import DashboardSettings
from components.governance.audit import ACCESS_DENIED, FileAuditLog
from tests.serving.test_oidc import AUDIENCE, Provider, bearer, provider, tampered

pytestmark = pytest.mark.governance
__all__ = ["provider"]


def test_token_roles_map_to_the_access_model() -> None:
    gate = Gate(DashboardSettings(tokens_json=json.dumps({"p": "predict", "a": ["admin"]})))
    viewer = gate.viewer("Bearer p", None, "/x")
    admin = gate.viewer("Bearer a", None, "/x")
    assert viewer is not None and viewer.role == "viewer" and viewer.actor.startswith("token:")
    assert admin is not None and admin.role == "ml_engineer"
    assert viewer.may("view") and not viewer.may("audit_show") and admin.may("audit_show")
    assert gate.viewer("Bearer nope", None, "/x") is None
    assert gate.viewer("Basic p", None, "/x") is None
    assert gate.viewer(None, None, "/x") is None
    with pytest.raises(SeamlessError, match="No dashboard tokens configured"):
        Gate(DashboardSettings())
    open_gate = Gate(DashboardSettings(auth_disabled=True))
    anyone = open_gate.viewer(None, None, "/x")
    assert anyone is not None and anyone.may("audit_show")


def test_session_cookies_are_signed_and_expire() -> None:
    sessions = Sessions(b"k" * 32, hours=1)
    viewer = Viewer("token:abc", "viewer", time.time() + 60)
    cookie = sessions.issue(viewer)
    assert sessions.read(cookie) == Viewer("token:abc", "viewer", float(int(viewer.expires)))
    assert Sessions(b"x" * 32, hours=1).read(cookie) is None  # another server key
    body, mac = cookie.split(".")
    assert sessions.read(body + "." + mac[::-1]) is None
    assert sessions.read(sessions.issue(Viewer("a", "viewer", time.time() - 1))) is None
    assert sessions.read(sessions.issue(Viewer("a", "root", time.time() + 60))) is None
    assert sessions.read("garbage") is None and sessions.read(None) is None
    with pytest.raises(SeamlessError, match="at least 32 characters"):
        DashboardSettings(session_key=b"short")


@pytest.fixture()
def oidc_client(
    provider: Provider, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    settings = DashboardSettings(
        oidc={
            "oidc_issuer": provider.url,
            "oidc_audience": AUDIENCE,
            "oidc_role_map": json.dumps({"risk-team": "admin", "apps": "predict"}),
        }
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_oidc_tokens_sign_in_and_refusals_are_audited(
    provider: Provider, oidc_client: TestClient
) -> None:
    good = provider.token(sub="carol@example.com", roles=["risk-team"])
    assert oidc_client.get("/audit", headers=bearer(good)).status_code == 200
    app_token = provider.token(sub="svc", roles=["apps"])
    assert oidc_client.get("/audit", headers=bearer(app_token)).status_code == 403

    # The browser session of a JWT ends when the JWT does.
    short = provider.token(sub="dave@example.com", roles=["risk-team"], exp=int(time.time()) + 90)
    signed = oidc_client.post("/login", data={"token": short}, follow_redirects=False)
    assert signed.status_code == 303
    max_age = int(signed.headers["set-cookie"].split("Max-Age=")[1].split(";")[0])
    assert 0 < max_age <= 90

    bad = {
        "expired": provider.token(exp=int(time.time()) - 120, sub="eve@example.com"),
        "audience": provider.token(aud="someone-else", sub="eve@example.com"),
        "tampered": tampered(provider.token(sub="eve@example.com"), roles=["risk-team"]),
    }
    before = len(list(FileAuditLog().entries()))
    for why, token in bad.items():
        assert oidc_client.get("/models", headers=bearer(token)).status_code == 401, why
    denied = list(FileAuditLog().entries())[before:]
    assert [e["action"] for e in denied] == [ACCESS_DENIED] * len(bad)
    assert {e["actor"] for e in denied} == {"oidc:eve@example.com"}
    assert {e["subject"] for e in denied} == {"ui:/models"}
    assert all(e["details"]["credential"] == "oidc" for e in denied)
    # Sign-in with a refused JWT: the form again, and the refusal on the record.
    form = oidc_client.post("/login", data={"token": bad["expired"]}, follow_redirects=False)
    assert form.status_code == 401 and "That token is not valid." in form.text
    assert list(FileAuditLog().entries())[-1]["subject"] == "ui:/login"
    assert COOKIE not in form.headers.get("set-cookie", "")
