"""The prediction-log summary on the cluster's log, a PostgreSQL table (a real server from
Debian's binaries): the same numbers as from the records themselves, computed by the
server over the newest rows only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from components.predictions.postgres import PgLog
from components.predictions.summary import summarize
from tests.helpers.postgres import PostgresServer, pg_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["pg_server"]


def test_summary_is_aggregated_by_the_server(pg_server: PostgresServer) -> None:
    url = pg_server.url()
    rng = np.random.default_rng(3)
    start = datetime(2026, 1, 1, 22, 30, tzinfo=UTC)
    records = [
        {
            "ts": (start + timedelta(minutes=2 * i)).isoformat(),
            "request_id": f"r{i}",
            "index": 0,
            "entity_id": i,
            "route": "/v1/predict",
            "model_name": "m" if i % 5 else "other",
            "model_version": str(1 + i // 60),
            "features": {"x": i},
            "score": float(rng.random()),
            "decision": False,
        }
        for i in range(120)
    ]
    assert summarize(url, "m").records == 0  # no table yet: an empty log
    log = PgLog(url, "predictions")
    log.open()
    log.append(records)
    log.close()

    mine = [r for r in records if r["model_name"] == "m"]
    found = summarize(url, "m")
    assert found.records == len(mine) and found.complete
    assert found.score_bins == np.histogram([r["score"] for r in mine], 10, (0, 1))[0].tolist()
    assert found.per_version == {"1": 48, "2": 48}
    assert sum(found.per_hour.values()) == len(mine)
    assert min(found.per_hour) == "2026-01-01T22" and max(found.per_hour) == "2026-01-02T02"
    assert found.first_ts == mine[0]["ts"] and found.last_ts == mine[-1]["ts"]
    # Bounded: only the newest rows, and it says the rest exists.
    newest = summarize(url, "m", max_records=10)
    assert newest.records == 10 and not newest.complete
    assert newest.per_version == {"2": 10}
