"""The features stage against a real embedded Feast (file offline store, SQLite online store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from components.common.config import SeamlessConfig
from components.common.env import feast_repo_path
from components.common.errors import SeamlessError
from components.common.tables import content_hash
from components.features.features import build_features, online_features
from components.features.repo import FEATURE_STORE_YAML, default_offline_store, snapshot_path
from components.features.store import open_store
from tests.helpers.mini_features import T1, T2, T3, facts, mini_config, utc

pytestmark = pytest.mark.unit


def extra() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1], "event_timestamp": [T1], "visits": [7]})


def labels() -> pd.DataFrame:
    # Deliberately not sorted: the output must keep this order.
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2, 3],
            "event_timestamp": [
                T2,  # between t1 and t3: A, never B
                utc("2024-01-01"),  # before t1: nothing known yet
                T3 + pd.Timedelta(days=1),  # after t3: B
                T3 + pd.Timedelta(days=35),  # B is older than the 30-day ttl: expired
                T1 + pd.Timedelta(hours=1),  # customer 2's own value
                T2,  # unknown customer
            ],
            "defaulted": [0, 1, 0, 1, 0, 1],
        }
    )


def run(
    config: SeamlessConfig, tables: dict[str, pd.DataFrame], repo: Path
) -> tuple[pd.DataFrame, dict]:
    hashes = {name: content_hash(df) for name, df in tables.items()}
    return build_features(config, tables, hashes, repo)


@pytest.fixture()
def repo(workspace: Path) -> Path:
    return feast_repo_path()


def test_point_in_time_join_never_leaks_future_values(repo: Path) -> None:
    training, info = run(mini_config(), {"facts": facts(), "labels": labels()}, repo)

    assert list(training.columns) == [
        "customer_id",
        "event_timestamp",
        "score",
        "tier",
        "defaulted",
    ]
    pd.testing.assert_frame_equal(
        training[["customer_id", "event_timestamp", "defaulted"]],
        labels().astype({"event_timestamp": "datetime64[ns, UTC]"}),
        check_dtype=False,
    )
    assert str(training["event_timestamp"].dt.tz) == "UTC"
    score = training["score"].tolist()
    assert score[0] == 1.0  # value A at t2, not B
    assert np.isnan(score[1])  # label before t1
    assert score[2] == 2.0  # after t3: B
    assert np.isnan(score[3])  # ttl expired
    assert score[4] == 5.0
    assert np.isnan(score[5])  # unknown entity
    tier = training["tier"].tolist()
    assert tier[0] == "a" and pd.isna(tier[1]) and tier[2] == "b"
    assert info["rows"] == 6
    assert info["feature_service"] == "mini_v1"
    assert info["features"] == ["score", "tier"]
    assert info["materialized_entities"] == 2
    assert set(info["timings_s"]) >= {"write", "apply", "materialize", "historical_join"}


def test_expiry_in_one_view_keeps_other_views_and_duplicate_labels(repo: Path) -> None:
    # Customer 1 at t3+1d: 'extra' (t1, 30-day ttl) has expired but 'facts' has B.
    lab = pd.DataFrame(
        {
            "customer_id": [1, 1, 1],
            "event_timestamp": [T3 + pd.Timedelta(days=1), T2, T3 + pd.Timedelta(days=1)],
            "defaulted": [1, 0, 0],
        }
    )
    tables = {"facts": facts(), "extra": extra(), "labels": lab}

    training, _ = run(mini_config(extra_view=True), tables, repo)

    assert training["defaulted"].tolist() == [1, 0, 0]
    assert training["score"].tolist() == [2.0, 1.0, 2.0]
    assert training["visits"].isna().tolist() == [True, False, True]


def test_online_features_serve_latest_value_and_nulls_for_unknown(repo: Path) -> None:
    config = mini_config()
    run(config, {"facts": facts(), "labels": labels()}, repo)

    online = online_features(repo, config, [1, 999, 2])

    assert online["customer_id"].tolist() == [1, 999, 2]
    assert online.loc[0, "score"] == 2.0 and online.loc[0, "tier"] == "b"
    # An unknown entity is not an error: every feature is null and serving must detect it.
    assert online.loc[1, ["score", "tier"]].isna().all()
    assert online.loc[2, "score"] == 5.0


def test_local_repo_layout_and_immutable_snapshots(repo: Path) -> None:
    tables = {"facts": facts(), "labels": labels()}
    run(mini_config(), tables, repo)

    fs_yaml = yaml.safe_load((repo / FEATURE_STORE_YAML).read_text())
    assert fs_yaml["online_store"]["type"] == "sqlite"
    assert fs_yaml["offline_store"]["type"] == default_offline_store()
    assert fs_yaml["entity_key_serialization_version"] == 3
    assert not list(repo.glob("*.py"))
    snap = snapshot_path(repo, "facts", content_hash(tables["facts"]))
    assert snap.is_file()
    store = open_store(repo)
    view = store.get_feature_view("facts_view")
    assert view.batch_source.path == str(snap)
    assert view.ttl == pd.Timedelta(days=30)
    assert {f.name: str(f.dtype) for f in view.features} == {"score": "Float64", "tier": "String"}
    assert store.get_entity("customer").join_key == "customer_id"

    # Re-running with the same data reuses the snapshot file untouched.
    mtime = snap.stat().st_mtime_ns
    run(mini_config(), tables, repo)
    assert snap.stat().st_mtime_ns == mtime


def test_existing_feature_store_yaml_is_used_as_is(repo: Path) -> None:
    repo.mkdir(parents=True)
    custom = {
        "project": "custom_project",
        "provider": "local",
        "registry": str(repo / "elsewhere" / "reg.db"),
        "online_store": {"type": "sqlite", "path": str(repo / "elsewhere" / "online.db")},
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    text = yaml.safe_dump(custom)
    (repo / FEATURE_STORE_YAML).write_text(text)

    _, info = run(mini_config(), {"facts": facts(), "labels": labels()}, repo)

    assert (repo / FEATURE_STORE_YAML).read_text() == text
    assert info["project"] == "custom_project"
    assert (repo / "elsewhere" / "reg.db").is_file()


def test_views_dropped_from_config_are_removed(repo: Path) -> None:
    tables = {"facts": facts(), "extra": extra(), "labels": labels()}
    training, _ = run(mini_config(extra_view=True), tables, repo)
    assert training["visits"].tolist()[0] == 7

    _, info = run(mini_config(), tables, repo)

    assert info["removed_objects"] == ["extra_view"]
    assert [v.name for v in open_store(repo).list_feature_views()] == ["facts_view"]


def test_a_view_that_joins_nothing_is_reported(repo: Path) -> None:
    late = extra().assign(event_timestamp=[utc("2030-01-01")])
    tables = {"facts": facts(), "extra": late, "labels": labels()}
    training, info = run(mini_config(extra_view=True), tables, repo)
    assert info["empty_views"] == ["extra_view"]
    assert training["visits"].isna().all()


def test_missing_feature_table_is_named(repo: Path) -> None:
    with pytest.raises(SeamlessError, match="needs table 'facts'"):
        run(mini_config(), {"labels": labels()}, repo)


def test_missing_entity_column_is_named(repo: Path) -> None:
    bad = facts().rename(columns={"customer_id": "cust"})
    with pytest.raises(SeamlessError, match="'facts' has no entity column 'customer_id'"):
        run(mini_config(), {"facts": bad, "labels": labels()}, repo)


def test_missing_timestamp_column_is_named(repo: Path) -> None:
    bad = labels().drop(columns=["event_timestamp"])
    with pytest.raises(SeamlessError, match="'labels' has no timestamp column 'event_timestamp'"):
        run(mini_config(), {"facts": facts(), "labels": bad}, repo)


def test_label_rows_without_timestamp_are_rejected(repo: Path) -> None:
    bad = labels()
    bad.loc[2, "event_timestamp"] = pd.NaT
    with pytest.raises(SeamlessError, match=r"1 rows with a null timestamp.*first at data row 3"):
        run(mini_config(), {"facts": facts(), "labels": bad}, repo)
    # Nothing was published for a bad input.
    assert not (repo / FEATURE_STORE_YAML).exists()


def test_nothing_joined_names_views_and_ttl(repo: Path) -> None:
    early = labels().assign(event_timestamp=utc("2020-01-01"))
    with pytest.raises(SeamlessError, match=r"No feature value joined.*'facts_view' ttl 30 d"):
        run(mini_config(), {"facts": facts(), "labels": early}, repo)


def test_bundled_config_shape(config: SeamlessConfig, repo: Path) -> None:
    rng = np.random.default_rng(0)
    n, months = 50, 3
    ids = np.arange(1, n + 1)
    start = utc("2024-01-01")
    # Monthly snapshots: every customer once a month, `rows` rows in all.
    rows = n * months
    snap_ids = np.repeat(ids, months)
    snap_ts = start + pd.to_timedelta(np.tile(np.arange(months) * 30, n), unit="D")

    def monthly(**columns: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": snap_ids, "event_timestamp": snap_ts, **columns})

    tables = {
        "profiles": pd.DataFrame(
            {
                "customer_id": ids,
                "event_timestamp": start - pd.Timedelta(days=10),
                "age": rng.integers(18, 90, n),
                "annual_income": rng.uniform(1e4, 1e5, n),
                "employment_years": rng.uniform(0, 30, n),
                "home_ownership": rng.choice(["RENT", "OWN"], n),
                "region": rng.choice(["N", "S"], n),
            }
        ),
        "transactions": monthly(
            txn_count_30d=rng.integers(0, 50, rows),
            txn_amount_30d=rng.uniform(0, 1e3, rows),
            avg_balance_30d=rng.uniform(0, 1e3, rows),
            max_overdraft_30d=rng.uniform(0, 1e2, rows),
        ),
        "credit_history": monthly(
            credit_score=rng.integers(300, 850, rows),
            open_accounts=rng.integers(0, 9, rows),
            delinquencies_12m=rng.integers(0, 3, rows),
            credit_utilization=rng.uniform(0, 1, rows),
        ),
        "labels": pd.DataFrame(
            {
                "customer_id": rng.choice(ids, 200),
                "event_timestamp": start + pd.to_timedelta(rng.integers(1, 80, 200), unit="D"),
                "defaulted": rng.integers(0, 2, 200),
            }
        ),
    }

    training, info = run(config, tables, repo)

    assert list(training.columns) == [
        "customer_id",
        "event_timestamp",
        *config.feature_types(),
        "defaulted",
    ]
    assert len(training) == 200
    assert training["defaulted"].tolist() == tables["labels"]["defaulted"].tolist()
    assert info["views"] == ["customer_profile", "transaction_aggregates", "credit_history"]
    assert info["materialized_entities"] == n
    assert not info["empty_views"]
    assert training[list(config.feature_types())].notna().all(axis=None)


def test_feature_rows_without_time_or_entity_are_dropped_and_counted(repo: Path) -> None:
    # Ingestion turns unparseable values into nulls; such rows cannot be placed in time.
    bad = pd.concat(
        [
            facts(),
            pd.DataFrame(
                {
                    "customer_id": [1, None],
                    "event_timestamp": [pd.NaT, T2],
                    "score": [9.0, 9.0],
                    "tier": ["x", "x"],
                }
            ),
        ],
        ignore_index=True,
    ).astype({"customer_id": "Int64"})

    training, info = run(mini_config(), {"facts": bad, "labels": labels()}, repo)

    assert info["tables"]["facts"]["dropped_rows"] == 2
    assert info["tables"]["facts"]["rows"] == 3
    assert 9.0 not in training["score"].tolist()


def test_released_inputs_give_the_same_training_set(repo: Path, tmp_path: Path) -> None:
    """The stage hands its tables over (release_inputs): they are freed after the
    snapshots, and the training set is the same as when the caller keeps them."""
    kept = {"facts": facts(), "labels": labels()}
    training, _ = run(mini_config(), kept, repo)
    handed = {"facts": facts(), "labels": labels()}
    hashes = {name: content_hash(df) for name, df in handed.items()}
    again, _ = build_features(
        mini_config(), handed, hashes, tmp_path / "other", release_inputs=True
    )
    assert handed == {} and set(kept) == {"facts", "labels"}
    pd.testing.assert_frame_equal(training, again)
