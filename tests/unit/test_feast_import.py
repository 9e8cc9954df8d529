"""Feast imported without typeguard's per-class recompilation, typeguard left alone for
everything else (components/common/feast_import.py). In child processes: the bypass must
be in place before Feast is first imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]
ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json, sys
    import components  # installs the bypass
    import feast
    from typeguard import TypeCheckError, typechecked

    @typechecked
    def mine(x: int) -> int:
        return x

    try:
        mine("not an int")
        ours = "unchecked"
    except TypeCheckError:
        ours = "checked"
    try:
        feast.Entity(name=1, join_keys=["id"])  # name: str
        theirs = "unchecked"
    except TypeCheckError:
        theirs = "checked"
    except Exception as exc:  # Feast's own validation, not typeguard's
        theirs = "unchecked: " + type(exc).__name__
    print(json.dumps({"ours": ours, "feast": theirs}))
    """
)


def _probe(tmp_path: Path, env_extra: dict[str, str]) -> dict[str, str]:
    import json
    import os

    probe = tmp_path / "probe.py"  # a file: typeguard instruments from the source
    probe.write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    done = subprocess.run(
        [sys.executable, str(probe)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_feast_is_not_instrumented_and_other_modules_still_are(tmp_path: Path) -> None:
    seen = _probe(tmp_path, {"SEAMLESS_FEAST_TYPECHECKS": ""})
    assert seen["ours"] == "checked"
    assert seen["feast"].startswith("unchecked"), seen


def test_the_variable_keeps_feasts_checks(tmp_path: Path) -> None:
    seen = _probe(tmp_path, {"SEAMLESS_FEAST_TYPECHECKS": "1"})
    assert seen == {"ours": "checked", "feast": "checked"}
