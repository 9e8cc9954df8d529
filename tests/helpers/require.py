"""What a tier needs but cannot find: skip with what to install, or fail under CI.

Locally a missing tool (Docker, PostgreSQL, Redis, kubectl, ...) skips its tests with
the action that fixes it; with `CI` set it is a failure, so CI cannot go green by
skipping a tier.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)
