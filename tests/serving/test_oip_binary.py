"""Open Inference Protocol v2: the binary tensor data extension and the versioned paths.

Bodies are built here by hand, per the extension's spec (a JSON header of
`Inference-Header-Content-Length` bytes, then each binary input's raw little-endian
elements in input order; BOOL one byte, BYTES each prefixed with its 4-byte length), with
`struct`, independently of the server's decoder. tests/serving/test_oip_client.py sends the
same requests with Triton's own client.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.common.config import SeamlessConfig
from components.serve.api.app import create_app
from tests.serving.conftest import make_settings
from tests.serving.test_api import _features

pytestmark = pytest.mark.serving

MODEL = "credit_risk"
INFER = f"/v2/models/{MODEL}/infer"
STRUCT = {"INT64": "q", "INT32": "i", "FP64": "d", "FP32": "f", "BOOL": "?", "UINT8": "B"}
DATATYPE = {"int": "INT64", "float": "FP64", "string": "BYTES", "bool": "BOOL"}
FEATURE_DATATYPES = {  # the demo config's features (tests/serving/workspace.py)
    "age": "INT64", "annual_income": "FP64", "employment_years": "FP64",
    "home_ownership": "BYTES", "region": "BYTES", "txn_count_30d": "INT64",
    "txn_amount_30d": "FP64", "avg_balance_30d": "FP64", "max_overdraft_30d": "FP64",
    "credit_score": "INT64", "open_accounts": "INT64", "delinquencies_12m": "INT64",
    "credit_utilization": "FP64",
}  # fmt: skip


@pytest.fixture(scope="module")
def client(
    built: dict, tmp_path_factory: pytest.TempPathFactory, serve_config: SeamlessConfig
) -> Iterator[TestClient]:
    """One app for the module (each start prepares the model: ~20 s on a busy 2-core box);
    the endpoints are set while it starts (it keeps its store and model after)."""
    root = built["workspace"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEAMLESS_WORKSPACE", str(root))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
        env.setenv("SEAMLESS_FEAST_REPO", str(root / "feast"))
        app = create_app(make_settings(tmp_path_factory.mktemp("oip")), serve_config)
        started = TestClient(app)
        started.__enter__()  # the lifespan: model loaded, store opened, logs open
    try:
        yield started
    finally:
        started.__exit__(None, None, None)


def encode(datatype: str, values: list[Any]) -> bytes:
    """Raw elements of one tensor, as the extension lays them out."""
    if datatype == "BYTES":
        chunks = [v.encode() if isinstance(v, str) else v for v in values]
        return b"".join(struct.pack("<I", len(c)) + c for c in chunks)
    return struct.pack(f"<{len(values)}{STRUCT[datatype]}", *values)


def binary_request(
    tensors: list[tuple[dict[str, Any], bytes | None]], **request: Any
) -> tuple[bytes, dict[str, str]]:
    """(body, headers): tensors with bytes go binary (`binary_data_size`), the others as
    they are (JSON `data`)."""
    inputs, raw = [], b""
    for meta, data in tensors:
        if data is None:
            inputs.append(meta)
        else:
            inputs.append({**meta, "parameters": {"binary_data_size": len(data)}})
            raw += data
    head = json.dumps({**request, "inputs": inputs}).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def binary_answer(response: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(JSON header, outputs decoded) of an answer with binary outputs."""
    assert response.headers["content-type"] == "application/octet-stream", response.headers
    n = int(response.headers["inference-header-content-length"])
    head, raw = json.loads(response.content[:n]), response.content[n:]
    values: dict[str, list[Any]] = {}
    offset = 0
    for out in head["outputs"]:
        if "data" in out:
            values[out["name"]] = out["data"]
            continue
        size = out["parameters"]["binary_data_size"]
        fmt = {"FP32": "f", "BOOL": "?"}[out["datatype"]]
        count = math.prod(out["shape"])
        assert size == count * struct.calcsize(fmt)
        values[out["name"]] = list(struct.unpack(f"<{count}{fmt}", raw[offset : offset + size]))
        offset += size
    assert offset == len(raw)
    return head, values


def entity_tensor(ids: list[int]) -> dict[str, Any]:
    return {"name": "customer_id", "shape": [len(ids)], "datatype": "INT64"}


def json_scores(client: TestClient, ids: list[int]) -> tuple[list[float], list[bool]]:
    tensor = {**entity_tensor(ids), "data": ids}
    r = client.post(INFER, json={"inputs": [tensor]})
    assert r.status_code == 200, r.text
    out = {o["name"]: o["data"] for o in r.json()["outputs"]}
    return out["score"], out["decision"]


def test_binary_entity_tensor_scores_as_json_does(client: TestClient, built: dict) -> None:
    ids = built["entities"][40:45]
    scores, decisions = json_scores(client, ids)

    body, headers = binary_request([(entity_tensor(ids), encode("INT64", ids))], id="b1")
    r = client.post(INFER, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"  # no binary output asked for
    out = {o["name"]: o["data"] for o in r.json()["outputs"]}
    assert r.json()["id"] == "b1"
    assert out == {"score": scores, "decision": decisions}

    # Binary outputs (what Triton's client asks for when it names no outputs).
    body, headers = binary_request(
        [(entity_tensor(ids), encode("INT64", ids))], parameters={"binary_data_output": True}
    )
    r = client.post(INFER, content=body, headers=headers)
    assert r.status_code == 200, r.text
    head, values = binary_answer(r)
    assert head["model_name"] == MODEL and [o["name"] for o in head["outputs"]] == [
        "score",
        "decision",
    ]
    assert values["score"] == pytest.approx(scores, rel=1e-6)  # FP32 on the wire
    assert values["decision"] == decisions

    # An output's own `binary_data` overrides the request's default; JSON requests may ask too.
    r = client.post(
        INFER,
        json={
            "inputs": [{**entity_tensor(ids), "data": ids}],
            "parameters": {"binary_data_output": True},
            "outputs": [
                {"name": "score", "parameters": {"binary_data": False}},
                {"name": "decision"},
            ],
        },
    )
    head, values = binary_answer(r)
    assert "data" in head["outputs"][0] and "parameters" in head["outputs"][1]
    assert values == {"score": scores, "decision": decisions}


def test_binary_feature_tensors_score_as_instances_do(
    client: TestClient, built: dict, serve_config: SeamlessConfig
) -> None:
    types = serve_config.feature_types()
    ints = [f for f, kind in types.items() if kind == "int"]
    # INT64 has no null: rows whose int features are all known (floats may be missing: NaN).
    rows = [r for r in _features(client, built["entities"][:200]) if None not in map(r.get, ints)]
    rows = rows[:6]
    rows[0]["annual_income"] = None  # a missing float: NaN in a binary FP64 tensor
    rows[1]["region"] = "Zürich"  # BYTES are UTF-8
    by_row = client.post("/v1/predict", json={"instances": rows})
    assert by_row.status_code == 200, by_row.text
    want = [p["score"] for p in by_row.json()["predictions"]]

    tensors: list[tuple[dict[str, Any], bytes | None]] = []
    for i, (name, kind) in enumerate(types.items()):
        datatype = DATATYPE[kind]
        values = [r[name] for r in rows]
        meta = {"name": name, "shape": [len(rows), 1], "datatype": datatype}
        if i == 0:  # inputs may mix: this one's elements are JSON `data`
            tensors.append(({**meta, "data": values}, None))
            continue
        if datatype == "FP64":
            values = [math.nan if v is None else v for v in values]
        tensors.append((meta, encode(datatype, values)))
    body, headers = binary_request(tensors, parameters={"binary_data_output": True})
    r = client.post(INFER, content=body, headers=headers)
    assert r.status_code == 200, r.text
    _, answer = binary_answer(r)
    assert answer["score"] == pytest.approx(want, rel=1e-6)


def _spec_errors() -> list[tuple[str, bytes, dict[str, str], str]]:
    ids = [100000, 100001]
    tensor = entity_tensor(ids)
    good = encode("INT64", ids)
    cases = []

    def add(name: str, body: bytes, headers: dict[str, str], words: str) -> None:
        cases.append((name, body, headers, words))

    body, headers = binary_request([(tensor, good)])
    add("header not a number", body, {"Inference-Header-Content-Length": "x"}, "byte length")
    add(
        "header past the body",
        body,
        {"Inference-Header-Content-Length": str(len(body) + 1)},
        "byte length",
    )
    add("missing bytes", body[:-3], headers, "runs past the end")
    add("extra bytes", body + b"\0", headers, "add up to 16")
    body, headers = binary_request([(tensor, good[:12])])
    add("size not a multiple", body, headers, "multiple of the element size (8 bytes)")
    body, headers = binary_request([({**tensor, "shape": [3]}, good)])
    add("shape against count", body, headers, "shape [3]")
    body, headers = binary_request([({**tensor, "datatype": "FP64"}, encode("FP64", [1.0, 2.0]))])
    add("entity datatype", body, headers, "must be INT64")
    # Headers without `data` and without binary_data_size: nothing to score.
    body = json.dumps({"inputs": [tensor]}).encode()
    add("no data", body, {"Inference-Header-Content-Length": str(len(body))}, "has no `data`")
    json_only = {"inputs": [{**tensor, "parameters": {"binary_data_size": 16}}]}
    add(
        "binary_data_size without the header",
        json.dumps(json_only).encode(),
        {"Content-Type": "application/json"},
        "no Inference-Header-Content-Length header",
    )
    both = {"inputs": [{**tensor, "data": ids, "parameters": {"binary_data_size": 16}}]}
    head = json.dumps(both).encode()
    add("data and binary", head + good, {"Inference-Header-Content-Length": str(len(head))}, "both")
    bad_size = {"inputs": [{**tensor, "parameters": {"binary_data_size": "16"}}]}
    head = json.dumps(bad_size).encode()
    header = {"Inference-Header-Content-Length": str(len(head))}
    add("size a string", head + good, header, "byte count")
    body, headers = binary_request([(tensor, good)], parameters={"binary_data_output": "yes"})
    add("binary_data_output not a bool", body, headers, "parameters.binary_data_output must be")

    # BYTES features: a truncated length prefix, an element past the end, not UTF-8.
    def one_bytes_feature(raw: bytes) -> tuple[bytes, dict[str, str]]:
        """Every feature as JSON `data` but `region`, whose binary element is `raw`."""
        tensors: list[tuple[dict[str, Any], bytes | None]] = []
        for name, datatype in FEATURE_DATATYPES.items():
            meta = {"name": name, "shape": [1], "datatype": datatype}
            tensors.append((meta, raw) if name == "region" else ({**meta, "data": [None]}, None))
        return binary_request(tensors)

    add("BYTES length cut", *one_bytes_feature(b"\x05\0"), "4-byte length of element 0")
    add("BYTES element cut", *one_bytes_feature(b"\x05\0\0\0ab"), "only 2 bytes are left")
    add("BYTES not UTF-8", *one_bytes_feature(b"\x02\0\0\0\xff\xfe"), "not UTF-8")
    return cases


SPEC_ERRORS = _spec_errors()


@pytest.mark.parametrize(
    ("body", "headers", "words"), [c[1:] for c in SPEC_ERRORS], ids=[c[0] for c in SPEC_ERRORS]
)
def test_binary_mistakes_are_400_naming_them(
    client: TestClient, body: bytes, headers: dict[str, str], words: str
) -> None:
    r = client.post(INFER, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"], r.json()


def test_versioned_paths_answer_for_the_served_version(client: TestClient, built: dict) -> None:
    meta = client.get(f"/v2/models/{MODEL}").json()
    served = meta["versions"][0]
    base = f"/v2/models/{MODEL}/versions/{served}"
    assert client.get(base).json() == meta
    assert client.get(f"{base}/ready").json() == {"name": MODEL, "version": served, "ready": True}
    ids = built["entities"][50:52]
    r = client.post(f"{base}/infer", json={"inputs": [{**entity_tensor(ids), "data": ids}]})
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == served
    assert [o["data"] for o in r.json()["outputs"]] == list(json_scores(client, ids))
    body, headers = binary_request([(entity_tensor(ids), encode("INT64", ids))])
    assert client.post(f"{base}/infer", content=body, headers=headers).status_code == 200

    other = f"/v2/models/{MODEL}/versions/{served}0"
    sentence = f"version '{served}0' is not served here; this server serves version '{served}'"
    for answer in (
        client.get(other),
        client.get(f"{other}/ready"),
        client.post(f"{other}/infer", json={"inputs": [{**entity_tensor(ids), "data": ids}]}),
        client.post(f"{other}/infer", content=body, headers=headers),
    ):
        assert answer.status_code == 404, answer.text
        assert sentence in answer.json()["error"]
    unknown = client.get(f"/v2/models/nope/versions/{served}")
    assert unknown.status_code == 404 and "Unknown model 'nope'" in unknown.json()["error"]


def test_server_metadata_advertises_the_extension_and_metrics_say_their_format(
    client: TestClient,
) -> None:
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    spec = client.get("/openapi.json").json()
    assert (
        "text/plain; version=0.0.4; charset=utf-8"
        in (spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"])
    )


BINARY_FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
DATATYPES = st.sampled_from(["INT64", "INT32", "FP64", "FP32", "FP16", "BOOL", "BYTES", "BF16"])
NAMES = st.sampled_from(["customer_id", "entity_id", "age", "region", "annual_income", "x"])


@BINARY_FUZZ
@given(
    tensors=st.lists(
        st.tuples(
            NAMES,
            st.lists(st.integers(-2, 6), max_size=2),
            DATATYPES,
            st.one_of(st.integers(-1, 40), st.none()),
        ),
        min_size=1,
        max_size=3,
    ),
    raw=st.binary(max_size=48),
    header_shift=st.integers(-3, 3),
    binary_output=st.booleans(),
)
def test_binary_bodies_never_5xx(
    client: TestClient,
    tensors: list[tuple[str, list[int], str, int | None]],
    raw: bytes,
    header_shift: int,
    binary_output: bool,
) -> None:
    inputs = [
        {"name": n, "shape": s, "datatype": d}
        | ({"parameters": {"binary_data_size": size}} if size is not None else {})
        for n, s, d, size in tensors
    ]
    head = json.dumps(
        {"inputs": inputs, "parameters": {"binary_data_output": binary_output}}
    ).encode()
    headers = {"Inference-Header-Content-Length": str(len(head) + header_shift)}
    r = client.post(INFER, content=head + raw, headers=headers)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert r.json()["error"], r.text
