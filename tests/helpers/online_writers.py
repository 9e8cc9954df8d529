"""Loading a Feast repo's SQLite online store through each writer Seamless uses, or
Feast's own (tests/unit/test_sqlite_writer.py, tests/stream/test_stream_sqlite_materialized.py)."""

from __future__ import annotations

from typing import Any

from components.features.online_load import ColumnarLocalComputeEngine
from components.features.sqlite_writer import use_batched_writer
from components.features.store import OnlineWindows, materialize_windows

WRITERS = ["columnar", "batched", "feast"]
"""Seamless' column-wise load, its batched writer under Feast's materialize, Feast's own."""


def materialize_with(store: Any, windows: OnlineWindows, writer: str) -> None:
    """Materialize `windows` (view name -> start, end) into `store` through `writer`."""
    if writer == "columnar":
        materialize_windows(store, windows)
        assert type(store._get_provider()._batch_engine) is ColumnarLocalComputeEngine
    else:
        if writer == "batched":
            assert use_batched_writer(store)
        for name, (start, end) in windows.items():
            store.materialize(start_date=start, end_date=end, feature_views=[name])
