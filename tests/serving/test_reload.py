"""Hot swap: the alias is polled, a new version swaps in under load, a broken one does not."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.common.tracking import CHAMPION, mlflow_client
from components.predictions.files import read_records
from components.register.registry import register
from components.serve.api.app import create_app
from components.serve.models.model_store import wait_for
from components.serve.service import PREDICTIONS
from tests.serving.conftest import make_settings

pytestmark = pytest.mark.serving
SWAP_MODEL = "credit_risk_swap"
# A reload downloads the version and prepares its predictor in a subprocess: seconds on an
# idle machine, near a minute on a loaded one. A bound on waiting, not a speed check.
RELOAD_WAIT_S = 120
"""Its own registered model, so moving its alias cannot disturb the other tests."""


def test_alias_move_swaps_under_load_and_a_broken_version_is_refused(
    ws: Path, tmp_path: Path, built: dict, serve_config: SeamlessConfig
) -> None:
    first = register(SWAP_MODEL, built["model_uri"], "promote", {}).version
    settings = make_settings(tmp_path, model_name=SWAP_MODEL, poll_seconds=0.2)
    app = create_app(settings, serve_config)
    ids = built["entities"][:5]
    with TestClient(app) as client:
        service = app.state.service
        assert service.models.current.version == first
        # Once the ONNX graph passed its parity check the scikit-learn model is not kept;
        # when the plain model serves, it is.
        current = service.models.current
        assert (current.model is None) == (current.predictor.kind == "onnx")

        answers: list[tuple[str, str]] = []
        failures: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                r = client.post("/v1/predict", json={"entity_ids": ids})
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    answers.append((r.json()["request_id"], r.json()["model_version"]))

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            second = register(SWAP_MODEL, built["model_uri"], "promote", {}).version
            assert wait_for(lambda: service.models.current.version == second, RELOAD_WAIT_S)
            n = len(answers)
            assert wait_for(lambda: len(answers) > n + 3, 15)
        finally:
            stop.set()
            worker.join()
        assert not failures, failures[:3]
        assert {v for _, v in answers} <= {first, second} and answers[-1][1] == second
        # Each logged prediction names the version that actually answered it.
        logged = {
            r["request_id"]: r["model_version"]
            for r in read_records(tmp_path / "predictions", PREDICTIONS)
        }
        assert all(logged[rid] == version for rid, version in answers)
        info = client.get("/metrics").text
        assert f'seamless_serve_model_info{{model="{SWAP_MODEL}",version="{second}"}} 1.0' in info
        assert f'version="{first}"' not in info.split("seamless_serve_model_info")[-1]

        # A version whose artifacts cannot be loaded: keep serving, report it.
        client_ml = mlflow_client()
        broken = client_ml.create_model_version(
            SWAP_MODEL, source=(tmp_path / "no-such-model").as_uri(), run_id=None
        )
        client_ml.set_registered_model_alias(SWAP_MODEL, CHAMPION, broken.version)
        assert wait_for(lambda: service.models.last_error is not None, RELOAD_WAIT_S)
        assert service.models.current.version == second
        r = client.post("/v1/predict", json={"entity_ids": ids})
        assert r.status_code == 200 and r.json()["model_version"] == second
        ready = client.get("/readyz")
        assert ready.status_code == 200  # still serving the previous version
        assert f"v{broken.version}" in ready.json()["model"]["last_reload_error"]
        assert "seamless_serve_model_reload_failures_total 0.0" not in client.get("/metrics").text
        forced = client.post("/admin/reload")
        assert forced.status_code == 502 and forced.json()["serving"]["version"] == second

        # Rolling the alias back is picked up by a forced reload as well.
        client_ml.set_registered_model_alias(SWAP_MODEL, CHAMPION, first)
        forced = client.post("/admin/reload")
        assert forced.status_code == 200 and forced.json()["version"] == first
        assert service.models.last_error is None
        # ... and swaps the graph this process prepared for it back in, without a child.
        assert service.models.current.predictor.detail.endswith("kept from an earlier load")


def test_no_champion_means_not_ready(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    app = create_app(make_settings(tmp_path, model_name="never_registered"), serve_config)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "never_registered@champion" in ready.json()["model"]["last_reload_error"]
        r = client.post("/v1/predict", json={"entity_ids": [100000]})
        assert r.status_code == 503 and "No model loaded" in r.json()["detail"]
        assert client.post("/admin/reload").status_code == 404


def test_corrupted_model_bytes_are_refused_and_the_old_model_keeps_serving(
    ws: Path, tmp_path: Path, built: dict, serve_config: SeamlessConfig
) -> None:
    import mlflow

    name = "corrupt_swap"
    first = register(name, built["model_uri"], "promote", {}).version
    # A copy of the real model whose serialized estimator is garbage (a damaged upload).
    copy = Path(mlflow.artifacts.download_artifacts(built["model_uri"], dst_path=str(tmp_path)))
    damaged = [p for p in copy.rglob("*") if p.suffix in (".skops", ".pkl")]
    assert damaged, f"no serialized model under {copy}"
    for path in damaged:
        path.write_bytes(b"\x00garbage, not a model\xff" * 64)
    settings = make_settings(tmp_path / "serve", model_name=name, poll_seconds=0.2)
    app = create_app(settings, serve_config)
    with TestClient(app) as client:
        service = app.state.service
        assert service.models.current.version == first
        client_ml = mlflow_client()
        bad = client_ml.create_model_version(name, source=copy.as_uri(), run_id=None)
        client_ml.set_registered_model_alias(name, CHAMPION, bad.version)
        assert wait_for(lambda: service.models.last_error is not None, RELOAD_WAIT_S)
        assert service.models.current.version == first
        r = client.post("/v1/predict", json={"entity_ids": built["entities"][:2]})
        assert r.status_code == 200 and r.json()["model_version"] == first
        assert f"v{bad.version}" in client.get("/readyz").json()["model"]["last_reload_error"]
