"""The process environment around fixtures that point it at a workspace they build."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def restored_environ() -> Iterator[None]:
    """`os.environ` as it was on entry, put back on exit (for module and session
    fixtures: the autouse fixture in tests/conftest.py only covers one test)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def enter_env(built: dict[str, Any]) -> dict[str, Any]:
    """A built workspace's endpoints (`built["env"]`) in this process's environment for
    one test (the autouse fixture in tests/conftest.py restores the environment
    afterwards); returns `built`."""
    os.environ.update(built["env"])
    return built
