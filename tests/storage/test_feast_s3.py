"""Feast's offline store on s3:// Parquet: the point-in-time join reads from a real S3
server (Ceph RGW on loopback, see rgw.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from components.common import storage
from components.common.config import SeamlessConfig, parse_config
from components.common.env import feast_repo_path
from components.common.tables import content_hash
from components.features.features import build_features
from components.features.repo import default_offline_store
from components.features.store import open_store

pytestmark = [pytest.mark.storage, pytest.mark.slow]

MINI = """
name: mini
tables:
  facts:
    source: {kind: file, uri: facts.parquet}
    entity_column: customer_id
    timestamp_column: event_timestamp
    columns: {customer_id: int, event_timestamp: timestamp, score: float}
  labels:
    source: {kind: file, uri: labels.parquet}
    entity_column: customer_id
    timestamp_column: event_timestamp
    columns: {customer_id: int, event_timestamp: timestamp, defaulted: int}
labels: {table: labels, label_column: defaulted}
features:
  project: mini_s3
  entity: customer
  service: mini_v1
  views:
    - {name: facts_view, table: facts, features: [score], ttl_days: 30}
model: {name: mini}
"""


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


T1, T2, T3 = utc("2024-01-10"), utc("2024-02-01"), utc("2024-03-01")


def test_historical_features_join_point_in_time_from_s3_parquet(
    bucket: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = f"s3://{bucket}/feast"
    monkeypatch.setenv("SEAMLESS_FEAST_OFFLINE_ROOT", root)
    config: SeamlessConfig = parse_config(MINI, origin="mini.yaml")
    facts = pd.DataFrame(
        {"customer_id": [1, 1, 2], "event_timestamp": [T1, T3, T1], "score": [1.0, 2.0, 5.0]}
    )
    labels = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "event_timestamp": [T2, utc("2024-01-01"), T3 + pd.Timedelta(days=1), T2],
            "defaulted": [0, 1, 0, 1],
        }
    )
    tables = {"facts": facts, "labels": labels}
    hashes = {name: content_hash(df) for name, df in tables.items()}
    repo = feast_repo_path()

    training, info = build_features(config, tables, hashes, repo)

    # The snapshot is an object in the bucket, and the registry's source points at it.
    key = f"{root}/facts/{hashes['facts']}.parquet"
    assert storage.list_files(f"{root}/") == [key]
    assert not (repo / "data").exists()
    source = open_store(repo).get_feature_view("facts_view").batch_source
    assert source.path == key
    assert default_offline_store() == "file"
    # Value A at t2 (never the later B), nothing before t1, B after t3.
    score = training["score"].tolist()
    assert score[0] == 1.0
    assert math.isnan(score[1])
    assert score[2] == 2.0
    assert score[3] == 5.0
    assert info["rows"] == 4
    # Publishing the same table again leaves the object as it was (content-addressed).
    fs, _ = storage.resolve(key)
    before = fs.info(key)["LastModified"]
    build_features(config, tables, hashes, repo)
    assert fs.info(key)["LastModified"] == before
