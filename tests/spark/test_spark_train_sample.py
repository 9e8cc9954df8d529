"""The training rows scikit-learn gets under `engine: spark`: capped by a seeded, stable sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.common.tables import TRAINING_TABLE, write_dataset
from components.train.sample import training_rows

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _config(engine: str, cap: int | None, seed: int = 42) -> SeamlessConfig:
    base = load_config(default_config_path())
    return base.model_copy(
        update={
            "engine": engine,
            "spark": base.spark.model_copy(update={"max_training_rows": cap}),
            "model": base.model.model_copy(update={"seed": seed}),
        }
    )


@pytest.fixture(scope="module")
def training_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n = 5000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype="int64") % 1700,
            "event_timestamp": pd.date_range("2025-01-01", periods=n, freq="17min", tz="UTC"),
            "age": rng.integers(18, 90, n),
            "annual_income": rng.normal(5e4, 1e4, n),
            "region": rng.choice(["north", "south", None], n),
            "defaulted": pd.array(rng.integers(0, 2, n), dtype="Int64"),
        }
    )
    folder = tmp_path_factory.mktemp("sample") / "training"
    write_dataset(folder, {TRAINING_TABLE: frame})
    return folder


def test_past_the_cap_a_stable_seeded_sample_in_order(spark: Any, training_set: Path) -> None:
    full, info = training_rows(_config("local", 1000), training_set, TRAINING_TABLE)
    assert len(full) == 5000 and info == {"rows_available": 5000, "sampled": False}

    first, info = training_rows(_config("spark", 1000), training_set, TRAINING_TABLE)
    again, _ = training_rows(_config("spark", 1000), training_set, TRAINING_TABLE)
    other, _ = training_rows(_config("spark", 1000, seed=7), training_set, TRAINING_TABLE)
    assert info["sampled"] and info["rows"] == 1000 and info["rows_available"] == 5000
    assert info["seed"] == 42 and "xxhash64" in info["method"]
    assert len(first) == 1000
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    # The rows are rows of the training set, unchanged, in its order, with its dtypes.
    keyed = full.set_index(["customer_id", "event_timestamp"])
    picked = first.set_index(["customer_id", "event_timestamp"])
    pd.testing.assert_frame_equal(keyed.loc[picked.index], picked)
    assert first["event_timestamp"].is_monotonic_increasing
    assert first.dtypes.equals(full.dtypes)


def test_under_the_cap_or_uncapped_all_rows(spark: Any, training_set: Path) -> None:
    for cap in (5000, None):
        rows, info = training_rows(_config("spark", cap), training_set, TRAINING_TABLE)
        assert len(rows) == 5000 and not info["sampled"]
