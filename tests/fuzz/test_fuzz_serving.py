"""Fuzz the serving request parsers: random JSON to /v1/predict and the v2 infer route.

Whatever the body, the answer is never a 5xx: strict JSON, and also the NaN/Infinity
literals Python's json accepts and entity ids beyond int64.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.common.config import SeamlessConfig

pytestmark = [pytest.mark.unit, pytest.mark.slow, pytest.mark.serving]

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
KNOWN_IDS = st.integers(min_value=100_000, max_value=100_050)


def json_values(finite: bool, ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        ints,
        st.floats(allow_nan=not finite, allow_infinity=not finite),
        st.text(max_size=12),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=15,
    )


FEATURES = [
    "age", "annual_income", "employment_years", "home_ownership", "region", "txn_count_30d",
    "txn_amount_30d", "avg_balance_30d", "max_overdraft_30d", "credit_score", "open_accounts",
    "delinquencies_12m", "credit_utilization",
]  # fmt: skip


def predict_bodies(finite: bool, ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """Near-miss requests (right keys, odd values) mixed with arbitrary JSON."""
    value = json_values(finite, ints)
    ids = st.lists(st.one_of(KNOWN_IDS, ints, value), min_size=0, max_size=5)
    instance = st.dictionaries(st.sampled_from([*FEATURES, "extra"]), value, max_size=14)
    full_instance = st.fixed_dictionaries(
        {f: st.one_of(st.none(), st.integers(0, 10**6), st.floats(0, 1e6)) for f in FEATURES}
    )
    return st.one_of(
        value,
        st.fixed_dictionaries({"entity_ids": ids}),
        st.fixed_dictionaries({"entity_ids": st.lists(KNOWN_IDS, min_size=1, max_size=5)}),
        st.fixed_dictionaries({"instances": st.lists(instance, max_size=3)}),
        st.fixed_dictionaries({"instances": st.lists(full_instance, min_size=1, max_size=3)}),
        st.dictionaries(st.sampled_from(["entity_ids", "instances", "x"]), value, max_size=3),
    )


def infer_bodies(finite: bool, ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    value = json_values(finite, ints)
    tensor = st.fixed_dictionaries(
        {
            "name": st.one_of(st.sampled_from([*FEATURES, "customer_id", "entity_id"]), value),
            "shape": st.one_of(st.lists(st.integers(-3, 10**20), max_size=3), value),
            "datatype": st.one_of(
                st.sampled_from(["INT64", "FP32", "FP64", "BYTES", "BOOL", "UINT8"]), value
            ),
            "data": st.one_of(st.lists(st.one_of(KNOWN_IDS, value), max_size=5), value),
        },
        optional={"parameters": value},
    )
    return st.one_of(
        value,
        st.fixed_dictionaries(
            {"inputs": st.lists(tensor, max_size=3)},
            optional={
                "id": value,
                "outputs": st.lists(st.fixed_dictionaries({"name": value}), max_size=2),
            },
        ),
    )


def _post(client: TestClient, path: str, body: Any) -> None:
    raw = json.dumps(body)  # Python's json writes NaN/Infinity, as hostile clients may
    r = client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code < 500, f"{path} answered {r.status_code} to {raw[:300]}: {r.text[:300]}"


@FUZZ
@given(body=predict_bodies(finite=True, ints=INT64))
def test_predict_never_5xx(served_app_client: TestClient, body: Any) -> None:
    _post(served_app_client, "/v1/predict", body)


@FUZZ
@given(body=infer_bodies(finite=True, ints=INT64))
def test_v2_infer_never_5xx(
    served_app_client: TestClient, serve_config: SeamlessConfig, body: Any
) -> None:
    _post(served_app_client, f"/v2/models/{serve_config.model.name}/infer", body)


@FUZZ
@given(body=predict_bodies(finite=False, ints=INT64))
def test_predict_with_non_finite_numbers_never_5xx(
    served_app_client: TestClient, body: Any
) -> None:
    _post(served_app_client, "/v1/predict", body)


@FUZZ
@given(body=predict_bodies(finite=True, ints=st.integers(min_value=2**63, max_value=2**80)))
def test_predict_with_ids_beyond_int64_never_5xx(served_app_client: TestClient, body: Any) -> None:
    _post(served_app_client, "/v1/predict", body)
