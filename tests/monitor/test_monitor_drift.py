"""The drift detector: injected shifts are flagged, same-distribution windows are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from components.common.errors import SeamlessError
from components.common.monitoring_config import MonitoringConfig
from components.common.reference_profile import build_profile
from components.monitor.drift import DRIFT, NOT_ENOUGH_DATA, OK, compare, psi
from tests.monitor.synthetic import CATEGORICAL, NUMERIC, rows

pytestmark = pytest.mark.unit

CFG = MonitoringConfig()


@pytest.fixture(scope="module")
def profile() -> dict:
    return build_profile(rows(40_000, seed=0), NUMERIC, CATEGORICAL)


def _status(result, feature: str) -> str:
    return next(f.status for f in result.features if f.feature == feature)


def test_profile_has_bins_sample_and_frequencies(profile: dict) -> None:
    income = profile["features"]["annual_income"]
    assert len(income["bin_edges"]) == 9 and len(income["bin_frequencies"]) == 10
    assert sum(income["bin_frequencies"]) == pytest.approx(1.0)
    assert len(income["sample"]) == 5_000
    assert income["min"] <= income["mean"] <= income["max"]
    # An integer feature with few values gets fewer, non-empty bins.
    delinquencies = profile["features"]["delinquencies_12m"]
    assert 1 <= len(delinquencies["bin_edges"]) < 9
    assert min(delinquencies["bin_frequencies"]) > 0
    region = profile["features"]["region"]
    assert region["kind"] == "categorical"
    assert region["missing_rate"] == pytest.approx(0.025, abs=0.005)
    assert set(region["frequencies"]) == {"north", "south", "east", "west", "central"}


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    ref = np.full(10, 0.1)
    assert psi(ref, np.full(10, 1000.0)) == pytest.approx(0.0, abs=1e-6)
    shifted = np.array([50, 50, 50, 50, 100, 100, 150, 150, 150, 150], dtype=float)
    assert psi(ref, shifted) > 0.1


@pytest.mark.parametrize(
    ("shift", "feature"),
    [
        ({"income_shift": 0.5}, "annual_income"),  # mean shift of half a standard deviation
        ({"score_scale": 1.6}, "credit_score"),  # variance change
        ({"home_p": [0.55, 0.11, 0.26, 0.08]}, "home_ownership"),  # category frequencies
        ({"balance_missing": 0.12}, "avg_balance_30d"),  # missing-value burst
    ],
    ids=["mean-shift", "variance", "category-mix", "missing-burst"],
)
def test_injected_shift_is_flagged_on_its_feature(profile: dict, shift: dict, feature: str) -> None:
    for seed in range(5):
        result = compare(profile, rows(1_000, seed=100 + seed, **shift), CFG)
        assert result.status == DRIFT, result.message
        assert result.by_status(DRIFT) == [feature], result.message


def test_out_of_range_values_are_flagged(profile: dict) -> None:
    window = rows(1_000, seed=5)
    window.loc[:99, "credit_utilization"] = 3.0  # 10% beyond anything seen in training
    result = compare(profile, window, CFG)
    util = next(f for f in result.features if f.feature == "credit_utilization")
    assert util.status == DRIFT and util.out_of_range_rate == pytest.approx(0.1)
    assert any("out of range" in r for r in util.reasons)


def test_configured_bounds_replace_training_range(profile: dict) -> None:
    window = rows(1_000, seed=6)
    cfg = MonitoringConfig.model_validate({"bounds": {"age": {"min": 18, "max": 60}}})
    result = compare(profile, window, cfg)
    age = next(f for f in result.features if f.feature == "age")
    assert age.out_of_range_rate > 0.05 and age.status == DRIFT


def test_unseen_categories_are_flagged(profile: dict) -> None:
    window = rows(1_000, seed=7)
    window.loc[:79, "region"] = "atlantis"
    result = compare(profile, window, CFG)
    assert _status(result, "region") == DRIFT
    assert any("unseen categories" in r for f in result.features for r in f.reasons)


def test_same_distribution_window_is_ok(profile: dict) -> None:
    result = compare(profile, rows(2_000, seed=42), CFG)
    assert result.status == OK, result.message
    assert result.tests == 26 and result.corrected_pvalue == pytest.approx(0.01 / 26)


def test_false_alarm_rate_over_200_seeds_is_under_target(profile: dict) -> None:
    """200 windows of 1,000 rows from the reference distribution: drift verdicts stay
    under `false_alarm_target` (5%) with margin; measured 0/200."""
    verdicts = [compare(profile, rows(1_000, seed=1_000 + s), CFG).status for s in range(200)]
    rate = verdicts.count(DRIFT) / len(verdicts)
    assert rate <= CFG.false_alarm_target / 2, f"false-alarm rate {rate:.1%}"
    assert verdicts.count("warn") / len(verdicts) <= 0.05


def test_tiny_window_is_not_enough_data(profile: dict) -> None:
    result = compare(profile, rows(50, seed=1), CFG)
    assert result.status == NOT_ENOUGH_DATA
    assert "50 served rows" in result.message and result.features == []
    empty = compare(profile, rows(1, seed=1).iloc[0:0], CFG)
    assert empty.status == NOT_ENOUGH_DATA


def test_missing_features_are_named(profile: dict) -> None:
    window = rows(500, seed=1).drop(columns=["region", "credit_score"])
    with pytest.raises(SeamlessError, match=r"lack features \['credit_score', 'region'\]"):
        compare(profile, window, CFG)


def test_all_missing_column_in_window_is_a_missing_burst(profile: dict) -> None:
    window = rows(500, seed=1)
    window["credit_score"] = np.nan
    result = compare(profile, window, CFG)
    assert _status(result, "credit_score") == DRIFT


def test_config_is_strict_and_documented() -> None:
    with pytest.raises(ValidationError, match="extra"):
        MonitoringConfig.model_validate({"psi_warn": 0.1, "psi_wran": 0.2})
    with pytest.raises(ValidationError):
        MonitoringConfig.model_validate({"min_rows": "200"})
    with pytest.raises(ValidationError, match="psi_drift"):
        MonitoringConfig.model_validate({"psi_warn": 0.3, "psi_drift": 0.2})
    source = MonitoringConfig.__module__
    assert source == "components.common.monitoring_config"
    import inspect

    text = inspect.getsource(MonitoringConfig)
    for name in MonitoringConfig.model_fields:
        after = text.split(f"    {name}:", 1)[1].splitlines()[1].strip()
        assert after.startswith('"""'), f"field {name} has no docstring"


def test_profile_of_categorical_bools_and_numbers_as_strings() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "flag": [True, False, None, True]})
    prof = build_profile(frame, ["x"], ["flag"])
    assert prof["features"]["flag"]["frequencies"] == pytest.approx({"True": 2 / 3, "False": 1 / 3})
    assert prof["features"]["x"]["missing_rate"] == 0.25
