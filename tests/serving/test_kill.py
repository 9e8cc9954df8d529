"""`kill -9` under load: every acknowledged prediction is in the log, every record parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.predictions.files import read_records
from components.predictions.records import ReadStats
from components.serve.service import PREDICTIONS
from tests.serving.kill_load import kill_under_load

pytestmark = [pytest.mark.serving, pytest.mark.slow]


@pytest.mark.parametrize("sync", ["fsync", "write"])
def test_kill_9_under_load_loses_no_acknowledged_prediction(
    ws: Path, built: dict, tmp_path: Path, sync: str
) -> None:
    # `write` answers before the fsync: a killed process still loses nothing it
    # answered, since the lines are already in the OS's page cache.
    acked, _ = kill_under_load(
        ws, built["entities"], tmp_path / "serve-kill.log", extra_args=("--log-sync", sync)
    )

    stats = ReadStats()
    by_request: dict[str, list[int]] = {}
    for rec in read_records(ws / "predictions", PREDICTIONS, stats):
        assert {"request_id", "entity_id", "features", "score", "model_version", "ts"} <= set(rec)
        by_request.setdefault(rec["request_id"], []).append(rec["entity_id"])
    assert not stats.corrupt_lines, stats.corrupt_lines
    missing = [rid for rid, ids in acked if by_request.get(rid) != ids]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged requests not logged whole"
