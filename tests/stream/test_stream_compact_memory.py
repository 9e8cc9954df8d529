"""Compaction's memory does not grow with the pushed-events log: measured (tracemalloc
plus Arrow's pool peak, each in a fresh process: tests/stream/peak.py) on a log of 40
parts and one of 240, beside `read_pushed` of the same logs (which holds the whole log,
by design) as the same-run reference. The logs are written the way a busy stream
writes them: two consumers whose parts interleave by stream id, batches redone under
another name (the same entries twice) and producer retries past the claims' lifetime
(one event id under two stream ids, the first of which readers keep)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import SeamlessConfig
from components.stream import compaction, pushed

pytestmark = [pytest.mark.slow, pytest.mark.stream]
VIEW = "facts_view"
ROWS = 1000
"""Rows per part (a consumer's batch)."""
ROOT = Path(__file__).resolve().parents[2]


def _part(config: SeamlessConfig, repo: Path, ms: list[int], ids: list[str]) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [m % 5000 for m in ms],
            "event_timestamp": pd.to_datetime([m for m in ms], unit="ms", utc=True),
            "score": [float(m % 997) for m in ms],
            "tier": [f"tier-{m:x}-" * 8 for m in ms],  # ~150 bytes: a row of some width
            pushed.EVENT_ID_COLUMN: ids,
            pushed.STREAM_ID_COLUMN: [f"{m}-0" for m in ms],
        }
    )
    frame["tier"] = frame["tier"].astype("object")
    pushed.write_part(config, repo, VIEW, frame[pushed.columns_of(config, VIEW)])


def write_log(config: SeamlessConfig, repo: Path, n_parts: int) -> None:
    """`n_parts` parts of `ROWS` rows from two interleaving consumers (A: even, B: odd
    stream ids of each span), every 10th part holding 20 retries of earlier event ids
    under new stream ids, and every 25th part redone under another name (its first 100
    entries again)."""
    base = 1_700_000_000_000
    for k in range(n_parts):
        span, side = divmod(k, 2)
        ms = [base + span * 2 * ROWS + i for i in range(side, 2 * ROWS, 2)]
        ids = [f"ev-{m}" for m in ms]
        if k % 10 == 9:
            ids[:20] = [f"ev-{base + (span - 1) * 2 * ROWS + i}" for i in range(20)]
        _part(config, repo, ms, ids)
        if k % 25 == 24:
            _part(config, repo, ms[:100], ids[:100])


def probe(mode: str, repo: Path, module: str = "") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.stream.peak", mode, str(repo), VIEW, module],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_compaction_memory_does_not_grow_with_the_log(
    stream_config: SeamlessConfig, tmp_path: Path
) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    write_log(stream_config, small, 40)
    write_log(stream_config, large, 240)
    before = pushed.read_pushed(small, VIEW)
    assert before is not None and before[pushed.EVENT_ID_COLUMN].is_unique
    read_small, read_large = probe("read", small), probe("read", large)
    compact_small, compact_large = probe("compact", small), probe("compact", large)
    mib = {
        name: round(p["peak"] / 2**20, 1)
        for name, p in [("read 40", read_small), ("read 240", read_large),
                        ("compact 40", compact_small), ("compact 240", compact_large)]
    }  # fmt: skip
    print(json.dumps({"peak_mib": mib, "held_rows": compact_large["held_rows"]}))

    # The same rows as readers get (the retries dropped: first stream entry wins).
    assert compact_large["rows"] == read_large["rows"] and compact_small["rows"] == len(before)
    pd.testing.assert_frame_equal(pushed.read_pushed(small, VIEW), before)
    assert len(list(Path(pushed.pushed_root(small, VIEW)).glob("*.parquet"))) == 1
    # The reference grows with the log (6x the parts) ...
    assert read_large["peak"] > 4 * read_small["peak"], mib
    # ... compaction does not: a row group being written and the parts overlapping the
    # merge's position (two consumers), plus 8 bytes per event for the repeats' check.
    assert compact_large["held_rows"] <= compaction.ROW_GROUP_ROWS + 4 * ROWS
    assert compact_large["peak"] < 1.6 * compact_small["peak"], mib
    assert compact_large["peak"] < read_large["peak"] / 4, mib
