"""`seamless ...` in a child process, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SEAMLESS = str(Path(sys.executable).parent / "seamless")


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, drop: Iterable[str] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """The CLI's result, never raising on its exit status. The environment is passed on
    explicitly (readline, imported by some plugins, sets COLUMNS/LINES with setenv(),
    which children would inherit but os.environ never shows), less the names in `drop`,
    plus `env`."""
    dropped = set(drop)
    environ = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [SEAMLESS, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**environ, **env},
    )
