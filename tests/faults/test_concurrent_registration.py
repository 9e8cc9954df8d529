"""4 processes x 3 registrations against one local SQLite MLflow store: none lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.common.tracking import mlflow_client
from tests.faults.test_mlflow_down import _log_tiny_model

pytestmark = pytest.mark.slow
MODEL = "concurrent_model"
PROCESSES, EACH = 4, 3
ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import json, sys
from components.common.errors import SeamlessError
from components.register.registry import register
out = []
for i in range({each}):
    try:
        decision = "promote" if i % 2 else "reject"
        reg = register({model!r}, sys.argv[1], decision, {{"w": sys.argv[2]}})
        out.append({{"ok": reg.version}})
    except SeamlessError as exc:
        out.append({{"seamless_error": str(exc)}})
    except BaseException as exc:
        out.append({{"crash": type(exc).__name__ + ": " + str(exc)[:300]}})
print(json.dumps(out))
"""


def test_concurrent_registrations_get_unique_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "mlflow" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    uri = _log_tiny_model()  # also creates and migrates the store before the race
    code = _CHILD.format(each=EACH, model=MODEL)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri, str(w)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
            results += json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    crashes = [r for r in results if "crash" in r]
    failed = [r for r in results if "seamless_error" in r]
    assert not crashes, crashes
    assert not failed, failed
    reported = [r["ok"] for r in results]
    assert len(set(reported)) == PROCESSES * EACH, f"duplicate versions: {sorted(reported)}"
    stored = {str(v.version) for v in mlflow_client().search_model_versions(f"name='{MODEL}'")}
    assert stored == set(reported), f"lost: {set(reported) ^ stored}"
