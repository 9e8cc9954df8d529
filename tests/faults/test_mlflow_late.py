"""A fresh pod's first MLflow call while the server is not reachable yet (issue #14 A.1).

MLflow's REST client retries refused connections itself (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`,
default 7, exponential backoff), so a Job whose NetworkPolicies arrive a few seconds
after it starts still gets through: this checks that the stages rely on that and do
not turn the first refusal into a failure of their own.
"""

from __future__ import annotations

import threading

import pytest

from components.common.tracking import ensure_experiment
from tests.faults.conftest import MlflowServer

pytestmark = pytest.mark.slow


def test_first_mlflow_call_waits_for_a_server_that_starts_late(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    # Defaults apart from the per-request timeout: the retry budget is MLflow's own.
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", raising=False)
    errors: list[BaseException] = []

    def start_late() -> None:
        try:
            mlflow_server.start()
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    # The server starts only after the first call has been refused at least once.
    starter = threading.Timer(2.0, start_late)
    starter.start()
    try:
        experiment_id = ensure_experiment("late-server")
    finally:
        starter.join()
    assert not errors, errors
    assert experiment_id
    assert (mlflow_server.root / "mlflow.db").is_file()
