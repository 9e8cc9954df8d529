"""MLflow over HTTPS: a CA file setting that cannot be used is refused in one sentence
naming the key, before MLflow's client would fail with a bare requests error."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.env import mlflow_tracking_uri
from components.common.errors import SeamlessError

pytestmark = pytest.mark.unit

URI = "https://mlflow.seamless.svc.cluster.local:5000"


def test_a_missing_ca_file_is_refused_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from components.common.tracking import mlflow_client

    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(tmp_path / "ca.crt"))
    with pytest.raises(SeamlessError) as err:
        mlflow_client()
    message = str(err.value)
    assert message.startswith(f"MLFLOW_TRACKING_SERVER_CERT_PATH={tmp_path / 'ca.crt'} is not"), (
        message
    )
    assert message.count(".") <= 3 and "\n" not in message, message
    # A folder is no CA file either.
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(tmp_path))
    with pytest.raises(SeamlessError, match="MLFLOW_TRACKING_SERVER_CERT_PATH"):
        mlflow_tracking_uri()


def test_a_readable_ca_file_or_plain_settings_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(ca))
    assert mlflow_tracking_uri() == URI
    # No CA setting: the system's CAs (MLflow's default); a local store ignores it.
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
    assert mlflow_tracking_uri() == URI
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(tmp_path / "missing.crt"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert mlflow_tracking_uri().startswith("sqlite:///")
