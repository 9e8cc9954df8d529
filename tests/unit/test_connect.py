"""components/common/connect.py: which first-connection errors are retried, and how long."""

from __future__ import annotations

import pytest

from components.common.connect import first_connection
from components.common.errors import SeamlessError

pytestmark = pytest.mark.unit


def _failing(errors: list[Exception]):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def connect() -> str:
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return "conn"

    return connect, calls


def _sentence(exc: BaseException, attempts: int, seconds: float) -> SeamlessError:
    return SeamlessError(f"unreachable after {attempts} attempts: {exc}.")


def test_refused_then_reachable_is_retried() -> None:
    connect, calls = _failing([ConnectionRefusedError("Connection refused")] * 2)
    assert first_connection("t-retry", connect, _sentence, budget_s=5) == "conn"
    assert calls["n"] == 3


def test_an_error_waiting_cannot_fix_fails_at_once() -> None:
    connect, calls = _failing([RuntimeError('password authentication failed for user "u"')])
    with pytest.raises(SeamlessError, match="after 1 attempts"):
        first_connection("t-auth", connect, _sentence, budget_s=5)
    assert calls["n"] == 1


def test_the_budget_bounds_the_wait() -> None:
    connect, calls = _failing([TimeoutError("timed out")] * 100)
    with pytest.raises(SeamlessError, match="unreachable after"):
        first_connection("t-budget", connect, _sentence, budget_s=0.5)
    assert 2 <= calls["n"] <= 4  # 0.25 s, then the next pause would pass the budget


def test_a_target_that_answered_once_is_not_retried_again() -> None:
    connect, _ = _failing([])
    first_connection("t-once", connect, _sentence, budget_s=5)
    connect, calls = _failing([ConnectionRefusedError("Connection refused")])
    with pytest.raises(SeamlessError):
        first_connection("t-once", connect, _sentence, budget_s=5)
    assert calls["n"] == 1
