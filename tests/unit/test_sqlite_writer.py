"""The batched SQLite online-store writer leaves the rows Feast's own writer leaves."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from components.common.config import default_config_path, load_config
from components.features.online_load import ColumnarLocalComputeEngine
from components.features.sqlite_writer import (
    CREATE_SIDE,
    BatchedSqliteOnlineStore,
    micros,
    use_batched_writer,
)
from components.features.store import materialize_windows, open_store, windows_from_json
from components.ingest.stage import ingest_tables
from components.stream.online_sqlite import SIDE_TABLE, NewerOnlySqliteOnlineStore, _read
from pipelines.demo_data import generate
from tests.helpers.endpoints import ENDPOINT_KEYS
from tests.helpers.online_writers import WRITERS, materialize_with

pytestmark = pytest.mark.unit


def _copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    yaml = dst / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace(str(src.resolve()), str(dst.resolve())))
    return dst


def _rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Feast's tables' rows (not the stream consumer's side table of precise times)."""
    with sqlite3.connect(db) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        names = [n for (n,) in tables if n != SIDE_TABLE]
        return {
            n: conn.execute(f'SELECT * FROM "{n}" ORDER BY entity_key, feature_name').fetchall()
            for n in names
        }


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """A Feast repo with the demo views applied and nothing materialized, and the windows
    the features step recorded for the materialize step."""
    from components.common.env import feast_repo_path
    from components.features.stage import run_features

    tmp = tmp_path_factory.mktemp("writer")
    with pytest.MonkeyPatch.context() as mp:
        for key in ENDPOINT_KEYS:
            mp.delenv(key, raising=False)
        mp.setenv("SEAMLESS_WORKSPACE", str(tmp / "ws"))
        config = load_config(default_config_path())
        generate(tmp / "data", n_rows=3000, seed=5)
        ingest_tables(config, tmp / "data", tmp / "ds")
        info = run_features(config, str(tmp / "ds"), str(tmp / "ts"), online=False)
        return feast_repo_path(), info["online_windows"]


def test_materialization_writes_the_rows_feasts_writer_writes(
    published: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    repo, windows = published
    ours = open_store(_copy_repo(repo, tmp_path / "ours"))
    theirs = open_store(_copy_repo(repo, tmp_path / "theirs"))

    materialize_windows(ours, windows_from_json(windows))
    assert type(ours._get_provider().online_store) is BatchedSqliteOnlineStore
    # Loaded column by column (components/features/arrow_rows.py), not value by value.
    assert type(ours._get_provider()._batch_engine) is ColumnarLocalComputeEngine
    for name, (start, end) in windows_from_json(windows).items():
        theirs.materialize(start_date=start, end_date=end, feature_views=[name])
    assert type(theirs._get_provider().online_store) is SqliteOnlineStore

    written = _rows(tmp_path / "ours" / "online_store.db")
    assert sum(len(r) for r in written.values()) > 3000
    assert written == _rows(tmp_path / "theirs" / "online_store.db")


def _side(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f'SELECT * FROM "{SIDE_TABLE}" ORDER BY 1, 2').fetchall()


def test_where_the_side_table_exists_both_loads_keep_it_in_step(
    published: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    """With the stream consumer's side table present, the column-wise load and the
    batched writer (Feast's conversion) still write Feast's rows byte for byte, and
    both write the same side rows: per entity its event time to the microsecond and the
    digest of its stored rows, which the consumer's writer then takes as precise."""
    repo, windows = published
    spans = windows_from_json(windows)
    stores = {}
    for name in WRITERS:
        store = open_store(_copy_repo(repo, tmp_path / name))
        if name != "feast":
            with sqlite3.connect(tmp_path / name / "online_store.db") as conn:
                conn.execute(CREATE_SIDE)
        materialize_with(store, spans, name)
        stores[name] = store

    feasts = _rows(tmp_path / "feast" / "online_store.db")
    assert _rows(tmp_path / "columnar" / "online_store.db") == feasts
    assert _rows(tmp_path / "batched" / "online_store.db") == feasts
    side = _side(tmp_path / "columnar" / "online_store.db")
    assert side == _side(tmp_path / "batched" / "online_store.db")
    assert len(side) == sum(len({r[0] for r in rows}) for rows in feasts.values())
    # The demo data's times are whole seconds: sub-second ones are checked against
    # Feast's conversion in test_arrow_rows.py and after real loads in
    # tests/stream/test_stream_sqlite_materialized.py.
    store = stores["columnar"]
    conn = store._get_provider().online_store._get_conn(store.config)
    for view in store.list_feature_views():
        table = f"{store.config.project}_{view.name}"
        mine = {k: us for t, k, us, _ in side if t == table}
        stored = _read(conn, table, list(mine), {f.name for f in view.features})
        assert {k: s.precise for k, s in stored.items()} == mine
        assert all(s.seconds == us // 1_000_000 for k, s in stored.items() for us in [mine[k]])


def test_a_key_written_twice_keeps_the_later_value_as_feasts_writer_does(
    published: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    repo, windows = published
    view_name = sorted(windows)[0]
    stores = {
        "ours": (open_store(_copy_repo(repo, tmp_path / "ours")), BatchedSqliteOnlineStore()),
        "theirs": (open_store(_copy_repo(repo, tmp_path / "theirs")), SqliteOnlineStore()),
    }
    for store, writer in stores.values():
        view = store.get_feature_view(view_name)
        join_key = view.entity_columns[0].name
        feature = view.features[0].name
        t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
        data = [
            (
                EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=k)]),
                {feature: Value(double_val=float(k) + i / 10)},
                t0 + timedelta(minutes=i),
                None if i % 2 else t0,
            )
            for i, k in enumerate([7, 3, 7, 2**62, 3, 7])
        ]
        writer.online_write_batch(store.config, view, data, progress=None)
        writer.online_write_batch(store.config, view, data[:2], progress=None)

    ours = _rows(tmp_path / "ours" / "online_store.db")
    assert ours == _rows(tmp_path / "theirs" / "online_store.db")
    assert sum(len(r) for r in ours.values()) == 3


def test_the_batched_writer_keeps_the_later_time_of_a_key_written_twice(
    published: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    repo, windows = published
    store = open_store(_copy_repo(repo, tmp_path / "ours"))
    view = store.get_feature_view(sorted(windows)[0])
    join_key = view.entity_columns[0].name
    with sqlite3.connect(tmp_path / "ours" / "online_store.db") as conn:
        conn.execute(CREATE_SIDE)
    t0 = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    key = EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=7)])
    values = {f.name: Value(double_val=1.0) for f in view.features}
    data = [(key, values, t0 + timedelta(microseconds=i), None) for i in (5, 3)]
    BatchedSqliteOnlineStore().online_write_batch(store.config, view, data, progress=None)
    ((_, _, us, _),) = _side(tmp_path / "ours" / "online_store.db")
    assert us == micros(t0 + timedelta(microseconds=3))


def test_other_stores_keep_feasts_writer(published: tuple[Path, dict[str, list[str]]]) -> None:
    repo, windows = published
    store = open_store(repo)
    name, (start, end) = next(iter(windows_from_json(windows).items()))
    store.materialize(start_date=start, end_date=end, feature_views=[name])
    # Feast built its engine with its own writer: swapping now would not reach it.
    assert use_batched_writer(store) is False
    assert type(store._get_provider().online_store) is SqliteOnlineStore


def test_the_newer_only_writer_never_replaces_a_newer_value(
    published: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    """An older event time is refused, also within the same second (Feast's column keeps
    whole seconds; the writer compares microseconds), an equal or a newer one is
    written: Feast's tables hold the rows of writing only what may win."""
    repo, windows = published
    view_name = sorted(windows)[0]
    newer_only = open_store(_copy_repo(repo, tmp_path / "newer"))
    reference = open_store(_copy_repo(repo, tmp_path / "reference"))
    view = newer_only.get_feature_view(view_name)
    join_key, feature = view.entity_columns[0].name, view.features[0].name
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def rows(value: float, seconds: float, keys: list[int]) -> list[Any]:
        return [
            (
                EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=k)]),
                {feature: Value(double_val=value + k)},
                t0 + timedelta(seconds=seconds),
                None,
            )
            for k in keys
        ]

    first, older, older_within, same, newer = (
        rows(1, 600.6, [7, 3]),
        rows(2, 540, [7, 3]),
        rows(5, 600.2, [7, 3]),
        rows(3, 600.6, [7]),
        rows(4, 660, [3, 2**62]),
    )
    for batch in (first, older, older_within, same, newer):
        NewerOnlySqliteOnlineStore().online_write_batch(newer_only.config, view, batch, None)
    for batch in (first, same, newer):
        SqliteOnlineStore().online_write_batch(reference.config, view, batch, None)
    assert _rows(tmp_path / "newer" / "online_store.db") == _rows(
        tmp_path / "reference" / "online_store.db"
    )


def test_a_side_row_outside_the_stored_second_is_stale(
    published: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    """The side row's time counts only within the second Feast's column holds: one
    another writer left out of step (here moved a second back, its digest still
    matching) is not used, and the stored value counts as the end of its second."""
    repo, windows = published
    store = open_store(_copy_repo(repo, tmp_path / "ours"))
    view = store.get_feature_view(sorted(windows)[0])
    key = EntityKey(join_keys=[view.entity_columns[0].name], entity_values=[Value(int64_val=7)])
    values = {f.name: Value(double_val=1.0) for f in view.features}
    t0 = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    writer = NewerOnlySqliteOnlineStore()
    writer.online_write_batch(store.config, view, [(key, values, t0, None)], None)
    ((ts, _),) = writer.online_read(store.config, view, [key])
    assert ts == t0
    with sqlite3.connect(tmp_path / "ours" / "online_store.db") as conn:
        conn.execute(f'UPDATE "{SIDE_TABLE}" SET event_us = event_us - 1000000')
    ((ts, _),) = writer.online_read(store.config, view, [key])
    assert ts == t0.replace(microsecond=999_999)
    later = t0 + timedelta(milliseconds=500)  # within the second: refused
    writer.online_write_batch(store.config, view, [(key, values, later, None)], None)
    assert writer.written == 1
