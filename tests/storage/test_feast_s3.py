"""Feast's offline store on s3:// Parquet: the point-in-time join reads from a real S3
server (Ceph RGW on loopback, see rgw.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from components.common import storage
from components.common.env import feast_repo_path
from components.common.tables import content_hash
from components.features.features import build_features
from components.features.repo import default_offline_store
from components.features.store import open_store
from tests.helpers.mini_features import T2, T3, facts, mini_config, utc

pytestmark = [pytest.mark.storage, pytest.mark.slow]


def test_historical_features_join_point_in_time_from_s3_parquet(
    bucket: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = f"s3://{bucket}/feast"
    monkeypatch.setenv("SEAMLESS_FEAST_OFFLINE_ROOT", root)
    config = mini_config(project="mini_s3")
    labels = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "event_timestamp": [T2, utc("2024-01-01"), T3 + pd.Timedelta(days=1), T2],
            "defaulted": [0, 1, 0, 1],
        }
    )
    tables = {"facts": facts(), "labels": labels}
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
