"""The synthetic credit-risk generator: schema, reproducibility, signal, drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.common.errors import SeamlessError
from pipelines.demo_data import TABLES, generate, generate_frames

pytestmark = pytest.mark.unit

N = 20_000
FEATURE_TABLES = ("profiles", "transactions", "credit_history")


@pytest.fixture(scope="module")
def cfg() -> SeamlessConfig:
    return load_config(default_config_path())


@pytest.fixture(scope="module")
def normal() -> dict[str, pd.DataFrame]:
    return generate_frames(n_rows=N, seed=11)


@pytest.fixture(scope="module")
def drifted() -> dict[str, pd.DataFrame]:
    return generate_frames(n_rows=N, seed=11, drift=True)


def as_of_join(frames: dict[str, pd.DataFrame], direction: str = "backward") -> pd.DataFrame:
    """Labels joined to each feature table's latest row at or before the label time."""
    out = frames["labels"].sort_values("event_timestamp")
    for name in FEATURE_TABLES:
        out = pd.merge_asof(
            out,
            frames[name].sort_values("event_timestamp"),
            on="event_timestamp",
            by="customer_id",
            direction=direction,
        )
    return out.reset_index(drop=True)


def _check(df: pd.DataFrame, exp_type: str, kw: dict[str, Any]) -> bool:
    """Just enough of the config's expectation types to check the generated tables."""
    if exp_type == "expect_table_row_count_to_be_between":
        return kw.get("min_value", 0) <= len(df) <= kw.get("max_value", np.inf)
    col = df[kw["column"]]
    if exp_type == "expect_column_values_to_not_be_null":
        return col.notna().mean() >= kw.get("mostly", 1.0)
    if exp_type == "expect_column_values_to_be_between":
        v = col.dropna()
        return bool(
            (v >= kw.get("min_value", -np.inf)).all() and (v <= kw.get("max_value", np.inf)).all()
        )
    if exp_type == "expect_column_values_to_be_in_set":
        return bool(col.dropna().isin(kw["value_set"]).all())
    if exp_type == "expect_column_mean_to_be_between":
        return kw.get("min_value", -np.inf) <= col.mean() <= kw.get("max_value", np.inf)
    raise AssertionError(f"test does not know expectation {exp_type}")


def test_same_seed_gives_identical_frames_and_files(tmp_path: Path) -> None:
    a = generate_frames(n_rows=2_000, seed=3)
    b = generate_frames(n_rows=2_000, seed=3)
    c = generate_frames(n_rows=2_000, seed=4)
    for name in TABLES:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    assert not a["labels"].equals(c["labels"])

    p1 = generate(tmp_path / "one", n_rows=2_000, seed=3)
    p2 = generate(tmp_path / "two", n_rows=2_000, seed=3)
    assert list(p1) == list(TABLES)
    for name in TABLES:
        assert p1[name] == tmp_path / "one" / f"{name}.parquet"
        assert p1[name].read_bytes() == p2[name].read_bytes()
    # Written under a temporary name then renamed: nothing else is left behind.
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(
        f"{t}.parquet" for t in TABLES
    )


@pytest.mark.parametrize("drift", [False, True])
def test_parquet_tables_match_config_schema(
    tmp_path: Path, cfg: SeamlessConfig, drift: bool
) -> None:
    paths = generate(tmp_path, n_rows=1_000, seed=5, drift=drift)
    assert set(paths) == set(cfg.tables)
    for name, table in cfg.tables.items():
        assert table.source.kind == "file" and table.source.uri == paths[name].name
        df = pd.read_parquet(paths[name])
        assert list(df.columns) == list(table.columns), name
        for col, kind in table.columns.items():
            s = df[col]
            if kind == "int":
                assert s.dtype == np.int64, (name, col, s.dtype)
            elif kind == "float":
                assert s.dtype == np.float64, (name, col, s.dtype)
            elif kind == "timestamp":
                assert isinstance(s.dtype, pd.DatetimeTZDtype) and str(s.dt.tz) == "UTC"
            elif kind == "string":
                assert s.dropna().map(type).eq(str).all(), (name, col)
            else:
                raise AssertionError(f"unexpected config type {kind}")


def test_sizes_time_span_and_snapshot_layout(normal: dict[str, pd.DataFrame]) -> None:
    labels, profiles = normal["labels"], normal["profiles"]
    assert len(labels) == N
    customers = profiles["customer_id"].nunique()
    assert customers == N // 4
    first = profiles.groupby("customer_id").size()
    assert (first >= 1).all() and 0.05 < (first > 1).mean() < 0.25  # some later updates
    start, end = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2026-01-01", tz="UTC")
    for name in TABLES:
        ts = normal[name]["event_timestamp"]
        assert ts.min() >= start and ts.max() < end, name
    for name in ("transactions", "credit_history"):
        per_customer = normal[name].groupby("customer_id").size()
        assert per_customer.eq(12).all(), name
        assert not normal[name].duplicated(["customer_id", "event_timestamp"]).any()
    assert not labels.duplicated(["customer_id", "event_timestamp"]).any()
    # Every application comes after the customer's first snapshot of every table.
    joined = as_of_join(normal)
    assert joined[["age", "txn_count_30d", "credit_score"]].notna().all().all()


def test_not_now_dependent_and_start_is_honoured() -> None:
    f = generate_frames(n_rows=400, seed=1, start="2023-06-15", months=3)
    ts = pd.concat([f[t]["event_timestamp"] for t in TABLES])
    assert ts.min() >= pd.Timestamp("2023-06-15", tz="UTC")
    assert ts.max() < pd.Timestamp("2023-09-15", tz="UTC")


def test_class_imbalance_is_realistic(normal: dict[str, pd.DataFrame]) -> None:
    rate = normal["labels"]["defaulted"].mean()
    assert 0.08 <= rate <= 0.15
    assert set(normal["labels"]["defaulted"].unique()) == {0, 1}


def test_point_in_time_join_gives_a_learnable_signal(normal: dict[str, pd.DataFrame]) -> None:
    data = as_of_join(normal).sort_values("event_timestamp", kind="stable")
    x = data.drop(columns=["customer_id", "event_timestamp", "defaulted"])
    for col in ("home_ownership", "region"):
        x[col] = x[col].astype("category")
    y = data["defaulted"].to_numpy()
    cut = int(len(data) * 0.8)  # time-ordered holdout: train on the past, score the future
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(x.iloc[:cut], y[:cut])
    auc = roc_auc_score(y[cut:], model.predict_proba(x.iloc[cut:])[:, 1])
    assert 0.72 <= auc <= 0.93, auc


def test_later_snapshots_carry_the_label(normal: dict[str, pd.DataFrame]) -> None:
    """A default shows up in later credit history, so a join that looks ahead leaks."""
    past = as_of_join(normal)
    credit = normal["credit_history"].sort_values("event_timestamp")
    labels = normal["labels"].sort_values("event_timestamp").copy()
    labels["probe"] = labels["event_timestamp"] + pd.Timedelta(days=11)
    future = pd.merge_asof(
        labels.drop(columns="event_timestamp"),
        credit.rename(columns={"event_timestamp": "probe"}),
        on="probe",
        by="customer_id",
        direction="forward",
    )
    key = ["customer_id", "event_timestamp"]
    future["event_timestamp"] = future["probe"] - pd.Timedelta(days=11)
    both = past[[*key, "defaulted", "delinquencies_12m"]].merge(
        future[[*key, "delinquencies_12m"]], on=key, suffixes=("_asof", "_later")
    )
    both = both.dropna()
    jump = both["delinquencies_12m_later"] - both["delinquencies_12m_asof"]
    pos, neg = jump[both["defaulted"] == 1].mean(), jump[both["defaulted"] == 0].mean()
    assert pos > neg + 1.0, (pos, neg)


def test_config_expectations_hold(
    cfg: SeamlessConfig, normal: dict[str, pd.DataFrame], drifted: dict[str, pd.DataFrame]
) -> None:
    for exp in cfg.validation.expectations:
        assert _check(normal[exp.table], exp.type, dict(exp.kwargs)), exp
        if exp.severity == "critical":
            assert _check(drifted[exp.table], exp.type, dict(exp.kwargs)), ("drift", exp)
    # The drifted period's missing-value burst is meant to trip a warning.
    warnings = [e for e in cfg.validation.expectations if e.severity == "warning"]
    assert not all(_check(drifted[e.table], e.type, dict(e.kwargs)) for e in warnings)


@pytest.mark.parametrize("which", ["normal", "drifted"])
def test_value_ranges(which: str, request: pytest.FixtureRequest) -> None:
    f = request.getfixturevalue(which)
    p, t, c = f["profiles"], f["transactions"], f["credit_history"]
    assert p["age"].between(18, 90).all()
    assert (p["annual_income"] > 0).all() and (p["employment_years"] >= 0).all()
    assert c["credit_score"].between(300, 850).all()
    assert c["credit_utilization"].between(0, 1.5).all()
    for col in ("open_accounts", "delinquencies_12m"):
        assert (c[col] >= 0).all()
    for col in ("txn_count_30d", "txn_amount_30d", "max_overdraft_30d"):
        assert (t[col] >= 0).all()
    assert (t["avg_balance_30d"].dropna() > 0).all()
    assert p["home_ownership"].isin(["RENT", "OWN", "MORTGAGE", "OTHER"]).all()
    assert p["region"].dropna().isin(["north", "south", "east", "west", "central"]).all()
    assert 0.005 < t["avg_balance_30d"].isna().mean() < 0.2
    assert 0.005 < p["region"].isna().mean() < 0.15


def _mix(s: pd.Series) -> pd.Series:
    return s.value_counts(normalize=True)


def test_drift_moves_means_mix_and_missingness(
    normal: dict[str, pd.DataFrame], drifted: dict[str, pd.DataFrame]
) -> None:
    n, d = normal, drifted
    assert d["profiles"]["annual_income"].mean() < 0.92 * n["profiles"]["annual_income"].mean()
    util_n, util_d = (
        n["credit_history"]["credit_utilization"],
        d["credit_history"]["credit_utilization"],
    )
    assert util_d.mean() > util_n.mean() + 0.05
    for col in ("region", "home_ownership"):
        a, b = _mix(n["profiles"][col]), _mix(d["profiles"][col])
        tvd = 0.5 * a.subtract(b, fill_value=0).abs().sum()
        assert tvd > 0.04, (col, tvd)
    bal_n, bal_d = n["transactions"]["avg_balance_30d"], d["transactions"]["avg_balance_30d"]
    assert bal_d.isna().mean() > 2 * bal_n.isna().mean()
    assert d["profiles"]["region"].isna().mean() > 2 * n["profiles"]["region"].isna().mean()
    # The later period follows the first one, and most customers carry on under their ids.
    assert d["labels"]["event_timestamp"].min() >= n["labels"]["event_timestamp"].max()
    assert d["profiles"]["event_timestamp"].min() >= pd.Timestamp("2026-01-01", tz="UTC")
    ids_n, ids_d = set(n["profiles"]["customer_id"]), set(d["profiles"]["customer_id"])
    assert 0.6 < len(ids_d & ids_n) / len(ids_d) < 0.95 and ids_d - ids_n
    # The concept is unchanged, so the shifted population defaults more often.
    assert d["labels"]["defaulted"].mean() > n["labels"]["defaulted"].mean()
    assert list(d) == list(n) and all(list(d[t].columns) == list(n[t].columns) for t in TABLES)


@pytest.mark.parametrize(("kwargs", "word"), [({"n_rows": 0}, "n_rows"), ({"months": 0}, "months")])
def test_bad_arguments_fail_clearly(kwargs: dict[str, int], word: str) -> None:
    with pytest.raises(SeamlessError, match=word):
        generate_frames(**kwargs)
