"""Feature rows shaped like the credit-risk service, with knobs to inject shifts."""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = [
    "age",
    "annual_income",
    "employment_years",
    "txn_count_30d",
    "txn_amount_30d",
    "avg_balance_30d",
    "max_overdraft_30d",
    "credit_score",
    "open_accounts",
    "delinquencies_12m",
    "credit_utilization",
]
CATEGORICAL = ["home_ownership", "region"]
HOME = ["RENT", "OWN", "MORTGAGE", "OTHER"]
HOME_P = [0.38, 0.17, 0.40, 0.05]
REGIONS = ["north", "south", "east", "west", "central"]


def rows(
    n: int,
    seed: int,
    *,
    income_shift: float = 0.0,
    score_scale: float = 1.0,
    home_p: list[float] | None = None,
    balance_missing: float = 0.03,
) -> pd.DataFrame:
    """`n` rows; the defaults are the reference distribution.

    income_shift: shift of log income in standard deviations (a mean shift);
    score_scale: factor on the credit score's spread (a variance change);
    home_p: home-ownership mix (a category frequency change);
    balance_missing: missing rate of the balance (a missing-value burst).
    """
    rng = np.random.default_rng(seed)
    age = np.clip(np.rint(rng.normal(42, 13, n)), 18, 90)
    balance = np.round(rng.lognormal(8, 0.6, n), 2)
    balance[rng.random(n) < balance_missing] = np.nan
    region = rng.choice(np.array(REGIONS, dtype=object), n, p=[0.22, 0.22, 0.2, 0.2, 0.16])
    region[rng.random(n) < 0.025] = None
    overdraft = np.where(rng.random(n) < 0.2, np.round(rng.lognormal(5.7, 0.8, n), 2), 0.0)
    return pd.DataFrame(
        {
            "age": age,
            "annual_income": np.round(
                np.exp(np.log(52_000) + 0.45 * (rng.normal(0, 1, n) + income_shift)), -2
            ),
            "employment_years": np.round(rng.gamma(2.0, 3.5, n), 1),
            "home_ownership": rng.choice(np.array(HOME, dtype=object), n, p=home_p or HOME_P),
            "region": region,
            "txn_count_30d": rng.poisson(25, n).astype(float),
            "txn_amount_30d": np.round(rng.lognormal(7.3, 0.4, n), 2),
            "avg_balance_30d": balance,
            "max_overdraft_30d": overdraft,
            "credit_score": np.clip(np.rint(700 + score_scale * rng.normal(0, 60, n)), 300, 850),
            "open_accounts": rng.poisson(4.8, n).astype(float),
            "delinquencies_12m": rng.poisson(0.25, n).astype(float),
            "credit_utilization": np.round(np.clip(rng.normal(0.3, 0.16, n), 0, 1.5), 4),
        }
    )
