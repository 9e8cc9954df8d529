"""Certificates for the TLS tests, issued by the project's own tool
(manifests/tools/gen_certs.py), so the tests check what `gen_secrets.py` deploys."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def gen_certs() -> ModuleType:
    """manifests/tools/gen_certs.py as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location(
        "gen_certs", ROOT / "manifests" / "tools" / "gen_certs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ours_and_other(
    out: Path, service: str, hosts: tuple[str, ...] = ("127.0.0.1",)
) -> dict[str, Path]:
    """Two folders of `ca.crt`, `<service>.crt` and `<service>.key`: `ours` (our CA, the
    Service's names and `hosts` certified) and `other` (another CA, the same names: the
    impostor a client must refuse)."""
    tool = gen_certs()
    for which in ("ours", "other"):
        tool.write_certs(out / which, [service], list(hosts))
    return {which: out / which / "secrets" / "tls" for which in ("ours", "other")}


def certs_fixture(service: str) -> Any:
    """A module-scoped `certs` fixture: `ours_and_other` for `service` in a folder of its
    own (our CA with the Service's names and 127.0.0.1 certified, not `localhost`: the
    wrong name; another CA with the same names). Assign it to `certs` in a test module."""

    @pytest.fixture(scope="module", name="certs")
    def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        return ours_and_other(tmp_path_factory.mktemp(f"{service}-tls"), service)

    return certs


def wrong_name(ours: Path, service: str, out: Path) -> Path:
    """`out/` with `<service>.crt` and `<service>.key` from our CA (the `ca.crt`/`ca.key` in
    `ours`) for the Service's names only: a certificate clients dialling 127.0.0.1 must
    refuse for its name, not its issuer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    tool = gen_certs()
    ca = x509.load_pem_x509_certificate((ours / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ours / "ca.key").read_bytes(), password=None)
    cert, key = tool.issue(ca, ca_key, tool.service_names(service))
    out.mkdir()
    (out / f"{service}.crt").write_bytes(tool.cert_pem(cert))
    (out / f"{service}.key").write_bytes(tool.key_pem(key))
    return out
