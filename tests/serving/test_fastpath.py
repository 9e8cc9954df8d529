"""The lean request path: direct SQLite reads equal Feast's, and the ASGI hot path for
`POST /v1/predict` answers exactly as the FastAPI route does."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.predictions.files import read_records
from components.serve.api.app import create_app
from components.serve.service import PREDICTIONS
from tests.serving.conftest import make_settings

pytestmark = pytest.mark.serving


def same_value(a: Any, b: Any) -> bool:
    """Equal as the model sees them (numbers as floats, NaN/None as missing)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)


def test_direct_sqlite_reads_equal_the_feast_sdk(client: TestClient, built: dict) -> None:
    features = client.app.state.service.features  # type: ignore[attr-defined]
    ids = [*built["entities"][:300], -1, 42, 10**12]
    rows = features.fetch_rows(ids)
    assert features.read_path == "sqlite"
    frame = features.fetch(ids)[features.features]  # the SDK: get_online_features
    sdk = frame.astype(object).where(frame.notna(), None).values.tolist()
    assert len(rows) == len(sdk) == len(ids)
    for i, (mine, theirs) in enumerate(zip(rows, sdk, strict=True)):
        assert all(map(same_value, mine, theirs)), (ids[i], mine, theirs)
    assert all(v is None for v in rows[-1])  # unknown: every feature null, as in Feast
    dup = features.fetch_rows([ids[0], ids[1], ids[0]])
    assert dup[0] == dup[2] == rows[0] and dup[0] is not dup[2]


def test_hot_path_answers_as_the_fastapi_route(
    client: TestClient, built: dict, tmp_path: Path
) -> None:
    ids = built["entities"][30:33]
    fast = client.post("/v1/predict", json={"entity_ids": ids})
    # Valid, but not the exact shape the hot path takes: FastAPI parses and answers it.
    slow = client.post("/v1/predict", json={"entity_ids": ids, "instances": None})
    assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
    a, b = fast.json(), slow.json()
    assert a["request_id"] != b["request_id"]
    for d in (a, b):
        d.pop("request_id")
        for p in d["predictions"]:
            p.pop("request_id")
    assert a == b
    logged = list(read_records(tmp_path / "predictions", PREDICTIONS))
    assert len(logged) == 6 and logged[0]["features"] == logged[3]["features"]
    metrics = client.get("/metrics").text
    assert 'seamless_serve_requests_total{method="POST",route="/v1/predict",status="200"} 2.0' in (
        metrics
    )


def test_hot_path_errors_match_the_route(client: TestClient, built: dict) -> None:
    unknown = client.post("/v1/predict", json={"entity_ids": [built["entities"][0], 42]})
    assert unknown.status_code == 404 and unknown.json()["unknown_entity_ids"] == [42]
    for bad in ({"entity_ids": [True]}, {"entity_ids": [1.5]}, {"entity_ids": [2**63]}):
        assert client.post("/v1/predict", json=bad).status_code == 422, bad


def test_readyz_and_metrics_name_the_live_predictor(client: TestClient, built: dict) -> None:
    ready = client.get("/readyz").json()
    assert ready["model"]["predictor"] == "onnx", ready
    assert "parity" in ready["model"]["predictor_detail"]
    assert ready["feature_reads"] == "sqlite"
    text = client.get("/metrics").text
    labels = f'kind="onnx",model="credit_risk",version="{built["version"]}"'
    assert f"seamless_serve_predictor_info{{{labels}}} 1.0" in text


def test_plain_sklearn_predictor_on_request(
    ws: Path,
    tmp_path: Path,
    serve_config: SeamlessConfig,
    built: dict,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = built["entities"][40:45]
    compiled = client.post("/v1/predict", json={"entity_ids": ids}).json()["predictions"]
    monkeypatch.setenv("SEAMLESS_SERVE_PREDICTOR", "sklearn")
    app = create_app(make_settings(tmp_path / "plain"), serve_config)
    with TestClient(app) as plain_client:
        assert plain_client.get("/readyz").json()["model"]["predictor"] == "sklearn"
        plain = plain_client.post("/v1/predict", json={"entity_ids": ids}).json()["predictions"]
    assert [p["score"] for p in plain] == pytest.approx([p["score"] for p in compiled], abs=1e-5)
