"""The serving API through FastAPI's TestClient, against real MLflow and Feast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.predictions.files import read_records
from components.serve.lookup.features import FILE_CHECK_S
from components.serve.service import PREDICTIONS

pytestmark = pytest.mark.serving


def _features(client: TestClient, ids: list[int]) -> list[dict[str, Any]]:
    """The online features the app itself would use, as `instances` rows."""
    frame = client.app.state.service.features.fetch(ids)  # type: ignore[attr-defined]
    rows = frame.drop(columns=["customer_id"]).astype(object).where(frame.notna(), None)
    out = []
    types = client.app.state.service.config.feature_types()  # type: ignore[attr-defined]
    for row in rows.to_dict("records"):
        out.append(
            {k: (int(v) if types[k] == "int" and v is not None else v) for k, v in row.items()}
        )
    return out


def test_predict_by_entity_ids_scores_and_logs(
    client: TestClient, built: dict, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    ids = built["entities"][:3]
    r = client.post("/v1/predict", json={"entity_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "credit_risk"
    assert body["model_version"] == built["version"]
    assert [p["entity_id"] for p in body["predictions"]] == ids
    for p in body["predictions"]:
        assert 0.0 <= p["score"] <= 1.0
        assert p["decision"] == (p["score"] >= serve_config.model.threshold)
        assert p["request_id"] == body["request_id"]
        assert p["model_version"] == built["version"]
    logged = [
        rec
        for rec in read_records(tmp_path / "predictions", PREDICTIONS)
        if rec["request_id"] == body["request_id"]
    ]
    assert [rec["entity_id"] for rec in logged] == ids
    assert [rec["score"] for rec in logged] == [p["score"] for p in body["predictions"]]
    assert set(logged[0]["features"]) == set(serve_config.feature_types())
    assert logged[0]["model_version"] == built["version"] and logged[0]["ts"]


def test_instances_score_like_the_lookup(client: TestClient, built: dict) -> None:
    ids = built["entities"][10:14]
    by_id = client.post("/v1/predict", json={"entity_ids": ids}).json()["predictions"]
    r = client.post("/v1/predict", json={"instances": _features(client, ids)})
    assert r.status_code == 200, r.text
    by_row = r.json()["predictions"]
    assert [p["entity_id"] for p in by_row] == [None] * 4
    assert [p["score"] for p in by_row] == pytest.approx([p["score"] for p in by_id])


def test_unknown_entities_are_404_naming_them(client: TestClient, built: dict) -> None:
    r = client.post("/v1/predict", json={"entity_ids": [built["entities"][0], 42, 7]})
    assert r.status_code == 404
    assert r.json()["unknown_entity_ids"] == [42, 7]
    assert "42" in r.json()["detail"]
    metrics = client.get("/metrics").text
    assert "seamless_serve_online_feature_misses_total 2.0" in metrics


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"entity_ids": ["100000"]}, ["entity_ids"]),
        ({"entity_ids": []}, ["entity_ids"]),
        ({}, ["exactly one"]),
        ({"entity_ids": [1], "instances": []}, ["instances"]),
        ({"entity_ids": [1], "extra": 1}, ["extra"]),
    ],
)
def test_bad_requests_are_422_naming_the_field(
    client: TestClient, payload: dict, names: list[str]
) -> None:
    r = client.post("/v1/predict", json=payload)
    assert r.status_code == 422, r.text
    for name in names:
        assert name in r.text


def test_instance_type_errors_and_missing_features_are_named(
    client: TestClient, built: dict
) -> None:
    row = _features(client, built["entities"][:1])[0]
    row["age"] = "old"
    del row["credit_score"]
    r = client.post("/v1/predict", json={"instances": [row]})
    assert r.status_code == 422
    locs = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert ("body", "instances", 0, "age") in locs
    assert ("body", "instances", 0, "credit_score") in locs


@pytest.mark.parametrize("raw", [b'{"entity_ids": [1,', b"not json", b""])
def test_malformed_json_is_a_client_error(client: TestClient, raw: bytes) -> None:
    r = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)


def test_oversize_batch_is_413(ws: Path, tmp_path: Path, serve_config: SeamlessConfig) -> None:
    from tests.serving.conftest import serving_client

    with serving_client(tmp_path, serve_config, max_batch=2) as c:
        assert c.post("/v1/predict", json={"entity_ids": [1, 2, 3]}).status_code == 413
        tensor = {"name": "customer_id", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}
        r = c.post("/v2/models/credit_risk/infer", json={"inputs": [tensor]})
        assert r.status_code == 413


def test_oversize_body_is_413_before_it_is_read(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    """A body past `max_body_bytes` is refused on every route, the hot path included
    (chunked too: no Content-Length to trust), and nothing is scored or logged."""
    from tests.serving.conftest import serving_client

    huge = {"entity_ids": [100000] * 400}  # ~3 kB of JSON, max_batch is 1000
    with serving_client(tmp_path, serve_config, max_body_bytes=1000) as c:
        r = c.post("/v1/predict", json=huge)
        assert r.status_code == 413, r.text
        assert "limit of 1000 bytes" in r.json()["detail"]

        def chunks():  # no Content-Length: the body arrives in pieces
            yield b'{"entity_ids": ['
            for _ in range(400):
                yield b"100000, "
            yield b"100000]}"

        r = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        big = [{"request_id": "x" * 50, "entity_id": 1, "label": 1}] * 40
        assert c.post("/v1/feedback", json={"feedback": big}).status_code == 413
        tensor = {"name": "customer_id", "shape": [600], "datatype": "INT64", "data": [1] * 600}
        infer = c.post("/v2/models/credit_risk/infer", json={"inputs": [tensor]})
        assert infer.status_code == 413, infer.text
        assert c.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 200
    assert len(list(read_records(tmp_path / "predictions", "predictions"))) == 1
    assert not list(read_records(tmp_path / "feedback", "feedback"))


def test_feedback_is_logged(client: TestClient, tmp_path: Path) -> None:
    r = client.post(
        "/v1/feedback",
        json={"feedback": [{"request_id": "abc", "entity_id": 100000, "label": 1}]},
    )
    assert r.status_code == 200 and r.json() == {"recorded": 1}
    records = list(read_records(tmp_path / "feedback", "feedback"))
    assert records[-1]["request_id"] == "abc" and records[-1]["label"] == 1
    bad = client.post("/v1/feedback", json={"feedback": [{"request_id": "abc"}]})
    assert bad.status_code == 422 and "label" in bad.text


def test_health_ready_metrics_openapi(client: TestClient, serve_config: SeamlessConfig) -> None:
    assert client.get("/healthz").json() == {"alive": True}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["feature_store"] == "ok"
    client.post("/v1/predict", json={"entity_ids": [100000]})
    text = client.get("/metrics").text
    for name in (
        "seamless_serve_request_seconds_bucket",
        'seamless_serve_requests_total{method="POST",route="/v1/predict",status="200"}',
        "seamless_serve_prediction_score_bucket",
        'seamless_serve_model_info{model="credit_risk",version=',
        "seamless_serve_online_feature_misses_total",
        "seamless_serve_model_reload_failures_total 0.0",
    ):
        assert name in text, name
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v2/models/{name}/infer", "/admin/reload"} <= set(spec["paths"])
    assert set(serve_config.feature_types()) <= set(
        spec["components"]["schemas"]["Instance"]["properties"]
    )


def test_open_inference_protocol(
    client: TestClient, built: dict, serve_config: SeamlessConfig
) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/credit_risk").json()
    assert [i["name"] for i in meta["inputs"]] == list(serve_config.feature_types())
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
        "score": "FP32",
        "decision": "BOOL",
    }
    assert client.get("/v2/models/nope").status_code == 404

    ids = built["entities"][20:23]
    by_id = client.post(
        "/v2/models/credit_risk/infer",
        json={
            "id": "r1",
            "inputs": [{"name": "customer_id", "shape": [3], "datatype": "INT64", "data": ids}],
        },
    )
    assert by_id.status_code == 200, by_id.text
    out = {o["name"]: o for o in by_id.json()["outputs"]}
    assert by_id.json()["id"] == "r1" and out["score"]["datatype"] == "FP32"
    assert out["score"]["shape"] == [3]

    rows = _features(client, ids)
    types = {m["name"]: m["datatype"] for m in meta["inputs"]}
    tensors = [
        {"name": f, "shape": [3, 1], "datatype": types[f], "data": [[r[f]] for r in rows]}
        for f in serve_config.feature_types()
    ]
    by_tensor = client.post(
        "/v2/models/credit_risk/infer", json={"inputs": tensors, "outputs": [{"name": "score"}]}
    )
    assert by_tensor.status_code == 200, by_tensor.text
    assert [o["name"] for o in by_tensor.json()["outputs"]] == ["score"]
    assert by_tensor.json()["outputs"][0]["data"] == pytest.approx(out["score"]["data"], rel=1e-6)

    tensors[0] = {**tensors[0], "datatype": "BYTES"}
    bad = client.post("/v2/models/credit_risk/infer", json={"inputs": tensors})
    assert bad.status_code == 400 and "age" in bad.json()["error"]
    missing = client.post("/v2/models/credit_risk/infer", json={"inputs": tensors[1:]})
    assert missing.status_code == 400 and "missing inputs ['age']" in missing.json()["error"]
    unknown = client.post(
        "/v2/models/credit_risk/infer",
        json={"inputs": [{"name": "customer_id", "shape": [1], "datatype": "INT64", "data": [5]}]},
    )
    assert unknown.status_code == 404 and "5" in unknown.json()["error"]


def test_back_pressure_answers_429_with_retry_after(client: TestClient) -> None:
    limiter = client.app.state.service.limiter  # type: ignore[attr-defined]
    taken = 0
    while limiter.try_acquire():  # occupy every slot, as slow in-flight requests would
        taken += 1
    try:
        r = client.post("/v1/predict", json={"entity_ids": [100000]})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert client.get("/healthz").status_code == 200  # probes are never throttled
    finally:
        for _ in range(taken):
            limiter.release()
    assert client.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 200
    assert "seamless_serve_rejected_total 1.0" in client.get("/metrics").text


def test_online_store_outage_is_503_and_recovers(client: TestClient, ws: Path) -> None:
    db = ws / "feast" / "online_store.db"
    assert client.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 200
    db.rename(db.with_suffix(".moved"))
    time.sleep(FILE_CHECK_S * 1.5)  # lookups check the file at most every FILE_CHECK_S
    try:
        r = client.post("/v1/predict", json={"entity_ids": [100000]})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "online feature store is unavailable" in r.json()["detail"]
        assert "online_store.db" in r.json()["detail"]
        assert client.get("/readyz").status_code == 503
        assert not db.exists(), "the outage must not create an empty store"
    finally:
        db.with_suffix(".moved").rename(db)
    r = client.post("/v1/predict", json={"entity_ids": [100000]})
    assert r.status_code == 200, r.text
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"entity_ids": [2**63]},
        {"entity_ids": [-(2**63) - 1]},
    ],
)
def test_entity_ids_outside_int64_are_422(client: Any, body: dict[str, Any]) -> None:
    answer = client.post("/v1/predict", json=body)
    assert answer.status_code == 422, answer.text


def test_non_finite_and_huge_values_are_4xx(client: Any) -> None:
    raw = '{"instances": [{"annual_income": Infinity}]}'
    answer = client.post("/v1/predict", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    for value in ("Infinity", str(2**1100), str(2**63)):
        tensor = (
            '{"inputs": [{"name": "customer_id", "shape": [1], "datatype": "INT64", '
            f'"data": [{value}]}}]}}'
        )
        answer = client.post(
            "/v2/models/credit_risk/infer",
            content=tensor,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= answer.status_code < 500, (value, answer.text)
