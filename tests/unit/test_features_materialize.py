"""`seamless features materialize`: the scheduled job that keeps the online store current."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.tables import read_dataset, read_manifest
from components.features.features import build_features, materialize_online, online_features
from components.features.repo import ensure_repo
from components.ingest.ingest import ingest_tables
from pipelines.demo_data import generate

pytestmark = pytest.mark.unit


def test_materialize_after_the_pipeline_applied_the_views(
    config: SeamlessConfig, workspace: Path, tmp_path: Path
) -> None:
    generate(tmp_path / "data", n_rows=600, seed=2)
    ingest_tables(config, tmp_path / "data", tmp_path / "ds")
    manifest = read_manifest(tmp_path / "ds")
    hashes = {n: e["sha256"] for n, e in manifest["tables"].items()}
    repo = workspace / "feast"
    build_features(config, read_dataset(tmp_path / "ds"), hashes, repo)

    done = materialize_online(repo, config)
    assert done["views"] == [v.name for v in config.features.views]
    online = online_features(repo, config, [100_000, 10**9])
    assert online.iloc[0][["credit_score", "age"]].notna().all()
    assert online.iloc[1][["credit_score", "age"]].isna().all()  # unknown entity: nulls


def test_materialize_before_any_apply_names_the_missing_views(
    config: SeamlessConfig, workspace: Path
) -> None:
    repo = workspace / "feast"
    ensure_repo(repo, config.features.project)
    with pytest.raises(SeamlessError, match=r"not in the Feast registry; run the training"):
        materialize_online(repo, config)
