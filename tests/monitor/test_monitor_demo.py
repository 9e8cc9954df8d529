"""End to end on the demo data: the drifted period is flagged, another normal one is not."""

from __future__ import annotations

import pandas as pd
import pytest

from components.common.config import SeamlessConfig
from components.common.model_input import model_input
from components.common.monitoring_config import MonitoringConfig
from components.common.reference_profile import profile_for_training
from components.monitor.drift import DRIFT, compare
from pipelines.demo_data import generate_frames

pytestmark = pytest.mark.unit

CFG = MonitoringConfig()
FEATURE_TABLES = ("profiles", "transactions", "credit_history")


def as_of_label_times(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each label row with the latest feature values at its time (what Feast would join)."""
    out = frames["labels"].sort_values("event_timestamp")
    for table in FEATURE_TABLES:
        right = frames[table].sort_values("event_timestamp")
        out = pd.merge_asof(out, right, on="event_timestamp", by="customer_id")
    return out


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest) -> dict:
    from components.common.config import load_config

    config: SeamlessConfig = load_config(
        request.config.rootpath / "pipelines/configs/credit_risk.yaml"
    )
    rows = as_of_label_times(generate_frames(n_rows=20_000, seed=3))
    return {"config": config, "profile": profile_for_training(config, model_input(config, rows))}


def _windows(reference: dict, seed: int, drift: bool, n: int, size: int) -> list[pd.DataFrame]:
    config = reference["config"]
    traffic = model_input(config, as_of_label_times(generate_frames(8_000, seed=seed, drift=drift)))
    return [traffic.sample(size, random_state=i) for i in range(n)]


def test_drifted_period_is_flagged(reference: dict) -> None:
    for window in _windows(reference, seed=3, drift=True, n=5, size=1_000):
        result = compare(reference["profile"], window, CFG)
        assert result.status == DRIFT, result.message
        # The generator's documented shifts: income, utilization, missing balance/region.
        assert {"annual_income", "credit_utilization", "avg_balance_30d", "region"} <= set(
            result.by_status(DRIFT)
        ), result.message


def test_other_seeds_of_normal_data_are_not_flagged(reference: dict) -> None:
    """5 seeds x 40 windows of 1,000 rows; measured 0 drift verdicts (a few `warn`:
    the demo's customers recur ~4 times in the labels, so per-customer attributes such
    as home ownership vary more between seeds than an i.i.d. test expects)."""
    verdicts = [
        compare(reference["profile"], w, CFG).status
        for seed in (11, 12, 13, 14, 15)
        for w in _windows(reference, seed=seed, drift=False, n=40, size=1_000)
    ]
    assert verdicts.count(DRIFT) / len(verdicts) <= CFG.false_alarm_target / 2
