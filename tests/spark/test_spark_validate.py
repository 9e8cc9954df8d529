"""Validate with `engine: spark` (Great Expectations' Spark datasource, built-in checks and
the profile as Spark aggregations) against the local engine on the same snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.tables import read_dataset, write_dataset
from components.validate.results import ValidationResult
from components.validate.stage import profile_path, run_validation
from tests.helpers.engines import engine_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def both(dataset: Path, out: Path) -> tuple[ValidationResult, ...]:
    return tuple(
        run_validation(engine_config(e), str(dataset), str(out / e / "report.html"))
        for e in ("local", "spark")
    )


def assert_same(local: ValidationResult, spark: ValidationResult) -> None:
    assert spark.decision == local.decision
    assert spark.table_rows == local.table_rows
    assert spark.builtin == local.builtin
    for a, b in zip(local.expectations, spark.expectations, strict=True):
        assert (b.success, b.element_count, b.unexpected_count, b.exception) == (
            a.success,
            a.element_count,
            a.unexpected_count,
            a.exception,
        ), a.type
        if isinstance(a.observed_value, float):
            assert b.observed_value == pytest.approx(a.observed_value, rel=1e-9)
        else:
            assert b.observed_value == a.observed_value, a.type
        assert sorted(map(str, b.unexpected_examples or [])) == sorted(
            map(str, a.unexpected_examples or [])
        )


def test_demo_suite_same_verdict_outcomes_and_profile(
    spark: Any, dataset: Path, tmp_path: Path
) -> None:
    local, remote = both(dataset, tmp_path)
    assert local.decision in ("pass", "warn")
    assert_same(local, remote)
    a = json.loads(profile_path(tmp_path / "local" / "report.html").read_text())
    b = json.loads(profile_path(tmp_path / "spark" / "report.html").read_text())
    assert_same_profile(a, b)
    assert "<html" in (tmp_path / "spark" / "report.html").read_text().lower()


def assert_same_profile(a: dict[str, Any], b: dict[str, Any]) -> None:
    for table, profiled in a["tables"].items():
        other = b["tables"][table]
        assert other["rows"] == profiled["rows"]
        for ca, cb in zip(profiled["columns"], other["columns"], strict=True):
            assert set(cb) == set(ca), (table, ca["name"])
            for key, value in ca.items():
                if key == "mean" and value is not None:
                    assert cb[key] == pytest.approx(value, rel=1e-9)
                elif key == "top":  # ties may list in another order
                    assert sorted(cb[key], key=str) == sorted(value, key=str)
                else:
                    assert cb[key] == value, (table, ca["name"], key)


def test_odd_columns_profile_the_same(spark: Any, tmp_path: Path) -> None:
    """Constant, infinite, all-missing, few- and many-valued columns: same profile."""
    from components.validate.profile import profile_tables
    from components.validate.spark_tables import SparkTables

    n = 300
    frame = pd.DataFrame(
        {
            "constant": [2.5] * n,
            "with_inf": [float("inf"), float("-inf"), float("nan")] + [i / 7 for i in range(n - 3)],
            "empty": pd.array([None] * n, dtype="Float64"),
            "few": pd.array([i % 4 if i % 9 else None for i in range(n)], dtype="Int64"),
            "many": pd.array([i * 1000 - 7 for i in range(n)], dtype="Int64"),
            "flag": pd.array([i % 3 == 0 if i % 5 else None for i in range(n)], dtype="boolean"),
            # Counts 1, 3, 5, ...: no tie at the top-10 cut, which each engine breaks its way.
            "text": [f"v{int(i**0.5)}" for i in range(n)],
            "when": pd.to_datetime(["2024-01-01T00:00:00.000123Z"] * n, utc=True),
            "ticks": pd.to_datetime(
                [1_700_000_000 + 3600 * i for i in range(n)], unit="s", utc=True
            ),
        }
    )
    write_dataset(tmp_path / "odd", {"odd": frame})
    local = profile_tables({"odd": read_dataset(tmp_path / "odd")["odd"]})
    from components.common.spark import spark_session

    tables = SparkTables.of_snapshot(
        spark_session(engine_config("spark")), tmp_path / "odd", ["odd"]
    )
    assert_same_profile(local, tables.profile(["odd"]))


def test_failing_data_fails_the_same_way(spark: Any, dataset: Path, tmp_path: Path) -> None:
    tables = read_dataset(dataset)
    profiles = tables["profiles"]
    profiles.loc[:9, "age"] = pd.array([150] * 10, dtype="Int64")  # outside 18..100
    profiles.loc[:4, "home_ownership"] = "CASTLE"
    labels = tables["labels"]
    labels["defaulted"] = labels["defaulted"].astype("Int64")
    labels.loc[:2, "defaulted"] = pd.array([7, 7, 7], dtype="Int64")  # not a class
    labels.loc[3:4, "customer_id"] = pd.array([None, None], dtype="Int64")  # empty key
    bad = tmp_path / "bad"
    write_dataset(bad, tables)
    local, remote = both(bad, tmp_path)
    assert local.decision == "fail"
    assert_same(local, remote)
    failed = {(o.type, o.column) for o in remote.builtin if not o.success}
    assert ("expect_column_values_to_not_be_null", "customer_id") in failed
    assert ("expect_column_values_to_be_in_set", "defaulted") in failed
