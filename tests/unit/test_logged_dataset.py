"""The training set's MLflow record: the same schema MLflow infers value by value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.unit


def test_schema_equals_mlflows_own_inference_with_nulls_past_the_sample() -> None:
    import mlflow.data

    from components.train.logged_dataset import TYPE_SAMPLE_ROWS, training_set_record

    n = TYPE_SAMPLE_ROWS + 500
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype="int64"),
            "ts": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
            "income": rng.normal(50, 10, n),
            "region": rng.choice(["north", "south"], n).astype(object),
            "defaulted": rng.integers(0, 2, n),
        }
    )
    # Nulls only beyond the rows the types are read from: still not `required`.
    df.loc[n - 1, "income"] = np.nan
    df.loc[n - 2, "region"] = None
    ours = training_set_record(df, "/tmp/training", "t", "defaulted", "abc")
    theirs = mlflow.data.from_pandas(df, source="/tmp/training", name="t", targets="defaulted")
    assert ours.schema == theirs.schema
    assert {c.name: c.required for c in ours.schema.inputs} == {
        "customer_id": True,
        "ts": True,
        "income": False,
        "region": False,
        "defaulted": True,
    }
    assert ours.to_dict()["schema"] == theirs.to_dict()["schema"]
    assert ours.profile == theirs.profile and ours.source.to_dict() == theirs.source.to_dict()
