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
    for table, profiled in a["tables"].items():
        other = b["tables"][table]
        assert other["rows"] == profiled["rows"]
        for ca, cb in zip(profiled["columns"], other["columns"], strict=True):
            for key, value in ca.items():
                if key == "mean":
                    assert cb[key] == pytest.approx(value, rel=1e-9)
                elif key == "top":  # ties may list in another order
                    assert sorted(cb[key], key=str) == sorted(value, key=str)
                else:
                    assert cb[key] == value, (table, ca["name"], key)
    assert "<html" in (tmp_path / "spark" / "report.html").read_text().lower()


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
