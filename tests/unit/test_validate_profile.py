"""The per-column profile of the validation report: plain JSON, right numbers, every dtype."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.validate.profile import HISTOGRAM_BINS, TOP_VALUES, profile_table, profile_tables

pytestmark = pytest.mark.unit


def _columns(df: pd.DataFrame) -> dict[str, dict]:
    profile = profile_tables({"t": df})
    # Strict JSON: storable as the report's .profile.json and readable without pandas.
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile
    assert profile["version"] == 1
    assert profile["tables"]["t"]["rows"] == len(df)
    return {c["name"]: c for c in profile["tables"]["t"]["columns"]}


@pytest.fixture(scope="module")
def mixed() -> dict[str, dict]:
    # The dtypes ingest produces (normalize.py), plus what undeclared columns may bring.
    df = pd.DataFrame(
        {
            "age": pd.array([30, 41, None, 41, 18, 90], dtype="Int64"),
            "income": [1.5, np.nan, np.inf, -2.0, 3.0, 3.0],
            "city": ["Oslo", None, "Rome", "Oslo", "<b>Lima</b>", "Oslo"],
            "active": pd.array([True, False, None, True, True, None], dtype="boolean"),
            "seen": pd.to_datetime(
                ["2025-01-01", None, "2025-03-01T12:00", "2025-02-01", "2025-01-01", None],
                utc=True,
                format="ISO8601",
            ),
            "grade": pd.Categorical(["a", "b", None, "a", "a", "a"], categories=["a", "b", "z"]),
            "empty": [None] * 6,
            "wait": pd.to_timedelta([1, 2, 3, None, 5, 5], unit="s"),
            "payload": [[1], [2], None, [1], {"k": 1}, [1]],
            "id": np.arange(6, dtype=np.int64) * 10**17,
        }
    )
    return _columns(df)


def test_integers_with_nulls(mixed: dict[str, dict]) -> None:
    age = mixed["age"]
    assert (age["kind"], age["dtype"]) == ("integer", "Int64")
    assert (age["nulls"], age["null_percent"], age["distinct"]) == (1, pytest.approx(16.667), 4)
    assert (age["min"], age["max"], age["mean"]) == (18, 90, pytest.approx(44.0))
    hist = age["histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert sum(hist["counts"]) == 5
    # 73 possible values: too many for one bin per integer.
    assert "discrete" not in hist and len(hist["counts"]) == 20


def test_small_integer_range_gets_one_bin_per_value() -> None:
    label = _columns(pd.DataFrame({"y": [0, 1, 0, 0, 1, 3]}))["y"]
    assert label["histogram"] == {
        "edges": [0, 1, 2, 3, 4],
        "counts": [3, 2, 0, 1],
        "discrete": True,
    }


def test_floats_count_infinities_apart(mixed: dict[str, dict]) -> None:
    income = mixed["income"]
    assert income["kind"] == "float"
    assert (income["nulls"], income["infinite"], income["distinct"]) == (1, 1, 4)
    assert (income["min"], income["max"]) == (-2.0, 3.0)
    assert sum(income["histogram"]["counts"]) == 4


def test_strings_have_top_values_in_count_order(mixed: dict[str, dict]) -> None:
    city = mixed["city"]
    assert (city["kind"], city["nulls"], city["distinct"]) == ("string", 1, 3)
    assert city["top"] == [
        {"value": "Oslo", "count": 3},
        {"value": "Rome", "count": 1},
        {"value": "<b>Lima</b>", "count": 1},
    ]
    assert city["other_count"] == 0
    assert "histogram" not in city and "min" not in city


def test_booleans_and_categoricals(mixed: dict[str, dict]) -> None:
    active = mixed["active"]
    assert active["kind"] == "bool"
    assert active["top"] == [{"value": True, "count": 3}, {"value": False, "count": 1}]
    grade = mixed["grade"]
    assert grade["distinct"] == 2  # the unused category "z" is not counted
    assert grade["top"] == [{"value": "a", "count": 4}, {"value": "b", "count": 1}]


def test_timestamps_as_iso_strings(mixed: dict[str, dict]) -> None:
    seen = mixed["seen"]
    assert (seen["kind"], seen["nulls"], seen["distinct"]) == ("timestamp", 2, 3)
    assert seen["min"] == "2025-01-01T00:00:00+00:00"
    assert seen["max"] == "2025-03-01T12:00:00+00:00"
    assert seen["histogram"]["edges"][0] == seen["min"]
    assert seen["histogram"]["edges"][-1] == seen["max"]
    assert sum(seen["histogram"]["counts"]) == 4


def test_odd_columns_never_fail(mixed: dict[str, dict]) -> None:
    assert mixed["empty"]["null_percent"] == 100.0
    assert (mixed["empty"]["distinct"], mixed["empty"]["top"]) == (0, [])
    assert (mixed["wait"]["kind"], mixed["wait"]["distinct"]) == ("other", 4)
    payload = mixed["payload"]  # unhashable values are counted by their text
    assert payload["top"][0] == {"value": "[1]", "count": 3}
    assert mixed["id"]["max"] == 5 * 10**17  # exact, not a float


def test_high_cardinality_keeps_the_most_frequent() -> None:
    values = [f"v{i}" for i in range(1000)] + ["hot"] * 5 + ["warm"] * 3
    col = _columns(pd.DataFrame({"s": values}))["s"]
    assert col["distinct"] == 1002
    assert len(col["top"]) == TOP_VALUES
    assert col["top"][:3] == [
        {"value": "hot", "count": 5},
        {"value": "warm", "count": 3},
        {"value": "v0", "count": 1},  # ties in order of first appearance
    ]
    assert col["other_count"] == len(values) - 5 - 3 - (TOP_VALUES - 2)


def test_empty_table_and_duplicate_column_names() -> None:
    df = pd.DataFrame([[1, "a"]], columns=["x", "x"]).iloc[:0]
    profile = profile_tables({"t": df})
    cols = profile["tables"]["t"]["columns"]
    assert [c["name"] for c in cols] == ["x", "x"]
    assert cols[0]["min"] is None and cols[0]["histogram"] is None
    assert cols[1]["top"] == [] and cols[1]["null_percent"] == 0.0


def test_a_single_instant_gets_a_histogram_not_an_error() -> None:
    """np.histogram cannot widen the range of one of today's nanosecond counts by a
    half; the profile puts every row in the middle bin, as for a constant number."""
    when = pd.to_datetime(["2024-01-01T00:00:00.000123Z"] * 7, utc=True)
    [col] = profile_table(pd.DataFrame({"when": when}))["columns"]
    assert "error" not in col
    assert col["min"] == col["max"] == "2024-01-01T00:00:00.000123+00:00"
    assert col["histogram"]["counts"][HISTOGRAM_BINS // 2] == 7
    assert set(col["histogram"]["edges"]) == {col["min"]}
