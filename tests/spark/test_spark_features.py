"""Features with `engine: spark` (Feast's Spark offline store, SparkSources and its Spark
compute engine for materialization) against the local engine on the same snapshot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from components.common.config import default_config_path, load_config
from components.common.errors import SeamlessError
from components.common.tables import read_dataset, read_table, write_dataset
from components.features.features import online_features
from components.features.stage import run_features
from tests.helpers.engines import engine_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def features_on(
    engine: str, dataset: Path, repo: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("SEAMLESS_FEAST_REPO", str(repo))
    config = engine_config(engine)
    return run_features(config, str(dataset), str(out))


def edited_labels(
    dataset: Path, folder: Path, edit: Callable[[pd.DataFrame], None]
) -> tuple[Path, int]:
    """A copy of `dataset` in `folder` whose labels table (label nullable) `edit` changed
    in place, and its number of label rows."""
    tables = read_dataset(dataset)
    labels = tables["labels"]
    labels["defaulted"] = labels["defaulted"].astype("Int64")
    edit(labels)
    write_dataset(folder, tables)
    return folder, len(labels)


def dropping_unknown_labels(engine: str) -> Any:
    """The bundled config on `engine`, with `labels.unknown_values: drop`."""
    base = engine_config(engine)
    return base.model_copy(
        update={"labels": base.labels.model_copy(update={"unknown_values": "drop"})}
    )


def push_events(dataset: Path, repos: list[Path], rows: int = 30) -> None:
    """Events in the stream consumer's log (components/stream/pushed.py) of each repo: age
    99 for the first `rows` label rows' customers, one second before each label."""
    from components.stream.pushed import EVENT_ID_COLUMN, STREAM_ID_COLUMN, columns_of, write_part

    config = load_config(default_config_path())
    tables = read_dataset(dataset)
    key = config.entity_key()
    labels = tables["labels"].head(rows)
    profiles = tables["profiles"].drop_duplicates(key, keep="last").set_index(key)
    events = profiles.loc[labels[key].to_numpy()].reset_index()
    label_ts = labels[config.timestamp_key(config.labels.table)]
    events[config.timestamp_key("profiles")] = (label_ts - timedelta(seconds=1)).to_numpy()
    events["age"] = 99
    events[EVENT_ID_COLUMN] = [f"e{i}" for i in range(rows)]
    events[STREAM_ID_COLUMN] = [f"{1000 + i}-0" for i in range(rows)]
    for repo in repos:
        write_part(config, repo, "customer_profile", events[columns_of(config, "customer_profile")])


def test_same_training_set_and_online_values(
    spark: Any, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also with events from the stream consumer: both engines join them at their times."""
    push_events(dataset, [tmp_path / "lrepo", tmp_path / "srepo"])
    local = features_on("local", dataset, tmp_path / "lrepo", tmp_path / "lts", monkeypatch)
    remote = features_on("spark", dataset, tmp_path / "srepo", tmp_path / "sts", monkeypatch)
    assert local["pushed_rows"] == remote["pushed_rows"] == {"customer_profile": 30}
    assert (read_table(tmp_path / "lts", "training_set")["age"].head(30) == 99).all()
    # The same rows in the same order with the same dtypes: equal content hashes.
    assert remote["training_set_sha256"] == local["training_set_sha256"]
    assert remote["rows"] == local["rows"]
    pd.testing.assert_frame_equal(
        read_table(tmp_path / "sts", "training_set"), read_table(tmp_path / "lts", "training_set")
    )
    raw = yaml.safe_load((tmp_path / "srepo" / "feature_store.yaml").read_text())
    assert raw["offline_store"]["type"] == "spark"
    assert raw["batch_engine"]["type"] == "spark.engine"
    # Feast's Spark engine loaded the online store with the same latest values.
    config = load_config(default_config_path())
    ids = read_dataset(dataset)["profiles"]["customer_id"].head(25).tolist()
    a = online_features(tmp_path / "lrepo", config, ids)
    b = online_features(tmp_path / "srepo", config, ids)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert b.drop(columns="customer_id").notna().any(axis=None)


def test_missing_features_keep_the_local_dtypes(
    spark: Any, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = read_dataset(dataset)
    labels = tables["labels"]
    # Entities with no feature rows at all, and label times before any feature data.
    labels.loc[:49, "customer_id"] = pd.array(range(9_000_000, 9_000_050), dtype="Int64")
    early = labels["event_timestamp"].min() - timedelta(days=3650)
    labels.loc[50:99, "event_timestamp"] = early
    odd = tmp_path / "odd"
    write_dataset(odd, tables)
    local = features_on("local", odd, tmp_path / "lrepo", tmp_path / "lts", monkeypatch)
    remote = features_on("spark", odd, tmp_path / "srepo", tmp_path / "sts", monkeypatch)
    a = read_table(tmp_path / "lts", "training_set")
    b = read_table(tmp_path / "sts", "training_set")
    assert a["age"].isna().sum() >= 50
    pd.testing.assert_frame_equal(a, b)
    assert remote["training_set_sha256"] == local["training_set_sha256"]


def test_a_repo_switches_engines(
    spark: Any, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    first = features_on("local", dataset, repo, tmp_path / "a", monkeypatch)
    assert yaml.safe_load((repo / "feature_store.yaml").read_text())["offline_store"]["type"] in (
        "duckdb",
        "file",
    )
    second = features_on("spark", dataset, repo, tmp_path / "b", monkeypatch)
    assert yaml.safe_load((repo / "feature_store.yaml").read_text())["offline_store"]["type"] == (
        "spark"
    )
    third = features_on("local", dataset, repo, tmp_path / "c", monkeypatch)
    assert first["training_set_sha256"] == second["training_set_sha256"]
    assert third["training_set_sha256"] == first["training_set_sha256"]


def test_no_join_at_all_is_the_same_sentence(
    spark: Any, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = read_dataset(dataset)
    tables["labels"]["event_timestamp"] = tables["labels"]["event_timestamp"] - timedelta(days=3650)
    early = tmp_path / "early"
    write_dataset(early, tables)
    messages = []
    for engine in ("local", "spark"):
        with pytest.raises(SeamlessError) as info:
            features_on(engine, early, tmp_path / f"{engine}-repo", tmp_path / engine, monkeypatch)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "No feature value joined any of the" in messages[1]


def test_rows_without_a_class_label_are_left_out_alike(
    spark: Any, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `labels.unknown_values: drop`: ingest keeps such rows, both engines' training sets
    # leave out the same ones (null labels and a value that is no class).
    def unknown(labels: pd.DataFrame) -> None:
        labels.loc[:19, "defaulted"] = pd.NA
        labels.loc[20:24, "defaulted"] = 7

    odd, rows = edited_labels(dataset, tmp_path / "odd", unknown)
    out = {}
    for engine in ("local", "spark"):
        monkeypatch.setenv("SEAMLESS_FEAST_REPO", str(tmp_path / f"{engine}-repo"))
        config = dropping_unknown_labels(engine)
        out[engine] = run_features(config, str(odd), str(tmp_path / f"{engine}-ts"))
    assert out["local"]["rows"] == out["spark"]["rows"] == rows - 25
    assert out["spark"]["training_set_sha256"] == out["local"]["training_set_sha256"]
    kept = read_table(tmp_path / "spark-ts", "training_set")["defaulted"]
    assert set(kept.unique()) == {0, 1}


def test_label_rows_without_a_time_are_named_alike(
    spark: Any, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two labels without a time, the first on a row `unknown_values: drop` leaves out:
    # both engines count both and name the first by its 1-based row in the snapshot.
    def timeless(labels: pd.DataFrame) -> None:
        labels.loc[[3, 5], "event_timestamp"] = pd.NaT
        labels.loc[3, "defaulted"] = 7

    odd, _ = edited_labels(dataset, tmp_path / "odd", timeless)
    messages = []
    for engine in ("local", "spark"):
        monkeypatch.setenv("SEAMLESS_FEAST_REPO", str(tmp_path / f"{engine}-repo"))
        with pytest.raises(SeamlessError) as info:
            run_features(dropping_unknown_labels(engine), str(odd), str(tmp_path / f"{engine}-ts"))
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "has 2 rows with a null timestamp 'event_timestamp' (first at data row 4)" in messages[0]
