"""How `pytest -n N` (pytest-xdist) shares the suite among its workers.

A test module is one unit of work, so module fixtures (a Spark session, a Redis server,
a trained workspace) are built once, as in a serial run. The stack tier is one unit:
its containers have fixed names, so two of its modules must never run at once. Units go
out slowest tier first, so the last ones handed out are short and the workers end
together; the order inside a tier is the serial run's.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# Slowest first, from `--durations` of full runs; a folder not named goes after these.
TIER_ORDER = (
    "stack",
    "spark",
    "containers",
    "pipeline",
    "storage",
    "governance",
    "faults",
    "serving",
    "stream",
    "dashboard",
    "monitor",
    "manifests",
    "fuzz",
    "corpus",
    "component",
    "browser",
    "compile",
    "unit",
)

ONE_UNIT = ("tests/stack/",)
"""Folders whose modules share fixed names (containers) and run on one worker, in turn."""


def _tier(nodeid: str) -> int:
    parts = nodeid.split("/")
    folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    return TIER_ORDER.index(folder) if folder in TIER_ORDER else len(TIER_ORDER)


def order_for_workers(items: list[pytest.Item]) -> None:
    """Sort the collection by tier, slowest first; stable, so each module keeps its order."""
    items.sort(key=lambda item: _tier(item.nodeid))


class ModuleScheduling(LoadScopeScheduling):
    """One module per unit (one folder for ONE_UNIT), in the collection's order."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        # xdist would reorder units by test count; ours are already slowest first.
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        for folder in ONE_UNIT:
            if nodeid.startswith(folder):
                return folder
        return nodeid.split("::", 1)[0]


TERMINAL_SIZE = ("COLUMNS", "LINES")
"""An xdist worker starts with COLUMNS=80 and LINES=24, which a serial run does not
have: rich would fold the command output the tests read at 80 columns."""


def terminal_size_env() -> dict[str, str]:
    return {key: os.environ[key] for key in TERMINAL_SIZE if key in os.environ}


def restore_terminal_size_env(controller: dict[str, str]) -> None:
    """The worker's terminal size variables as the controller has them."""
    for key in TERMINAL_SIZE:
        if key in controller:
            os.environ[key] = controller[key]
        else:
            os.environ.pop(key, None)
