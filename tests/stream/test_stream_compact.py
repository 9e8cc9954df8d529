"""Compaction of the pushed-events log: the same rows (by event id and values) before
and after, the same training set, a crash at any point leaves a readable log without
repeated events, readers running during compactions never lose a row, and the
consumer compacts by itself after `compact_parts` parts."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import SeamlessConfig
from components.common.tables import content_hash
from components.features.features import build_features
from components.features.store import open_store
from components.stream import compaction, pushed
from components.stream.consumer import Consumer, StreamSettings
from components.stream.events import encode
from tests.helpers.cli import run_cli
from tests.helpers.mini_features import MINI
from tests.stream.world import (
    T1,
    build_repo,
    event,
    facts,
    killed_between_deletes,
    killed_while_writing,
)

pytestmark = [pytest.mark.slow, pytest.mark.stream]
VIEW = "facts_view"


def parts(repo: Path) -> list[Path]:
    return sorted(Path(pushed.pushed_root(repo, VIEW)).glob("*.parquet"))


def fill(repo: Path, config: SeamlessConfig, client: Any, stream: str, **kw: Any) -> Consumer:
    """Events for 40 customers in batches of 3: many parts, with late events, producer
    retries (duplicates) and one batch redone after a crash under another name."""
    start = datetime.now(UTC) - timedelta(hours=1)
    sent = []
    for r in range(3):
        for n in range(40):
            when = (start + timedelta(seconds=r * 600 + n)).isoformat()
            sent.append(event(f"c-{n}-{r}", 500 + n, when, score=float(r * 100 + n)))
    sent.append(event("c-late", 500, "2024-02-01T00:00:00Z", score=-1.0))  # late: offline only
    sent += sent[:5]  # retries
    with client.pipeline(transaction=False) as pipe:
        for e in sent:
            pipe.xadd(stream, encode(e))
        pipe.execute()
    settings = StreamSettings(stream=stream, batch=3, block_ms=100, **kw)
    worker = Consumer(config, repo, open_store(repo), client, settings)
    worker.run(idle_exit_s=0.5)
    # A batch written twice under two names (redone with other neighbours after a crash).
    rows = pushed.read_pushed(repo, VIEW)
    assert rows is not None
    again = rows.iloc[10:14][pushed.columns_of(config, VIEW)]
    pushed.write_part(config, repo, VIEW, again.iloc[1:])
    return worker


def filled(
    tmp_path: Path, config: SeamlessConfig, client: Any, stream: str
) -> tuple[Path, pd.DataFrame]:
    """A new repo whose pushed log `fill` wrote, and the rows it reads."""
    repo = build_repo(tmp_path, config, None)
    fill(repo, config, client, stream)
    before = pushed.read_pushed(repo, VIEW)
    assert before is not None
    return repo, before


def write_again(
    config: SeamlessConfig, repo: Path, rows: pd.DataFrame, n: int, event_id: str, stream_ms: int
) -> None:
    """A new one-row part as a consumer writes it: `rows`' row `n` again, as the event
    `event_id` at stream id `<stream_ms>-0`."""
    extra = rows.iloc[[n]][pushed.columns_of(config, VIEW)].copy()
    extra[pushed.EVENT_ID_COLUMN] = event_id
    extra[pushed.STREAM_ID_COLUMN] = f"{stream_ms}-0"
    pushed.write_part(config, repo, VIEW, extra)


def training(
    repo: Path, config: SeamlessConfig, now: pd.Timestamp
) -> tuple[pd.DataFrame, dict[str, Any]]:
    times = [T1 + pd.Timedelta(days=1)] * 2 + [pd.Timestamp("2024-02-02", tz="UTC")]
    labels = pd.DataFrame(
        {
            "customer_id": [1, 2, 500, 500, 520, 539],
            "event_timestamp": [*times, now, now, now],
            "defaulted": [0, 1, 0, 1, 0, 1],
        }
    )
    tables = {"facts": facts(), "labels": labels}
    hashes = {name: content_hash(df) for name, df in tables.items()}
    frame, info = build_features(config, tables, hashes, repo)
    return frame, info


def test_compaction_keeps_the_rows_and_the_training_set(
    stream_config: SeamlessConfig, client: Any, tmp_path: Path
) -> None:
    repo = build_repo(tmp_path, stream_config, None)
    fill(repo, stream_config, client, "s:compact")
    before_parts = parts(repo)
    assert len(before_parts) > 30
    before = pushed.read_pushed(repo, VIEW)
    assert before is not None and len(before) == 121  # 120 events + the late one, once each
    now = pd.Timestamp(datetime.now(UTC))
    train_before, info_before = training(repo, stream_config, now)

    done = compaction.compact(repo, VIEW)
    assert (done.parts_before, done.parts_merged, done.rows, done.kept) == (
        len(before_parts), len(before_parts), 121, 0
    )  # fmt: skip
    assert [p.name for p in parts(repo)] == [Path(str(done.merged)).name]
    after = pushed.read_pushed(repo, VIEW)
    pd.testing.assert_frame_equal(after, before)
    train_after, info_after = training(repo, stream_config, now)
    pd.testing.assert_frame_equal(train_after, train_before)
    assert info_after["pushed_rows"] == info_before["pushed_rows"] == {VIEW: 121}
    assert train_before["score"].tolist()[2] == -1.0  # the late event, at its own time
    # Nothing left to merge: one file stays as it is.
    assert compaction.compact(repo, VIEW).merged is None


def test_a_crash_in_the_middle_leaves_a_readable_log(
    stream_config: SeamlessConfig, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, before = filled(tmp_path, stream_config, client, "s:compact-crash")
    names = [p.name for p in parts(repo)]

    # Killed while writing the merged file, row groups into it (before its rename): the
    # parts are untouched and no file of it is left under a name readers read.
    with monkeypatch.context() as m, killed_while_writing(monkeypatch, after=2) as writes:
        m.setattr(compaction, "ROW_GROUP_ROWS", 20)
        with pytest.raises(KeyboardInterrupt, match="killed"):
            compaction.compact(repo, VIEW)
    assert len(writes) == 2
    assert [p.name for p in parts(repo)] == names
    assert sorted(p.name for p in Path(pushed.pushed_root(repo, VIEW)).iterdir()) == names

    # Killed after the rename, between the deletes: merged file + some parts.
    with killed_between_deletes(monkeypatch, after=5), pytest.raises(KeyboardInterrupt):
        compaction.compact(repo, VIEW)
    left = parts(repo)
    assert len(left) == len(names) - 5 + 1
    pd.testing.assert_frame_equal(pushed.read_pushed(repo, VIEW), before)
    # The next compaction finishes the job.
    done = compaction.compact(repo, VIEW)
    assert done.parts_merged == len(left) and len(parts(repo)) == 1
    pd.testing.assert_frame_equal(pushed.read_pushed(repo, VIEW), before)


def test_readers_during_compactions_never_lose_or_repeat_a_row(
    stream_config: SeamlessConfig, client: Any, tmp_path: Path
) -> None:
    repo, before = filled(tmp_path, stream_config, client, "s:compact-readers")
    stop = threading.Event()
    reads: list[int] = []
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = pushed.read_pushed(repo, VIEW)
            except Exception as exc:  # a part gone under the read, ...: a failure too
                failures.append(repr(exc))
                return
            if got is None or not got[pushed.EVENT_ID_COLUMN].is_unique:
                failures.append("repeated or empty")
                return
            known = got[got[pushed.EVENT_ID_COLUMN].isin(before[pushed.EVENT_ID_COLUMN])]
            if not known.reset_index(drop=True).equals(before):
                failures.append(f"lost rows: {len(known)} of {len(before)}")
                return
            reads.append(len(got))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for n in range(15):  # new parts (a consumer writing) and compactions, interleaved
        write_again(stream_config, repo, before, n, f"new-{n}", 9_000_000_000_000 + n)
        compaction.compact(repo, VIEW)
        # Let a read finish between compactions however slow the machine is (bounded).
        seen, deadline = len(reads), time.monotonic() + 30
        while len(reads) == seen and not failures and time.monotonic() < deadline:
            time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert len(reads) >= 5, reads
    final = pushed.read_pushed(repo, VIEW)
    assert final is not None and len(final) == len(before) + 15 and len(parts(repo)) == 1


def test_the_consumer_compacts_by_itself_and_the_cli_on_demand(
    stream_config: SeamlessConfig, client: Any, tmp_path: Path
) -> None:
    repo = build_repo(tmp_path, stream_config, None)
    worker = fill(repo, stream_config, client, "s:compact-auto", compact_parts=10)
    assert worker._parts_written[VIEW] < 10
    # 41 batches with rows -> compacted 4 times; at most 9 parts since, plus the extra.
    names = [p.name for p in parts(repo)]
    assert sum(n.startswith(pushed.COMPACTED_PREFIX) for n in names) == 1
    assert len(names) <= 11
    before = pushed.read_pushed(repo, VIEW)
    assert before is not None and len(before) == 121

    (tmp_path / "mini.yaml").write_text(MINI)
    done = run_cli(
        "stream", "compact", "--config", "mini.yaml", "--json", cwd=tmp_path,
        SEAMLESS_FEAST_REPO=str(repo),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert (result["view"], result["parts_merged"], result["rows"]) == (VIEW, len(names), 121)
    assert len(parts(repo)) == 1
    pd.testing.assert_frame_equal(pushed.read_pushed(repo, VIEW), before)
    bad = run_cli("stream", "compact", "--config", "mini.yaml", "--view", "nope", cwd=tmp_path,
                  SEAMLESS_FEAST_REPO=str(repo))  # fmt: skip
    assert bad.returncode == 1 and "'nope' is not a feature view" in bad.stderr, bad.stderr


def test_compactions_racing_each_other_lose_and_repeat_nothing(
    stream_config: SeamlessConfig, client: Any, tmp_path: Path
) -> None:
    # Two compactions at once (the consumer's and the CLI's), repeatedly, while new parts
    # arrive: one whose parts vanish or whose compacted files change under it starts
    # again; none fails, and the log reads the same rows plus the new ones.
    repo, before = filled(tmp_path, stream_config, client, "s:compact-race")
    failures: list[str] = []
    done: list[compaction.Compaction] = []

    def compactor() -> None:
        for _ in range(6):
            try:
                done.append(compaction.compact(repo, VIEW))
            except Exception as exc:
                failures.append(repr(exc))
                return

    threads = [threading.Thread(target=compactor) for _ in range(2)]
    for t in threads:
        t.start()
    for n in range(10):
        write_again(stream_config, repo, before, n, f"race-{n}", 9_100_000_000_000 + n)
        time.sleep(0.02)
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert sum(d.merged is not None for d in done) >= 2
    final = pushed.read_pushed(repo, VIEW)
    assert final is not None and final[pushed.EVENT_ID_COLUMN].is_unique
    assert len(final) == len(before) + 10
    known = final[final[pushed.EVENT_ID_COLUMN].isin(before[pushed.EVENT_ID_COLUMN])]
    pd.testing.assert_frame_equal(known.reset_index(drop=True), before)
    last = compaction.compact(repo, VIEW)
    assert len(parts(repo)) == 1 and last.rows in (0, len(final))
    for p in parts(repo):  # the merged file itself: each event id once, in stream order
        rows = pd.read_parquet(p)
        assert rows[pushed.EVENT_ID_COLUMN].is_unique and len(rows) == len(final)
        keys = rows[pushed.STREAM_ID_COLUMN].str.split("-", expand=True).astype("int64")
        assert keys.apply(tuple, axis=1).is_monotonic_increasing
