"""The stream tests' world: the features stage's mini config published to a Feast repo
whose online store is SQLite (embedded mode) or a real `redis-server` (the cluster's
kind), and a redis-py client on the same server for the stream itself."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.config import SeamlessConfig
from components.common.tables import content_hash
from components.features.features import build_features
from components.features.repo import FEATURE_STORE_YAML, local_repo_config
from components.stream import compaction
from tests.helpers.mini_features import T1, T3, facts, mini_config, utc

STREAM_CONFIG = mini_config


def labels() -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "customer_id": [1, 2, 1],
            "event_timestamp": [T1 + pd.Timedelta(days=1), T1 + pd.Timedelta(days=1), T3],
            "defaulted": [0, 1, 0],
        }
    )


def build_repo(
    root: Path, config: SeamlessConfig, redis_address: str | None,
    online_store: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """A Feast repo at `<root>/feast` with the mini world published and materialized;
    its online store is Redis at `redis_address` (host:port) when given, else
    `online_store` (Feast's `online_store` section) when given, else SQLite."""
    repo = root / "feast"
    repo.mkdir(parents=True)
    cfg = local_repo_config(config.features.project, repo)
    if redis_address:
        cfg["online_store"] = {"type": "redis", "connection_string": redis_address}
    elif online_store:
        cfg["online_store"] = online_store
    (repo / FEATURE_STORE_YAML).write_text(yaml.safe_dump(cfg, sort_keys=False))
    tables = {"facts": facts(), "labels": labels()}
    hashes = {name: content_hash(df) for name, df in tables.items()}
    build_features(config, tables, hashes, repo)
    return repo


def guarded(repo: Path) -> Any:
    """`repo`'s store with the consumer's newer-only SQLite writer in place."""
    from components.features.store import open_store
    from components.stream.online import guard_writes
    from components.stream.online_sqlite import NewerOnlySqliteOnlineStore

    store = open_store(repo)
    assert guard_writes(store)
    assert isinstance(store._get_provider().online_store, NewerOnlySqliteOnlineStore)
    return store


def write(store: Any, entity: int, when: datetime, score: float) -> None:
    """Write one `facts_view` row (tier `t<score>`) through `store`'s online writer."""
    import pandas as pd

    frame = pd.DataFrame({"customer_id": [entity], "event_timestamp": [pd.Timestamp(when)],
                          "score": [score], "tier": [f"t{score:g}"]})  # fmt: skip
    store.write_to_online_store("facts_view", frame)


def event(event_id: str, customer: Any, when: str, score: Any = 3.5, tier: Any = "c",
          **extra: Any) -> dict[str, Any]:  # fmt: skip
    """One facts_view event as a producer writes it."""
    return {
        "event_id": event_id, "view": "facts_view", "customer_id": customer,
        "event_timestamp": when, "score": score, "tier": tier, **extra,
    }  # fmt: skip


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def killed_between_deletes(monkeypatch: pytest.MonkeyPatch, after: int) -> Iterator[None]:
    """A compaction inside is "killed" (KeyboardInterrupt) after deleting `after` merged parts."""
    removed: list[str] = []
    real_remove = compaction._remove

    def dies(uri: str) -> None:
        if len(removed) == after:
            raise KeyboardInterrupt("killed between the deletes")
        removed.append(uri)
        real_remove(uri)

    with monkeypatch.context() as m:
        m.setattr(compaction, "_remove", dies)
        yield


__all__ = [
    "STREAM_CONFIG", "T1", "T3", "build_repo", "digest", "event", "facts",
    "killed_between_deletes", "labels", "utc",
]  # fmt: skip


@contextmanager
def killed_while_writing(monkeypatch: pytest.MonkeyPatch, after: int) -> Iterator[list[int]]:
    """A compaction inside is "killed" (KeyboardInterrupt) when it writes a row group of
    its merged file after `after` of them; yields the row counts of those written."""
    import pyarrow.parquet as pq

    writes: list[int] = []
    real_write = pq.ParquetWriter.write_table

    def dies(self: Any, table: Any, *args: Any, **kw: Any) -> None:
        if len(writes) == after:
            raise KeyboardInterrupt("killed while writing")
        writes.append(table.num_rows)
        real_write(self, table, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(pq.ParquetWriter, "write_table", dies)
        yield writes
