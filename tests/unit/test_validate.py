"""The validate stage's logic with Great Expectations really running (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.config import SeamlessConfig, parse_config
from components.common.errors import SeamlessError
from components.validate.validation import validate_tables

pytestmark = pytest.mark.unit

_BASE = """
name: demo
tables:
  people:
    source: {kind: file, uri: people.parquet}
    entity_column: id
    columns: {id: int, age: int, city: string}
  labels:
    source: {kind: file, uri: labels.parquet}
    entity_column: id
    columns: {id: int, y: int}
labels: {table: labels, label_column: y}
features:
  service: demo_v1
  views: [{name: people, table: people, features: [age, city]}]
model: {name: demo}
validation:
  expectations:
"""


def make_config(*expectations: str) -> SeamlessConfig:
    """A small config whose `validation.expectations` are the given YAML flow mappings."""
    body = "".join(f"    - {e}\n" for e in expectations) or "    []\n"
    return parse_config(_BASE + body, origin="test.yaml")


def good_tables() -> dict[str, pd.DataFrame]:
    return {
        "people": pd.DataFrame(
            {"id": [1, 2, 3, 4], "age": [25, 40, 61, 33], "city": ["Oslo", "Rome", "Oslo", "Lima"]}
        ),
        "labels": pd.DataFrame({"id": [1, 2, 3, 4], "y": [0, 1, 0, 0]}),
    }


AGE = "{table: people, type: expect_column_values_to_be_between, kwargs: {column: age, min_value: 18, max_value: 100}, severity: critical}"  # noqa: E501
CITY = "{table: people, type: expect_column_values_to_be_in_set, kwargs: {column: city, value_set: [Oslo, Rome, Lima]}, severity: warning}"  # noqa: E501
ROWS = "{table: labels, type: expect_table_row_count_to_be_between, kwargs: {min_value: 2}, severity: critical}"  # noqa: E501
MEAN = "{table: labels, type: expect_column_mean_to_be_between, kwargs: {column: y, min_value: 0.1, max_value: 0.5}, severity: warning}"  # noqa: E501


def test_passing_data_passes() -> None:
    result = validate_tables(make_config(AGE, CITY, ROWS, MEAN), good_tables(), builtin=False)
    assert result.decision == "pass"
    assert (result.evaluated, result.failed, result.success_percent) == (4, 0, 100.0)
    assert [e.index for e in result.expectations] == [0, 1, 2, 3]
    assert result.expectations[2].observed_value == 4  # row count
    assert result.expectations[3].observed_value == pytest.approx(0.25)
    assert result.table_rows == {"people": 4, "labels": 4}
    assert result.message() == "All 4 expectations passed."


def test_failed_warning_warns() -> None:
    tables = good_tables()
    tables["people"].loc[1, "city"] = "Atlantis"
    result = validate_tables(make_config(AGE, CITY), tables, builtin=False)
    assert result.decision == "warn"
    assert (result.failed, result.failed_critical, result.failed_warning) == (1, 0, 1)
    city = result.expectations[1]
    assert not city.success
    assert city.unexpected_count == 1
    assert city.unexpected_examples == ["Atlantis"]
    assert city.unexpected_percent == pytest.approx(25.0)
    assert result.success_percent == 50.0
    assert result.summary_metrics() == {
        "evaluated": 2.0,
        "builtin": 0.0,
        "failed": 1.0,
        "failed_critical": 0.0,
        "failed_warning": 1.0,
        "success_percent": 50.0,
    }


def test_failed_critical_fails_and_names_the_expectation() -> None:
    tables = good_tables()
    tables["people"].loc[0, "age"] = 7
    tables["people"].loc[2, "city"] = "Atlantis"
    result = validate_tables(make_config(CITY, AGE), tables, builtin=False)
    assert result.decision == "fail"
    assert (result.failed_critical, result.failed_warning) == (1, 1)
    assert [e.index for e in result.failures("critical")] == [1]
    msg = result.message()
    assert "validation.expectations[1] expect_column_values_to_be_between on people.age" in msg
    assert "7" in msg


def test_expectation_on_missing_column_fails_with_message() -> None:
    missing = "{table: people, type: expect_column_values_to_not_be_null, kwargs: {column: income}, severity: warning}"  # noqa: E501
    result = validate_tables(make_config(AGE, missing), good_tables(), builtin=False)
    assert result.expectations[0].success  # the others still ran
    outcome = result.expectations[1]
    assert not outcome.success
    assert outcome.exception is not None and "income" in outcome.exception
    assert "does not exist" in outcome.exception
    assert result.decision == "warn"
    assert "income" in result.message()


def test_unknown_expectation_type_is_a_config_error() -> None:
    bad = "{table: people, type: expect_column_values_to_be_betwen, kwargs: {column: age, min_value: 0}}"  # noqa: E501
    with pytest.raises(SeamlessError) as err:
        validate_tables(make_config(AGE, bad), good_tables(), builtin=False)
    text = str(err.value)
    assert "validation.expectations[1]" in text
    assert "expect_column_values_to_be_betwen" in text
    assert "did you mean 'expect_column_values_to_be_between'" in text


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ("{column: age, min_value: 0, bogus: 1}", "bogus"),
        ("{column: age}", "min_value and max_value cannot both be None"),
        ("{column: age, min_value: 0, mostly: 3}", "mostly"),
        ("{column: age, min_value: 0, meta: {a: 1}}", "set by Seamless"),
    ],
)
def test_bad_kwargs_are_a_config_error(kwargs: str, needle: str) -> None:
    bad = f"{{table: people, type: expect_column_values_to_be_between, kwargs: {kwargs}}}"
    with pytest.raises(SeamlessError) as err:
        validate_tables(make_config(bad), good_tables(), builtin=False)
    text = str(err.value)
    assert "validation.expectations[0]" in text
    assert "expect_column_values_to_be_between" in text
    assert needle in text


def test_table_missing_from_dataset_is_named() -> None:
    tables = good_tables()
    del tables["labels"]
    with pytest.raises(SeamlessError, match=r"validation.expectations\[1\].*'labels'"):
        validate_tables(make_config(AGE, ROWS), tables, builtin=False)


def test_duplicate_expectations_each_get_a_result() -> None:
    # GE's suite keeps one copy of equal expectations; both config entries still report.
    again = AGE.replace("critical", "warning")
    tables = good_tables()
    tables["people"].loc[3, "age"] = 150
    result = validate_tables(make_config(AGE, again), tables, builtin=False)
    assert [(e.index, e.severity, e.success) for e in result.expectations] == [
        (0, "critical", False),
        (1, "warning", False),
    ]
    assert result.expectations[1].unexpected_examples == [150]


def test_result_is_json_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tables = good_tables()
    tables["people"]["age"] = tables["people"]["age"].astype("float64")
    tables["people"].loc[0, "age"] = np.nan
    tables["people"].loc[1, "age"] = np.inf
    tables["people"]["when"] = pd.date_range("2024-01-01", periods=4)
    when = "{table: people, type: expect_column_max_to_be_between, kwargs: {column: when, min_value: 2023-01-01T00:00:00}, severity: warning}"  # noqa: E501
    result = validate_tables(make_config(AGE, MEAN, when), tables, builtin=False)
    data = result.to_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN/inf, no numpy types
    assert json.loads(text)["decision"] == data["decision"] == result.decision
    assert data["failed_critical"] == result.failed_critical == 1
    assert result.expectations[0].unexpected_examples == ["inf"]
    assert type(result.expectations[1].observed_value) is float
    assert result.expectations[2].observed_value == "2024-01-04T00:00:00"
    again = type(result).from_dict(json.loads(text))
    assert again == result
    # An in-memory context: nothing written where the stage runs.
    assert list(tmp_path.iterdir()) == []


def test_empty_suite_passes() -> None:
    result = validate_tables(make_config(), good_tables(), builtin=False)
    assert (result.decision, result.evaluated, result.success_percent) == ("pass", 0, 100.0)


def test_bundled_config_on_generated_data(config: SeamlessConfig) -> None:
    rng = np.random.default_rng(0)
    n = 2_000
    ids = np.arange(n)
    tables = {
        "profiles": pd.DataFrame(
            {
                "customer_id": ids,
                "age": rng.integers(18, 90, n),
                "annual_income": rng.gamma(2.0, 30_000.0, n),
                "home_ownership": rng.choice(["RENT", "OWN", "MORTGAGE", "OTHER"], n),
                "region": rng.choice(["N", "S", None], n, p=[0.5, 0.48, 0.02]),
            }
        ),
        "transactions": pd.DataFrame(
            {
                "customer_id": ids,
                "txn_count_30d": rng.poisson(20, n),
                "avg_balance_30d": rng.normal(size=n),
            }
        ),
        "credit_history": pd.DataFrame(
            {
                "customer_id": ids,
                "credit_score": rng.integers(300, 851, n),
                "credit_utilization": rng.uniform(0, 1.2, n),
                "delinquencies_12m": rng.poisson(0.5, n),
            }
        ),
        "labels": pd.DataFrame(
            {"customer_id": ids, "defaulted": (rng.random(n) < 0.1).astype(int)}
        ),
    }
    result = validate_tables(config, tables, builtin=False)
    assert result.evaluated == len(config.validation.expectations)
    assert result.decision == "pass", result.message()
