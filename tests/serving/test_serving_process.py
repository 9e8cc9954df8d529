"""What the serving process holds: the compiled graph, never scikit-learn, when the graph
serves; the plain model, loaded in-process, when a version's graph cannot serve."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from components.common.config import SeamlessConfig
from components.register.registry import register
from components.serve.api.app import create_app
from components.serve.models.compiled import rows_frame
from components.train.run import trusted_types
from tests.serving.conftest import make_settings
from tests.serving.serve_process import serving_process

pytestmark = pytest.mark.serving


def mapped_packages(pid: int) -> set[str]:
    """Top-level packages of site-packages whose shared libraries the process has mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return set(re.findall(r"site-packages/([A-Za-z0-9_]+)/", maps))


def test_the_serving_process_never_loads_scikit_learn(
    ws: Path, built: dict, tmp_path: Path
) -> None:
    with serving_process(ws, tmp_path / "serve.log") as (proc, base):
        model = requests.get(f"{base}/readyz", timeout=10).json()["model"]
        assert model["predictor"] == "onnx", model
        r = requests.post(
            f"{base}/v1/predict", json={"entity_ids": built["entities"][:3]}, timeout=10
        )
        assert r.status_code == 200, r.text
        mapped = mapped_packages(proc.pid)
    assert "onnxruntime" in mapped  # the maps were read
    # The model was loaded, converted and checked in the preparing child.
    assert not mapped & {"sklearn", "onnx"}, sorted(mapped)


def test_a_version_whose_graph_cannot_serve_is_served_by_the_plain_model(
    ws: Path, built: dict, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    # The champion's pipeline with a step skl2onnx has no converter for.
    champion = mlflow.sklearn.load_model(built["model_uri"])
    odd = Pipeline(
        [("preprocess", champion.steps[0][1]), ("squash", FunctionTransformer(np.tanh)),
         ("model", champion.steps[-1][1])]
    )  # fmt: skip
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(odd, name="model", skops_trusted_types=trusted_types(odd))
    name = "unconvertible"
    version = register(name, info.model_uri, "promote", {}).version
    app = create_app(make_settings(tmp_path, model_name=name), serve_config)
    ids = built["entities"][:4]
    with TestClient(app) as client:
        model = client.get("/readyz").json()["model"]
        assert model["version"] == version and model["predictor"] == "sklearn"
        assert "ONNX conversion failed" in model["predictor_detail"]
        assert app.state.service.models.current.model is not None  # kept: it serves
        got = client.post("/v1/predict", json={"entity_ids": ids}).json()["predictions"]
        rows = app.state.service.lookup(ids)
    want = odd.predict_proba(rows_frame(serve_config, rows))[:, 1]
    assert [p["score"] for p in got] == pytest.approx(list(want), abs=1e-12)
