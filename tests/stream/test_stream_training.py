"""Pushed events reach training: the next features step publishes each view over its
snapshot plus its pushed events (a new content-hashed snapshot; the ingest one is left
as it is), the point-in-time join sees them at their own times, and materialization
keeps the newest value online even on SQLite."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import SeamlessConfig
from components.common.tables import content_hash
from components.features.features import build_features, online_features
from components.features.store import open_store
from components.governance import hooks
from components.stream.consumer import Consumer, StreamSettings
from components.stream.events import encode
from tests.stream.world import T1, build_repo, digest, event, facts, utc

pytestmark = [pytest.mark.slow, pytest.mark.stream]


def test_the_next_training_joins_pushed_events_at_their_times(
    stream_config: SeamlessConfig, client: Any, tmp_path: Path
) -> None:
    repo = build_repo(tmp_path, stream_config, None)  # SQLite online store
    snapshot = next((repo / "data" / "facts").glob("*.parquet"))
    before = digest(snapshot)
    now = datetime.now(UTC) - timedelta(minutes=1)
    mid = utc("2024-02-15")  # between customer 1's batch values A (t1) and B (t3)
    stream = "s:training"
    for e in (
        event("t-late", 1, mid.isoformat(), score=7.0, tier="m"),  # late: history only
        event("t-now", 1, now.isoformat(), score=11.0, tier="n"),  # on time: online too
    ):
        client.xadd(stream, encode(e))
    settings = StreamSettings(stream=stream, block_ms=100)
    done = Consumer(stream_config, repo, open_store(repo), client, settings).run(idle_exit_s=0.5)
    assert (done.written, done.late) == (1, 1)

    day = pd.Timedelta(days=1)
    label_times = [T1 + day, mid + day, pd.Timestamp(now) + pd.Timedelta(seconds=1), T1 + 20 * day]
    tables = {
        "facts": facts(),
        "labels": pd.DataFrame(
            {"customer_id": [1, 1, 1, 2], "event_timestamp": label_times, "defaulted": [0, 1, 0, 1]}
        ),
    }
    hashes = {name: content_hash(df) for name, df in tables.items()}
    training, info = build_features(stream_config, tables, hashes, repo)
    # A before the late event, the late event itself, then the streamed value.
    assert training["score"].tolist() == [1.0, 7.0, 11.0, 5.0]
    assert training["tier"].tolist() == ["a", "m", "n", "z"]
    assert info["pushed_rows"] == {"facts_view": 2}
    # ...and the features step's audit entry says which views took streamed events.
    os.environ["SEAMLESS_WORKSPACE"] = str(tmp_path / "ws")  # restored by the autouse fixture
    entry = hooks.on_features({"data_sha256": "0" * 64, **info})
    assert entry["details"]["pushed_rows"] == {"facts_view": 2}
    # The ingest snapshot is unchanged; the view reads a new snapshot and says so.
    assert digest(snapshot) == before
    view = open_store(repo).get_feature_view("facts_view")
    assert view.tags["seamless.table_sha256"] == hashes["facts"]
    assert view.tags["seamless.pushed_rows"] == "2"
    assert view.batch_source.path.endswith(f"{view.tags['seamless.pushed_sha256']}.parquet")
    assert view.stream_source.name == "facts_view__push"
    # Materialization after the push keeps the newest value online (SQLite overwrites).
    assert online_features(repo, stream_config, [1])["score"].tolist() == [11.0]
