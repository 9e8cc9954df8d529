#!/usr/bin/env python3
"""Write a local certificate authority and one TLS certificate per Service.

    python manifests/tools/gen_certs.py manifests/overlays/kind            # create missing
    python manifests/tools/gen_certs.py OUT --service serving --host localhost --host 127.0.0.1

Into `<folder>/secrets/tls/`: `ca.crt` and `ca.key` (the authority, ECDSA P-256, 10
years), then for each service `<service>.crt` (the service's certificate followed by
nothing else; clients trust `ca.crt`) and `<service>.key`. A certificate names the
Service's DNS names in the namespace (`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`,
`<svc>.<ns>.svc.cluster.local`, likewise for the other Services in front of the same pods,
see ALIASES) plus any `--host` (a DNS name or an IP address), and is
valid for 1 year, for server authentication only. Existing files are never overwritten
(delete a service's pair to reissue it; delete `ca.*` to start a new authority, then
reissue every pair). Keys are created 0600; nothing secret is printed. In production
use cert-manager instead (docs/kubernetes.md, "TLS").
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICES = (
    "serving",
    "mlflow",
    "postgres",
    "redis",
    "feast-server",
    "dashboard",
    "alertmanager",
    # The stream consumer's /metrics (headless Service `stream-consumer`).
    "stream-consumer",
    # The in-cluster object store (manifests/components/minio; the kind overlay uses it).
    "minio",
)
# Other Services in front of the same pods: Prometheus scrapes serving through the headless
# `serving-metrics`, so serving's certificate names it too.
ALIASES = {"serving": ("serving-metrics",)}
# Loopback names: kind's NodePorts and `kubectl port-forward` reach a Service on the
# client's own host, and the client still checks the certificate's name.
LOOPBACK = ("localhost", "127.0.0.1")
NAMESPACE = "seamless"
CA_DAYS, CERT_DAYS = 3650, 365
CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def service_names(service: str, namespace: str = NAMESPACE) -> list[str]:
    names = []
    for svc in (service, *ALIASES.get(service, ())):
        base = f"{svc}.{namespace}"
        names += [svc, base, f"{base}.svc", f"{base}.svc.cluster.local"]
    return names


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Seamless"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


Pair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def make_ca(common: str = "Seamless local CA") -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[str]) -> Pair:
    """A server certificate for `names` (DNS names or IP addresses), signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def expected_files(services: list[str]) -> list[str]:
    """The files `write_certs` keeps under `secrets/tls/` for these services."""
    return ["ca.crt", "ca.key", *(f"{s}.{ext}" for s in services for ext in ("crt", "key"))]


def write_certs(folder: Path, services: list[str], hosts: list[str]) -> list[Path]:
    """Create what is missing under `<folder>/secrets/tls`; returns the files written."""
    tls = folder / "secrets" / "tls"
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[Path] = []
    ca_crt, ca_key_path = tls / "ca.crt", tls / "ca.key"
    if ca_crt.exists() and ca_key_path.exists():
        ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"{ca_key_path}: not an ECDSA key.")
        ca_key = loaded
    else:
        ca, ca_key = make_ca()
        _write_new(ca_key_path, key_pem(ca_key), 0o600)
        _write_new(ca_crt, cert_pem(ca), 0o644)
        written += [ca_key_path, ca_crt]
    for service in services:
        crt, key_path = tls / f"{service}.crt", tls / f"{service}.key"
        if crt.exists() and key_path.exists():
            continue
        cert, key = issue(ca, ca_key, [*service_names(service), *hosts])
        _write_new(key_path, key_pem(key), 0o600)
        _write_new(crt, cert_pem(cert), 0o644)
        written += [key_path, crt]
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an overlay folder, or any output folder")
    parser.add_argument(
        "--service", action="append", help=f"services to certify (default: {', '.join(SERVICES)})"
    )
    parser.add_argument(
        "--host", action="append", default=[], help="extra DNS name or IP in every certificate"
    )
    args = parser.parse_args()
    written = write_certs(args.folder, args.service or list(SERVICES), args.host)
    kept = "all present" if not written else f"{len(written)} files written"
    print(f"{args.folder / 'secrets' / 'tls'}: {kept}")


if __name__ == "__main__":
    main()
