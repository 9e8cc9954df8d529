"""MLflow server down at registration: bounded retries, a clean failure, aliases intact."""

from __future__ import annotations

import time

import pytest

from components.common.errors import SeamlessError
from components.common.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, mlflow_client
from components.register.registry import register
from tests.faults.conftest import MlflowServer

pytestmark = pytest.mark.slow
MODEL = "fault_model"


def _log_tiny_model() -> str:
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    # Point the fluent API at this test's store: earlier tests may have set another URI.
    mlflow_client()
    model = LogisticRegression().fit([[0.0], [1.0], [0.2], [0.9]], [0, 1, 0, 1])
    mlflow.set_experiment("faults")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model")
    return str(info.model_uri)


def _aliases() -> dict[str, str | None]:
    client = mlflow_client()
    aliases = client.get_registered_model(MODEL).aliases
    return {a: aliases.get(a) for a in (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)}


def test_registration_with_the_server_down_fails_cleanly_and_moves_no_alias(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    # Bound MLflow's own HTTP retries so the failure comes in seconds, not minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    mlflow_server.start()
    uri = _log_tiny_model()
    first = register(MODEL, uri, "promote", {"t": "1"})
    assert first.version == "1" and first.champion_version == "1"
    before = _aliases()
    assert before == {CHAMPION: "1", CHALLENGER: "1", PREVIOUS_CHAMPION: None}

    mlflow_server.kill()
    started = time.monotonic()
    with pytest.raises(SeamlessError) as info:
        register(MODEL, uri, "promote", {"t": "2"})
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert MODEL in message and "failed" in message, message
    # Retries happened (backoff 1 s, 2 retries) but stayed bounded.
    assert 1.0 <= elapsed < 45, elapsed

    mlflow_server.start()
    after = _aliases()
    assert after == before, f"aliases moved while the server was down: {before} -> {after}"
    versions = mlflow_client().search_model_versions(f"name='{MODEL}'")
    assert sorted(v.version for v in versions) == ["1"]
