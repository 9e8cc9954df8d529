"""`seamless serve --tls-cert --tls-key`: HTTPS with certificates from
manifests/tools/gen_certs.py; clients that verify refuse a server whose certificate has
another CA or another name; bad TLS arguments stop the start in one sentence."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.certs import gen_certs, ours_and_other, wrong_name
from tests.helpers.cli import SEAMLESS, run_cli
from tests.helpers.postgres import free_port


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA with `serving` certified for the Service names and 127.0.0.1; another CA
    with a certificate for 127.0.0.1 (the impostor)."""
    out = tmp_path_factory.mktemp("tls")
    ours_and_other(out, "serving")
    return out


def tls_dir(certs: Path, which: str) -> Path:
    return certs / which / "secrets" / "tls"


@pytest.fixture(scope="module")
def elsewhere_same_ca(certs: Path) -> Path:
    """Our CA's certificate for the Service names only (not 127.0.0.1)."""
    return wrong_name(tls_dir(certs, "ours"), "serving", certs / "wrong-name")


@pytest.fixture()
def https_server(ws: Path, tmp_path: Path) -> Iterator[Callable[[Path, Path], int]]:
    procs: list[subprocess.Popen[str]] = []

    def start(cert: Path, key: Path) -> int:
        port = free_port()
        log = (tmp_path / f"serve-{port}.log").open("w")
        procs.append(
            subprocess.Popen(
                [SEAMLESS, "serve", "--workspace", str(ws), "--port", str(port), "--no-auth",
                 "--tls-cert", str(cert), "--tls-key", str(key), "--poll-seconds", "0"],
                stdout=log, stderr=subprocess.STDOUT, text=True,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            if procs[-1].poll() is not None:
                break
            time.sleep(0.5)
        pytest.fail("serve did not start:\n" + (tmp_path / f"serve-{port}.log").read_text())

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def get(url: str, cafile: Path) -> int:
    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(url, context=context, timeout=10) as resp:
        return int(resp.status)


def test_https_is_verified_by_ca_and_name(
    certs: Path, elsewhere_same_ca: Path, https_server: Callable[[Path, Path], int]
) -> None:
    ours, other = tls_dir(certs, "ours"), tls_dir(certs, "other")
    port = https_server(ours / "serving.crt", ours / "serving.key")
    url = f"https://127.0.0.1:{port}/healthz"
    assert get(url, ours / "ca.crt") == 200
    # A client trusting another CA refuses this server.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(url, other / "ca.crt")
    # Plain HTTP to the TLS port gets no answer a client could mistake for serving's.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10)

    # Our CA, but a certificate without the name the client dialled: refused too.
    port = https_server(elsewhere_same_ca / "serving.crt", elsewhere_same_ca / "serving.key")
    mismatch = "Hostname mismatch|doesn't match|IP address mismatch"
    with pytest.raises(urllib.error.URLError, match=mismatch):
        get(f"https://127.0.0.1:{port}/healthz", ours / "ca.crt")


def test_gen_certs_names_the_service_and_keeps_keys_private(certs: Path) -> None:
    from cryptography import x509

    folder = tls_dir(certs, "ours")
    cert = x509.load_pem_x509_certificate((folder / "serving.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "serving.seamless.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    assert (folder / "serving.key").stat().st_mode & 0o777 == 0o600
    assert (folder / "ca.key").stat().st_mode & 0o777 == 0o600
    before = (folder / "serving.crt").read_bytes()
    assert gen_certs().write_certs(certs / "ours", ["serving"], []) == []  # nothing reissued
    assert (folder / "serving.crt").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--tls-cert", "CERT"], "HTTPS needs both --tls-cert and --tls-key."),
        (["--tls-cert", "CERT", "--tls-key", "MISSING"], "does not exist."),
        (["--tls-cert", "CERT", "--tls-key", "OTHERKEY"], "are not a PEM certificate and its key"),
    ],
)
def test_bad_tls_arguments_are_one_sentence(
    ws: Path, tmp_path: Path, certs: Path, args: list[str], sentence: str
) -> None:
    ours, other = tls_dir(certs, "ours"), tls_dir(certs, "other")
    paths = {
        "CERT": str(ours / "serving.crt"),
        "MISSING": str(tmp_path / "nope.key"),
        "OTHERKEY": str(other / "serving.key"),
    }
    done = run_cli(
        "serve", "--workspace", str(ws), "--no-auth", *[paths.get(a, a) for a in args],
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert sentence in done.stderr and "Traceback" not in done.stderr
