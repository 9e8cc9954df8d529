"""`kill -9` of a real serving process under load, logging to PostgreSQL: every
acknowledged request is in the table, whole (the analogue of test_kill.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.predictions.reader import read_log
from components.predictions.records import ReadStats
from components.serve.service import PREDICTIONS
from tests.helpers.postgres import PostgresServer, pg_server
from tests.serving.kill_load import kill_under_load
from tests.serving.pg_control import fresh_database

__all__ = ["pg_server"]
pytestmark = [pytest.mark.serving, pytest.mark.postgres, pytest.mark.slow]


def test_kill_9_under_load_every_acknowledged_prediction_is_in_postgres(
    pg_server: PostgresServer, ws: Path, built: dict, tmp_path: Path
) -> None:
    fresh_database(pg_server, "killed")
    # No password in the URL (it would show in `ps`): libpq takes it from PGPASSWORD.
    url = f"postgresql://{pg_server.user}@{pg_server.host}:{pg_server.port}/killed"
    acked, pid = kill_under_load(
        ws, built["entities"], tmp_path / "serve-pg-kill.log",
        extra_args=("--log-url", url), env={**os.environ, "PGPASSWORD": pg_server.password},
        threads=6, min_acked=150,
    )  # fmt: skip

    stats = ReadStats()
    by_request: dict[str, list[int]] = {}
    for rec in read_log(url.replace("@", f":{pg_server.password}@"), PREDICTIONS, stats):
        assert {"request_id", "entity_id", "features", "score", "model_version", "ts"} <= set(rec)
        by_request.setdefault(rec["request_id"], []).append(rec["entity_id"])
    missing = [rid for rid, ids in acked if by_request.get(rid) != ids]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged requests not logged whole"
    # At most the requests in flight are in the table without an answer (one per thread).
    unanswered = set(by_request) - {rid for rid, _ in acked}
    assert len(unanswered) <= 6, len(unanswered)
    assert not (ws / "predictions").exists() or not any(
        str(pid) in p.name for p in (ws / "predictions").iterdir()
    ), "the killed server wrote the file log instead of PostgreSQL"
