"""`seamless features materialize`: the scheduled job that keeps the online store current."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.tables import read_dataset, read_manifest
from components.features.features import build_features, materialize_online, online_features
from components.features.repo import ensure_repo
from components.ingest.stage import ingest_tables
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


def test_the_pipeline_loads_the_online_store_in_its_own_step(
    config: SeamlessConfig, workspace: Path, tmp_path: Path
) -> None:
    """`features` (online=False) publishes and builds the training set and leaves the online
    store alone; `materialize` loads it from the windows `features` recorded, to the same
    values the single step loads."""
    from components.common.env import feast_repo_path
    from components.features.stage import run_features, run_materialize

    generate(tmp_path / "data", n_rows=600, seed=2)
    ingest_tables(config, tmp_path / "data", tmp_path / "ds")
    info = run_features(config, str(tmp_path / "ds"), str(tmp_path / "ts"), online=False)
    assert info["materialized"] is False
    assert set(info["online_windows"]) == {v.name for v in config.features.views}
    repo = feast_repo_path()
    ids = [100_000, 100_001, 10**9]
    assert online_features(repo, config, ids)[["credit_score", "age"]].isna().all().all()

    done = run_materialize(config, info["online_windows"])
    assert done["views"] == sorted(info["online_windows"])
    split = online_features(repo, config, ids)
    assert split.iloc[0][["credit_score", "age"]].notna().all()

    both = run_features(config, str(tmp_path / "ds"), str(tmp_path / "ts2"))
    assert both["training_set_sha256"] == info["training_set_sha256"]
    assert online_features(repo, config, ids).equals(split)


def test_materialize_step_names_views_the_registry_lacks(
    config: SeamlessConfig, workspace: Path
) -> None:
    from components.features.stage import run_materialize

    ensure_repo(workspace / "feast", config.features.project)
    windows = {"nope": ["2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"]}
    with pytest.raises(SeamlessError, match=r"\['nope'\] are not in the Feast registry"):
        run_materialize(config, windows)


def test_materialize_in_batches_writes_every_entity(
    config: SeamlessConfig, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feast writes the online store `online_write_batch_size` entities at a time (memory):
    batches smaller than a view give the same online values as one batch per view."""
    from components.features import repo as repo_module

    generate(tmp_path / "data", n_rows=600, seed=2)
    ingest_tables(config, tmp_path / "data", tmp_path / "ds")
    manifest = read_manifest(tmp_path / "ds")
    hashes = {n: e["sha256"] for n, e in manifest["tables"].items()}
    frames = read_dataset(tmp_path / "ds")
    ids = [*sorted(set(frames["labels"][config.entity_key()].tolist())), 10**9]
    online = {}
    for batch in (37, 10**6):
        monkeypatch.setattr(repo_module, "ONLINE_WRITE_BATCH", batch)
        repo = tmp_path / f"feast-{batch}"
        build_features(config, read_dataset(tmp_path / "ds"), hashes, repo)
        done = materialize_online(repo, config)
        assert done["views"] == [v.name for v in config.features.views]
        assert f"online_write_batch_size: {batch}" in (repo / "feature_store.yaml").read_text()
        online[batch] = online_features(repo, config, ids)
    assert len(ids) > 3 * 37
    values = online[37].drop(columns=[config.entity_key()])
    assert values.iloc[:-1].notna().any(axis=1).all()  # every known entity was written
    assert values.iloc[-1].isna().all()
    assert online[37].equals(online[10**6])
