"""Small synthetic frames shaped like the credit-risk feature service output."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
