"""Synthetic credit-risk demo data: the four tables of `pipelines/configs/credit_risk.yaml`.

The generator simulates customers month by month and writes:

- `profiles`: one row per customer at signup (or at the period start for a customer
  carried over from the previous period), plus a later row for ~12% who change income/job;
- `transactions` and `credit_history`: one monthly snapshot per customer;
- `labels`: loan applications at random times with `defaulted` 0/1.

A label is drawn from the feature values *as of* its application time (the latest
snapshot of each table at or before it), and a default leaves a mark on the customer's
credit history from a month later on. So a point-in-time-correct join gives a real but
imperfect signal, and a join that looks into the future scores suspiciously well.

Everything is drawn from `numpy.random.default_rng` streams derived from `seed`, never
from the clock, so the same arguments give identical frames. See docs/demo-data.md.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.errors import SeamlessError

TABLES = ("profiles", "transactions", "credit_history", "labels")
HOME_OWNERSHIP = ("RENT", "OWN", "MORTGAGE", "OTHER")
REGIONS = ("north", "south", "east", "west", "central")
FIRST_CUSTOMER_ID = 100_000
LABELS_PER_CUSTOMER = 4
"""Loan applications per customer on average: n_rows / 4 customers."""

_DAY = 86_400
_YEAR = 365.25 * _DAY
_NEVER = np.iinfo(np.int64).max // 4
"""Time of a snapshot that does not exist (a customer who joined late); beyond any query."""
_REPORT_LAG = 10 * _DAY
"""Delay after which a default shows in the credit history (as delinquency, lower score)."""
_INTERCEPT = -2.7
"""Fixed (not fitted per run); the drifted period changes the concept only through its
`_Period` weights (utilization, region), on top of moving the features."""
_UNSEEN = 0.5
"""Spread of the log-odds from life events the data never shows (caps the reachable AUC)."""


@dataclass(frozen=True)
class _Period:
    """How one period's population looks; the drifted period shifts these."""

    home_probs: tuple[float, ...]
    region_probs: tuple[float, ...]
    income_factor: float
    utilization_shift: float
    score_shift: float
    region_missing: float
    balance_missing: float
    balance_burst_months: tuple[int, ...]
    balance_burst_missing: float
    # Concept: how utilization and region turn into risk (changes in a downturn).
    util_weight: float = 1.5
    region_effect: tuple[float, ...] = (0.0, 0.08, -0.04, 0.0, 0.06)


_NORMAL = _Period(
    home_probs=(0.38, 0.17, 0.40, 0.05),
    region_probs=(0.22, 0.22, 0.20, 0.20, 0.16),
    income_factor=1.0,
    utilization_shift=0.0,
    score_shift=0.0,
    region_missing=0.025,
    balance_missing=0.03,
    balance_burst_months=(),
    balance_burst_missing=0.0,
)
_DRIFTED = _Period(
    home_probs=(0.55, 0.11, 0.26, 0.08),
    region_probs=(0.14, 0.36, 0.16, 0.14, 0.20),
    income_factor=0.85,
    utilization_shift=0.10,
    score_shift=-15.0,
    region_missing=0.10,
    balance_missing=0.03,
    # A feed outage: a quarter of the balances go missing for three months.
    balance_burst_months=(3, 4, 5),
    balance_burst_missing=0.25,
    # Concept drift: a regional shock in the south and utilization weighing twice as
    # much, so a model trained on the normal period ranks this period worse and a
    # retrained one can win the champion/challenger gate.
    util_weight=3.0,
    region_effect=(0.0, 1.0, -0.04, 0.0, 0.06),
)


@dataclass
class _Customers:
    """Per-customer attributes at the start of a period (arrays of equal length)."""

    ids: np.ndarray
    age: np.ndarray
    income: np.ndarray
    employment: np.ndarray
    home: np.ndarray
    region: np.ndarray
    risk: np.ndarray
    """Unobserved creditworthiness: drives the snapshots, never the label directly."""

    def take(self, idx: np.ndarray) -> _Customers:
        return _Customers(**{k: v[idx] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(a: _Customers, b: _Customers) -> _Customers:
        return _Customers(**{k: np.concatenate([v, b.__dict__[k]]) for k, v in a.__dict__.items()})


def _utc(start: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(start)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _new_customers(rng: np.random.Generator, ids: np.ndarray, p: _Period) -> _Customers:
    n = len(ids)
    age = np.clip(np.rint(rng.normal(42, 13, n)), 18, 90).astype(np.int64)
    risk = rng.normal(0, 1, n)
    # Income grows with age up to mid-career and falls slightly with hidden risk.
    log_inc = (
        np.log(52_000) + 0.012 * (np.minimum(age, 55) - 40) - 0.12 * risk + rng.normal(0, 0.45, n)
    )
    income = np.exp(log_inc) * p.income_factor
    employment = np.minimum(rng.gamma(2.0, 3.5, n), np.maximum(age - 18, 0)).astype(float)
    home = rng.choice(len(HOME_OWNERSHIP), n, p=p.home_probs)
    # The young mostly rent: move some mortgage/own holders under 28 to RENT.
    young = (age < 28) & (home != 0) & (rng.random(n) < 0.6)
    home[young] = 0
    region = rng.choice(len(REGIONS), n, p=p.region_probs)
    return _Customers(ids, age, income, employment, home, region, risk)


def _ar1(rng: np.random.Generator, n: int, months: int, phi: float = 0.75) -> np.ndarray:
    """Month-to-month risk shocks: persistent, so recent snapshots predict better than old."""
    w = np.empty((n, months))
    w[:, 0] = rng.normal(0, 1, n)
    scale = np.sqrt(1 - phi**2)
    for k in range(1, months):
        w[:, k] = phi * w[:, k - 1] + scale * rng.normal(0, 1, n)
    return w


def _risk_logit(
    score: np.ndarray,
    util: np.ndarray,
    delinq: np.ndarray,
    overdraft: np.ndarray,
    balance: np.ndarray,
    txn_count: np.ndarray,
    income: np.ndarray,
    employment: np.ndarray,
    age: np.ndarray,
    home: np.ndarray,
    region: np.ndarray,
    period: _Period = _NORMAL,
) -> np.ndarray:
    """Log-odds of default from the observable as-of values (the ground-truth concept)."""
    return (
        _INTERCEPT
        - 0.011 * (score - 690)
        + period.util_weight * (util - 0.30)
        + 0.6 * (util > 0.85)  # maxed-out credit lines: a threshold a tree can find
        + 0.25 * np.minimum(delinq, 4)
        + 0.18 * np.log1p(overdraft / 50)
        - 0.14 * np.log1p(balance / 1_000)
        - 0.007 * (txn_count - 25)
        - 0.32 * np.log(income / 50_000)
        - 0.025 * np.minimum(employment, 20)
        + 0.02 * np.maximum(30 - age, 0)
        + 0.015 * np.maximum(age - 65, 0)
        + np.array([0.20, -0.14, 0.0, 0.10])[home]
        + np.array(period.region_effect)[region]
    )


def _simulate_period(
    rng: np.random.Generator,
    cust: _Customers,
    signup: np.ndarray,
    n_rows: int,
    t0: pd.Timestamp,
    months: int,
    p: _Period,
) -> dict[str, pd.DataFrame]:
    """Snapshots and labels for one period; `signup` is seconds after `t0` per customer."""
    n = len(cust.ids)
    period_s = int((t0 + pd.DateOffset(months=months) - t0).total_seconds())
    step = period_s / months
    k = np.arange(months)

    # --- profiles: a row at signup, and an update for some customers later on ---------
    upd_has = rng.random(n) < 0.12
    upd_lo = signup + 2 * step
    upd_has &= upd_lo < period_s - 10 * _DAY
    upd_time = np.where(
        upd_has, (upd_lo + rng.random(n) * (period_s - 10 * _DAY - upd_lo)).astype(np.int64), _NEVER
    )
    job_change = rng.random(n) < 0.4
    income_new = cust.income * np.where(
        job_change, rng.lognormal(-0.05, 0.25, n), rng.lognormal(0.05, 0.10, n)
    )
    emp_new = np.where(
        job_change,
        rng.uniform(0, 1.5, n),
        cust.employment + np.maximum(upd_time - signup, 0) / _YEAR,
    )
    income0 = np.round(cust.income, -2).clip(min=1_000)
    income1 = np.round(income_new, -2).clip(min=1_000)
    emp0 = np.round(cust.employment, 1)
    emp1 = np.round(np.minimum(emp_new, np.maximum(cust.age - 18, 0)), 1)

    # --- monthly snapshot times: transactions land 0.5-2 days, credit 2-8 days after ---
    base = signup[:, None] + k[None, :] * step
    t_txn = (base + rng.uniform(0.5, 2.0, (n, months)) * _DAY).astype(np.int64)
    t_cred = (base + rng.uniform(2.0, 8.0, (n, months)) * _DAY).astype(np.int64)
    valid = t_cred < period_s  # late joiners have fewer snapshots
    t_txn = np.where(valid, t_txn, _NEVER)
    t_cred = np.where(valid, t_cred, _NEVER)

    w = _ar1(rng, n, months)
    z = cust.risk[:, None]
    inc = cust.income[:, None]
    score = np.clip(
        np.rint(700 - 50 * z - 30 * w + rng.normal(0, 15, (n, months)) + p.score_shift), 300, 850
    )
    util = np.clip(
        0.30 + 0.12 * z + 0.10 * w + rng.normal(0, 0.06, (n, months)) + p.utilization_shift, 0, 1.5
    )
    lam_acc = 2.0 + cust.age[:, None] / 15.0
    accounts = rng.poisson(np.broadcast_to(lam_acc, (n, months))).astype(float)
    delinq = rng.poisson(np.exp(-1.6 + 0.5 * z + 0.4 * w)).astype(float)

    rel_inc = inc / 52_000
    txn_count = rng.poisson(25 * rel_inc**0.3 * np.exp(rng.normal(0, 0.15, (n, months))))
    ticket = 60 * rel_inc**0.5 * rng.lognormal(0, 0.3, (n, months))
    txn_amount = np.round(txn_count * ticket, 2)
    balance = np.round(
        inc / 12 * 0.8 * np.exp(-0.35 * z - 0.30 * w + rng.normal(0, 0.4, (n, months))), 2
    )
    od_happens = rng.random((n, months)) < _sigmoid(-2.2 + 0.9 * z + 0.8 * w)
    overdraft = np.where(od_happens, np.round(rng.lognormal(np.log(300), 0.8, (n, months)), 2), 0.0)

    # --- labels: applications after the first snapshots, labelled from as-of values ----
    who = rng.integers(0, n, n_rows)
    earliest = signup[who] + 9 * _DAY
    t_app = (earliest + rng.random(n_rows) * (period_s - earliest)).astype(np.int64)
    t_app = _dedupe(who, t_app)
    defaulted = np.zeros(n_rows, dtype=np.int64)
    # A default reaches the bureau data `_REPORT_LAG` later. Applications are labelled in
    # time buckets of that length, so a default only touches snapshots that no application
    # of its own or an earlier bucket has been labelled from.
    bucket = t_app // _REPORT_LAG
    for b in range(int(bucket.max()) + 1):
        rows = np.flatnonzero(bucket == b)
        if rows.size == 0:
            continue
        c, t = who[rows], t_app[rows]
        i_txn = (t_txn[c] <= t[:, None]).sum(1) - 1
        i_cred = (t_cred[c] <= t[:, None]).sum(1) - 1
        updated = t >= upd_time[c]
        logit = _risk_logit(
            score[c, i_cred],
            util[c, i_cred],
            delinq[c, i_cred],
            overdraft[c, i_txn],
            balance[c, i_txn],
            txn_count[c, i_txn],
            np.where(updated, income1[c], income0[c]),
            np.where(updated, emp1[c], emp0[c]),
            cust.age[c],
            cust.home[c],
            cust.region[c],
            p,
        )
        # Life events the data never sees: keeps a perfect model well below AUC 1.
        logit = logit + rng.normal(0, _UNSEEN, rows.size)
        y = rng.random(rows.size) < _sigmoid(logit)
        defaulted[rows] = y
        if y.any():
            cd, td = c[y], t[y]
            hit = t_cred[cd] >= (td + _REPORT_LAG)[:, None]
            r, j = np.nonzero(hit)
            np.add.at(delinq, (cd[r], j), 2.0)
            np.add.at(score, (cd[r], j), -30.0)
            np.add.at(util, (cd[r], j), 0.05)
            np.clip(score, 300, 850, out=score)
            np.clip(util, 0, 1.5, out=util)

    # Missing values come from the feed, not the customer: the label used the true value.
    miss = rng.random((n, months)) < p.balance_missing
    if p.balance_burst_months:
        burst = np.isin(k, p.balance_burst_months)[None, :]
        miss |= burst & (rng.random((n, months)) < p.balance_burst_missing)
    balance = np.where(miss, np.nan, balance)
    region_missing = rng.random(n) < p.region_missing

    return _assemble(
        t0=t0,
        cust=cust,
        signup=signup,
        upd_has=upd_has,
        upd_time=upd_time,
        income=(income0, income1),
        employment=(emp0, emp1),
        region_missing=region_missing,
        valid=valid,
        t_txn=t_txn,
        t_cred=t_cred,
        txn=(txn_count, txn_amount, balance, overdraft),
        cred=(score, accounts, delinq, util),
        labels=(who, t_app, defaulted),
    )


def _dedupe(who: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Shift an application by a second if the same customer already applied that second."""
    t = t.copy()
    while True:
        dup = pd.DataFrame({"c": who, "t": t}).duplicated().to_numpy()
        if not dup.any():
            return t
        t[dup] += 1


def _ts(t0: pd.Timestamp, seconds: np.ndarray) -> pd.Series:
    return pd.Series(t0 + pd.to_timedelta(seconds, unit="s"), name="event_timestamp")


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["event_timestamp", "customer_id"], kind="stable").reset_index(drop=True)


def _assemble(
    *,
    t0: pd.Timestamp,
    cust: _Customers,
    signup: np.ndarray,
    upd_has: np.ndarray,
    upd_time: np.ndarray,
    income: tuple[np.ndarray, np.ndarray],
    employment: tuple[np.ndarray, np.ndarray],
    region_missing: np.ndarray,
    valid: np.ndarray,
    t_txn: np.ndarray,
    t_cred: np.ndarray,
    txn: tuple[np.ndarray, ...],
    cred: tuple[np.ndarray, ...],
    labels: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, pd.DataFrame]:
    home = np.array(HOME_OWNERSHIP, dtype=object)[cust.home]
    region = np.array(REGIONS, dtype=object)[cust.region]
    region[region_missing] = None
    u = np.flatnonzero(upd_has)
    profiles = pd.DataFrame(
        {
            "customer_id": np.concatenate([cust.ids, cust.ids[u]]).astype(np.int64),
            "event_timestamp": _ts(t0, np.concatenate([signup, upd_time[u]])),
            "age": np.concatenate([cust.age, cust.age[u]]).astype(np.int64),
            "annual_income": np.concatenate([income[0], income[1][u]]),
            "employment_years": np.concatenate([employment[0], employment[1][u]]),
            "home_ownership": np.concatenate([home, home[u]]),
            "region": np.concatenate([region, region[u]]),
        }
    )

    ci, ki = np.nonzero(valid)  # row-major: customer by customer, month by month
    ids = cust.ids[ci].astype(np.int64)
    txn_count, txn_amount, balance, overdraft = txn
    transactions = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": _ts(t0, t_txn[ci, ki]),
            "txn_count_30d": txn_count[ci, ki].astype(np.int64),
            "txn_amount_30d": txn_amount[ci, ki],
            "avg_balance_30d": balance[ci, ki],
            "max_overdraft_30d": overdraft[ci, ki],
        }
    )
    score, accounts, delinq, util = cred
    credit = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": _ts(t0, t_cred[ci, ki]),
            "credit_score": score[ci, ki].astype(np.int64),
            "open_accounts": accounts[ci, ki].astype(np.int64),
            "delinquencies_12m": delinq[ci, ki].astype(np.int64),
            "credit_utilization": np.round(util[ci, ki], 4),
        }
    )
    who, t_app, defaulted = labels
    label_df = pd.DataFrame(
        {
            "customer_id": cust.ids[who].astype(np.int64),
            "event_timestamp": _ts(t0, t_app),
            "defaulted": defaulted.astype(np.int64),
        }
    )
    return {
        "profiles": _sorted(profiles),
        "transactions": _sorted(transactions),
        "credit_history": _sorted(credit),
        "labels": _sorted(label_df),
    }


def generate_frames(
    n_rows: int = 100_000,
    seed: int = 7,
    start: str = "2025-01-01",
    months: int = 12,
    drift: bool = False,
) -> dict[str, pd.DataFrame]:
    """The four demo tables as DataFrames, keyed by table name (see `TABLES`).

    `n_rows` label rows over `months` months from `start` (UTC), with about
    `n_rows / 4` customers. With `drift=True` the tables describe the *next* period
    instead (starting `months` months after `start`): most customers continue under the
    same ids, some are new, and incomes, utilization, the region/home-ownership mix and
    the missing-value rate have shifted. Same arguments, same frames.
    """
    if n_rows < LABELS_PER_CUSTOMER:
        raise SeamlessError(f"n_rows must be at least {LABELS_PER_CUSTOMER}, got {n_rows}.")
    if months < 1:
        raise SeamlessError(f"months must be at least 1, got {months}.")
    t0 = _utc(start)
    n_cust = max(n_rows // LABELS_PER_CUSTOMER, 1)
    # Separate streams: the customer base is shared by both periods, so the drifted
    # period continues the same people whichever period is generated first.
    base_rng = np.random.default_rng([seed, 0])
    ids = FIRST_CUSTOMER_ID + np.arange(n_cust, dtype=np.int64)
    base = _new_customers(base_rng, ids, _NORMAL)
    step = (t0 + pd.DateOffset(months=months) - t0).total_seconds() / months

    if not drift:
        rng = np.random.default_rng([seed, 1])
        signup = (rng.random(n_cust) * 0.6 * step).astype(np.int64)
        return _simulate_period(rng, base, signup, n_rows, t0, months, _NORMAL)

    rng = np.random.default_rng([seed, 2])
    n_keep = round(n_cust * 0.8)
    kept = base.take(np.sort(rng.choice(n_cust, n_keep, replace=False)))
    # A year on: older, a bit longer in the job, and poorer; some moved or sold their home.
    kept.age = np.minimum(kept.age + 1, 90)
    kept.employment = kept.employment + 1.0
    kept.income = kept.income * _DRIFTED.income_factor * rng.lognormal(0, 0.05, n_keep)
    moved = rng.random(n_keep) < 0.15
    kept.region[moved] = rng.choice(len(REGIONS), int(moved.sum()), p=_DRIFTED.region_probs)
    rehoused = rng.random(n_keep) < 0.20
    kept.home[rehoused] = rng.choice(
        len(HOME_OWNERSHIP), int(rehoused.sum()), p=_DRIFTED.home_probs
    )
    n_new = n_cust - n_keep
    new = _new_customers(rng, FIRST_CUSTOMER_ID + n_cust + np.arange(n_new), _DRIFTED)
    cust = _Customers.concat(kept, new)
    # Continuing customers are re-profiled in the first weeks; new ones join during the
    # first half of the period (at most 6 months), so each still has snapshots to apply on.
    join_window = min(6 * step, 0.5 * months * step)
    signup = np.concatenate(
        [rng.random(n_keep) * 0.6 * step, rng.random(n_new) * join_window]
    ).astype(np.int64)
    t1 = t0 + pd.DateOffset(months=months)
    return _simulate_period(rng, cust, signup, n_rows, t1, months, _DRIFTED)


def generate(
    out_dir: str | Path,
    n_rows: int = 100_000,
    seed: int = 7,
    start: str = "2025-01-01",
    months: int = 12,
    drift: bool = False,
) -> dict[str, Path]:
    """Write the demo tables as `<out_dir>/<table>.parquet`; returns table -> path.

    Each file is written under a temporary name in `out_dir` and renamed into place,
    so a reader never sees a half-written table.
    """
    frames = generate_frames(n_rows=n_rows, seed=seed, start=start, months=months, drift=drift)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in TABLES:
        target = out / f"{name}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the data from a container's user
        os.close(fd)
        try:
            frames[name].to_parquet(tmp, index=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths[name] = target
    return paths
