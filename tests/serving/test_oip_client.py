"""A real Open Inference Protocol client against a real `seamless serve` process.

Triton's HTTP client (`tritonclient[http]`, the client KServe documents for its v2 REST
protocol) sends binary tensor data by default (`binary_data=True`) and, when it names no
outputs, asks for binary outputs: every request here is one it builds itself, answers
read back with its own decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.helpers.require import require_module

tritonhttp = require_module(
    "tritonclient.http",
    reason="tritonclient[http] is a dev dependency: run `make venv` (pip install -e .[dev])",
)
from tritonclient.utils import InferenceServerException  # noqa: E402 (after require_module)

from components.common.config import SeamlessConfig  # noqa: E402
from tests.serving.serve_process import serving_process  # noqa: E402

pytestmark = pytest.mark.serving

MODEL = "credit_risk"
NUMPY = {"int": np.int64, "float": np.float64}
DATATYPE = {"int": "INT64", "float": "FP64", "string": "BYTES", "bool": "BOOL"}


def _rows(config: SeamlessConfig, n: int, missing: bool) -> list[dict[str, Any]]:
    """Made-up feature rows of every type (one float missing if `missing`)."""
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for j, (name, kind) in enumerate(config.feature_types().items()):
            if kind == "int":
                row[name] = 3 * i + j
            elif kind == "float":
                row[name] = None if missing and (i, j) == (0, 1) else 1000.5 * i + j / 4
            else:
                row[name] = ["own", "rent", "north", "Zürich"][(i + j) % 4]
        rows.append(row)
    return rows


def _tensors(config: SeamlessConfig, rows: list[dict[str, Any]], binary: bool) -> list[Any]:
    tensors = []
    for name, kind in config.feature_types().items():
        values = [r[name] for r in rows]
        if kind == "string":
            array = np.array([[v.encode()] for v in values], dtype=np.object_)
        else:
            array = np.array([[np.nan if v is None else v] for v in values], dtype=NUMPY[kind])
        tensor = tritonhttp.InferInput(name, list(array.shape), DATATYPE[kind])
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    return tensors


def test_tritons_client_infers_with_binary_tensors(
    ws: Path, built: dict, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    with serving_process(ws, tmp_path / "serve.log") as (_, base):
        client = tritonhttp.InferenceServerClient(base.removeprefix("http://"))
        try:
            _check(client, base, built, serve_config)
        finally:
            client.close()


def _check(client: Any, base: str, built: dict, config: SeamlessConfig) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(MODEL)
    served = metadata["versions"][0]
    other = served + "0"
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, served)
    assert not client.is_model_ready(MODEL, other)
    assert client.get_model_metadata(MODEL, served) == metadata
    with pytest.raises(InferenceServerException) as err:
        client.get_model_metadata(MODEL, other)
    assert err.value.status() == "404" and f"serves version '{served}'" in err.value.message()

    # Entity ids: the client's defaults (binary input, binary outputs) score as JSON does.
    ids = built["entities"][60:66]
    tensor = {"name": "customer_id", "shape": [len(ids)], "datatype": "INT64", "data": ids}
    answer = requests.post(f"{base}/v2/models/{MODEL}/infer", json={"inputs": [tensor]}, timeout=30)
    assert answer.status_code == 200, answer.text
    want = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    entity = tritonhttp.InferInput("customer_id", [len(ids)], "INT64")
    entity.set_data_from_numpy(np.array(ids, dtype=np.int64))  # binary_data=True
    for version in ("", served):  # /infer and /versions/{served}/infer
        result = client.infer(MODEL, [entity], model_version=version, request_id="t1")
        response = result.get_response()
        assert response["id"] == "t1" and response["model_version"] == served
        assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
        score, decision = result.as_numpy("score"), result.as_numpy("decision")
        assert score.dtype == np.float32 and decision.dtype == np.bool_
        assert score.tolist() == pytest.approx(want["score"], rel=1e-6)
        assert decision.tolist() == want["decision"]
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, [entity], model_version=other)
    assert err.value.status() == "404" and "is not served here" in err.value.message()

    # JSON outputs when the client asks for them; JSON inputs from the same client.
    json_out = [tritonhttp.InferRequestedOutput("score", binary_data=False)]
    result = client.infer(MODEL, [entity], outputs=json_out)
    assert result.get_response()["outputs"][0]["data"] == want["score"]
    entity.set_data_from_numpy(np.array(ids, dtype=np.int64), binary_data=False)
    assert client.infer(MODEL, [entity]).as_numpy("decision").tolist() == want["decision"]

    # One tensor per feature (INT64, FP64, BYTES): as `instances` score. A missing value is
    # NaN in a binary FP64 tensor (JSON tensors say null, which numpy cannot hold).
    for binary in (True, False):
        rows = _rows(config, 5, missing=binary)
        by_row = requests.post(f"{base}/v1/predict", json={"instances": rows}, timeout=30)
        assert by_row.status_code == 200, by_row.text
        scores = [p["score"] for p in by_row.json()["predictions"]]
        result = client.infer(MODEL, _tensors(config, rows, binary))
        assert result.as_numpy("score").tolist() == pytest.approx(scores, rel=1e-6)

    # Errors reach the client as its exception, with the server's sentence.
    unknown = tritonhttp.InferInput("customer_id", [1], "INT64")
    unknown.set_data_from_numpy(np.array([7], dtype=np.int64))
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, [unknown])
    assert err.value.status() == "404" and "Unknown entity ids" in err.value.message()
    wrong = tritonhttp.InferInput("customer_id", [1], "FP32")
    wrong.set_data_from_numpy(np.array([7.0], dtype=np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, [wrong])
    assert err.value.status() == "400" and "must be INT64" in err.value.message()
