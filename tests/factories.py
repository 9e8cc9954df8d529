"""Small synthetic frames shaped like the credit-risk feature service output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.common.config import SeamlessConfig


def training_set(n: int = 3000, seed: int = 0, signal: float = 1.0) -> pd.DataFrame:
    """A point-in-time training set: entity, label time, the service's features, label."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "event_timestamp": pd.Timestamp("2025-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s"),
            "age": rng.integers(18, 80, n),
            "annual_income": rng.lognormal(10.5, 0.5, n),
            "employment_years": rng.uniform(0, 30, n),
            "home_ownership": rng.choice(["RENT", "OWN", "MORTGAGE"], n),
            "region": rng.choice(["north", "south", None], n),
            "txn_count_30d": rng.integers(0, 100, n),
            "txn_amount_30d": rng.uniform(0, 5000, n),
            "avg_balance_30d": rng.normal(2000, 800, n),
            "max_overdraft_30d": rng.uniform(0, 500, n),
            "credit_score": rng.integers(300, 850, n),
            "open_accounts": rng.integers(0, 10, n),
            "delinquencies_12m": rng.poisson(0.3, n),
            "credit_utilization": rng.uniform(0, 1.2, n),
        }
    )
    z = -2.2 + signal * (
        2 * (df.credit_utilization - 0.6)
        - (df.credit_score - 575) / 120
        + 0.5 * df.delinquencies_12m
        + 0.4 * (df.home_ownership == "RENT")
    )
    df["defaulted"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)
    return df


def quick_model(config: SeamlessConfig) -> SeamlessConfig:
    """`config` with a model that trains in seconds: logistic regression, default
    parameters, one search candidate, 2-fold cross-validation."""
    search = config.model.search.model_copy(update={"n_iter": 1, "cv": 2, "space": {}})
    model = config.model.model_copy(
        update={"search": search, "params": {}, "estimator": "logistic_regression"}
    )
    return config.model_copy(update={"model": model})


def train_and_register_once(
    store: Path, config: SeamlessConfig, data_sha256: str
) -> dict[str, Any]:
    """Train on 3,000 synthetic rows and register the model as promoted, in the MLflow
    store of workspace `store` (module fixtures share it: ~10 s saved per test)."""
    from components.register.registry import register
    from components.train.run import train_and_log

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEAMLESS_WORKSPACE", str(store))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        result, _ = train_and_log(
            config,
            training_set(3_000, seed=1),
            data_sha256=data_sha256,
            feature_service="credit_risk_v1",
            pipeline_run_id="t",
            source_uri="file:///tmp/ts",
        )
        reg = register(
            config.model.name,
            result.model_uri,
            "promote",
            {"seamless.train_run_id": result.run_id, "holdout.roc_auc": "0.80"},
        )
    return {
        "config": config,
        "version": reg.version,
        "run_id": result.run_id,
        "model_uri": result.model_uri,
    }
