"""Batch scoring's prediction-log records as one Parquet segment: readers (monitoring,
lineage, the dashboard's summary) get back exactly the records the JSON lines held, in
write order beside serving's segments; a failed or killed write leaves nothing visible."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from components.batch.stage import log_records
from components.predictions.batch_segment import SegmentWriter, write_segment
from components.predictions.files import AppendLog, read_records, segments
from components.predictions.pg_copy import HEADER, TRAILER, plan
from components.predictions.postgres import COLUMNS, _row
from components.predictions.reader import read_log
from components.predictions.records import LogQuery, ReadStats
from components.predictions.summary import summarize
from tests.helpers.configs import labels_only_config

BATCH = "batch-0123"


def _scored(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features as the model saw them, the scores frame) for n rows."""
    rng = np.random.default_rng(1)
    features = pd.DataFrame(
        {
            "income": np.floor(rng.random(n) * 1000),  # integral floats stay floats
            "ratio": rng.random(n),
            "region": pd.Series(rng.choice(["north", "", 'a "q", b', "é"], n), dtype=object),
        }
    )
    features.loc[::5, "ratio"] = np.nan
    features.loc[3, "ratio"] = np.inf
    features.loc[::4, "region"] = None
    instants = pd.to_datetime(["2025-06-30", "2025-07-01T12:30:00.5"], utc=True, format="ISO8601")
    scores = rng.random(n)
    out = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 2**40, n),
            "as_of": instants[np.arange(n) % 2],
            "score": scores,
            "decision": scores >= 0.5,
            "model_version": "7",
        }
    )
    return features, out


def _as_json_lines_held_them(
    features: pd.DataFrame, out: pd.DataFrame, ts: str
) -> list[dict[str, Any]]:
    """The records as the per-row JSON writer produced them (the contract's oracle)."""
    stamps = {
        pd.Timestamp("2025-06-30", tz="UTC"): "2025-06-30",
        pd.Timestamp("2025-07-01T12:30:00.5", tz="UTC"): "2025-07-01T12:30:00.500Z",
    }
    records = []
    for i in range(len(out)):
        named = {
            c: (None if pd.isna(v) or v in (np.inf, -np.inf) else v)
            for c, v in features.iloc[i].items()
        }
        records.append(
            {
                "ts": ts,
                "request_id": BATCH,
                "index": i,
                "entity_id": int(out["customer_id"].iloc[i]),
                "route": "batch",
                "model_name": "m",
                "model_version": "7",
                "features": named,
                "score": float(out["score"].iloc[i]),
                "decision": bool(out["decision"].iloc[i]),
                "as_of": stamps[out["as_of"].iloc[i]],
            }
        )
    return json.loads(json.dumps(records))


def test_readers_get_back_the_records_json_lines_held(tmp_path: Path) -> None:
    features, out = _scored(500)
    batch = log_records(labels_only_config(), features, out, BATCH)
    ts = batch.constants["ts"]
    assert datetime.fromisoformat(ts).tzinfo == UTC
    want = _as_json_lines_held_them(features, out, ts)
    log = AppendLog(tmp_path, "predictions")
    log.open()
    log.append([{"request_id": "r-before", "score": 0.25}])
    SegmentWriter(tmp_path, "predictions").append_batch(batch)
    log.close()
    log = AppendLog(tmp_path, "predictions")  # a new segment, after the batch's
    log.open()
    log.append([{"request_id": "r-after", "score": 0.75}])
    log.close()

    stats = ReadStats()
    got = list(read_records(tmp_path, "predictions", stats))
    assert [r["request_id"] for r in (got[0], got[-1])] == ["r-before", "r-after"]
    assert got[1:-1] == want
    assert [list(r) for r in got[1:-1]] == [list(r) for r in want]  # field order too
    assert all(type(r["features"]["income"]) is float for r in got[1:-1])
    assert stats.records == 502 and stats.segments == 3 and not stats.corrupt_lines
    (segment,) = tmp_path.glob("predictions-*.parquet")
    assert segment.stat().st_mode & 0o777 == 0o600  # personal data: the owner's only
    # A request id reads one batch (or one request) only, from the segment's footer.
    assert list(read_log(tmp_path, "predictions", query=LogQuery(request_id=BATCH))) == want
    after = read_log(tmp_path, "predictions", query=LogQuery(request_id="r-after"))
    assert [r["score"] for r in after] == [0.75]


def test_the_dashboard_summary_counts_a_batch_as_its_json_lines(tmp_path: Path) -> None:
    features, out = _scored(300)
    batch = log_records(labels_only_config(), features, out, BATCH)
    SegmentWriter(tmp_path / "columns", "predictions").append_batch(batch)
    lines = AppendLog(tmp_path / "lines", "predictions")
    lines.open()
    lines.append(list(batch.records()))
    lines.close()
    for model in (None, "m", "other"):
        columnar = summarize(tmp_path / "columns", model).to_dict()
        assert columnar == summarize(tmp_path / "lines", model).to_dict()
    assert columnar["records"] == 0 and summarize(tmp_path / "columns").records == 300


def test_batch_scoring_records_take_postgresql_copy_path() -> None:
    """Every column type batch scoring logs is one COPY carries (else row by row)."""
    features, out = _scored(20)
    batch = log_records(labels_only_config(), features, out, BATCH)
    columns = COLUMNS["predictions"]
    copy = plan(batch, "seamless_predictions", columns, _row(batch.constants, columns))
    assert copy is not None and "features" in copy.copy and "FORMAT binary" in copy.copy
    data = b"".join(copy.chunks())
    assert data.startswith(HEADER) and data.endswith(TRAILER)
    at, rows = len(HEADER), 0
    while (count := struct.unpack_from(">h", data, at)[0]) != -1:  # COPY's binary tuples
        at += 2
        assert count == len(columns) + 1  # and `extra`
        for _ in range(count):
            at += 4 + max(0, struct.unpack_from(">i", data, at)[0])
        rows += 1
    assert rows == 20 and at + 2 == len(data)


def test_a_failed_write_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    features, out = _scored(50)
    batch = log_records(labels_only_config(), features, out, BATCH)

    def half_then_fail(table: Any, where: Any, **_: Any) -> None:
        where.write(b"PAR1" + b"\0" * 1000)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_segment(tmp_path, "predictions", batch)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_segment_is_reported_not_read(tmp_path: Path) -> None:
    features, out = _scored(50)
    path = write_segment(
        tmp_path, "predictions", log_records(labels_only_config(), features, out, BATCH)
    )
    path.write_bytes(path.read_bytes()[:-200])
    stats = ReadStats()
    assert list(read_records(tmp_path, "predictions", stats)) == []
    assert stats.corrupt_lines and path.name in stats.corrupt_lines[0]
    assert summarize(tmp_path).records == 0


def _write_forever(directory: str) -> None:
    features, out = _scored(50_000)
    batch = log_records(labels_only_config(), features, out, BATCH)
    while True:
        write_segment(Path(directory), "predictions", batch)


def test_a_writer_killed_mid_segment_leaves_whole_segments_only(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_write_forever, args=(str(tmp_path),))
    child.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once a segment is done and the next begun
        assert child.is_alive(), f"the writer died on its own (exit code {child.exitcode})"
        if segments(tmp_path, "predictions") and any(
            p.name.endswith(".tmp") for p in tmp_path.iterdir()
        ):
            break
        time.sleep(0.01)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    done = segments(tmp_path, "predictions")
    stats = ReadStats()
    indexes = [r["index"] for r in read_records(tmp_path, "predictions", stats)]
    assert indexes == list(range(50_000)) * len(done) and not stats.corrupt_lines
