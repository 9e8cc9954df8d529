"""Event ids are claimed atomically (SET NX, real redis-server): two consumers of one
group racing on the same new event id write it once and count it once, and a consumer
that dies after its claim, before its writes and XACK, loses nothing: its entry,
redelivered, owns the claim and is written then."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import SeamlessConfig
from components.features.features import online_features
from components.features.store import open_store
from components.stream.consumer import Consumer, StreamSettings, ensure_group, stored_counts
from components.stream.events import encode
from components.stream.pushed import EVENT_ID_COLUMN, pushed_root, read_pushed
from tests.stream.world import event

pytestmark = [pytest.mark.slow, pytest.mark.stream]


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def raw_rows(repo: Path, prefix: str) -> pd.Series:
    """Every row of every pushed part whose event id starts with `prefix`, before the
    readers' dedupe: what was written, not what is read."""
    frames = [pd.read_parquet(io.BytesIO(p.read_bytes()))
              for p in Path(pushed_root(repo, "facts_view")).glob("*.parquet")]  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    return out[out[EVENT_ID_COLUMN].str.startswith(prefix)][EVENT_ID_COLUMN]


def consumer(repo: Path, config: SeamlessConfig, client: Any, stream: str, name: str,
             **kw: Any) -> Consumer:  # fmt: skip
    settings = StreamSettings(stream=stream, consumer=name, block_ms=100, **kw)
    return Consumer(config, repo, open_store(repo), client, settings)


def sent_twice_to_two(
    repo: Path, config: SeamlessConfig, client: Any, stream: str, e: dict[str, Any]
) -> tuple[Consumer, Consumer]:
    """`e` sent twice on `stream` (two producers), and two consumers of one group on it,
    `pod-a` and `pod-b`, reading one entry at a time."""
    client.xadd(stream, encode(e))
    client.xadd(stream, encode(e))
    a = consumer(repo, config, client, stream, "pod-a", batch=1)
    b = consumer(repo, config, client, stream, "pod-b", batch=1)
    ensure_group(client, a.s)
    return a, b


def read_one(c: Consumer) -> list[tuple[str, dict[str, str] | None]]:
    entries = c._new(100)
    assert len(entries) == 1
    return entries


def test_two_consumers_racing_on_one_new_event_id_write_it_once(
    redis_repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    stream = "s:race"
    e = event("race-1", 31, ago(20), score=6.5, tier="r")
    a, b = sent_twice_to_two(redis_repo, stream_config, client, stream, e)
    batches = {a: read_one(a), b: read_one(b)}  # each holds one copy
    # Both have checked their event; both claim at the same moment.
    gate = threading.Barrier(2)
    for c in (a, b):
        claim = c._claim_ids

        def at_once(good: Any, claim: Any = claim) -> Any:
            gate.wait(timeout=10)
            return claim(good)

        c._claim_ids = at_once  # type: ignore[method-assign]
    results: dict[Consumer, Any] = {}
    threads = [
        threading.Thread(target=lambda c=c: results.__setitem__(c, c.handle(batches[c], False)))
        for c in (a, b)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted((r.written, r.duplicate) for r in results.values()) == [(0, 1), (1, 0)]
    counts = stored_counts(client, a.s)
    assert (counts["written"], counts["duplicate"]) == (1, 1), counts
    assert raw_rows(redis_repo, "race-1").tolist() == ["race-1"]  # one row written, not two
    assert online_features(redis_repo, stream_config, [31])["score"].tolist() == [6.5]
    assert client.xpending(stream, a.s.group)["pending"] == 0


def test_many_ids_sent_twice_to_two_consumers_running_at_once(
    redis_repo: Path, stream_config: SeamlessConfig, redis: Any
) -> None:
    import redis as redis_py

    stream, ids = "s:race-many", 300
    clients = [
        redis_py.Redis(host=redis.host, port=redis.port, decode_responses=True) for _ in range(3)
    ]
    with clients[0].pipeline(transaction=False) as pipe:
        for n in range(ids):
            for _ in range(2):  # two producers, one after the other: the copies are adjacent
                pipe.xadd(stream, encode(event(f"many-{n}", 2000 + n, ago(30), score=float(n))))
        pipe.execute()
    workers = [
        consumer(redis_repo, stream_config, clients[i + 1], stream, f"pod-{i}", batch=7)
        for i in range(2)
    ]
    ensure_group(clients[0], workers[0].s)
    threads = [threading.Thread(target=w.run, kwargs={"idle_exit_s": 1.0}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # Both took part; every id is written exactly once and counted once.
    assert all(w.counts.events for w in workers), [w.counts.summary() for w in workers]
    counts = stored_counts(clients[0], workers[0].s)
    assert counts["written"] + counts["late"] == ids and counts["duplicate"] == ids, counts
    rows = raw_rows(redis_repo, "many-")
    assert len(rows) == ids and rows.nunique() == ids
    for c in clients:
        c.close()


def test_a_consumer_dead_after_its_claim_loses_nothing(
    redis_repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    stream = "s:claim-crash"
    e = event("crash-1", 41, ago(20), score=8.25, tier="k")
    a, b = sent_twice_to_two(redis_repo, stream_config, client, stream, e)
    first = read_one(a)

    def killed(_accepted: Any) -> None:
        raise RuntimeError("killed after the claim, before the writes")

    a._write_offline = killed  # type: ignore[assignment,method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        a.handle(first, redelivered=False)
    assert client.get(a.s.seen_key("crash-1")) == first[0][0]  # claimed by the dead one
    # The second copy, at another consumer meanwhile: a duplicate, acknowledged.
    done = b.handle(read_one(b), redelivered=False)
    assert (done.duplicate, done.written) == (1, 0)
    offline = read_pushed(redis_repo, "facts_view")
    assert offline is None or "crash-1" not in set(offline[EVENT_ID_COLUMN])
    assert client.xpending(stream, a.s.group)["pending"] == 1  # the dead one's entry
    # A replacement pod takes the entry over (XAUTOCLAIM): it owns the claim, writes it.
    c = consumer(redis_repo, stream_config, client, stream, "pod-c", claim_idle_ms=0)
    again = c.poll()
    assert (again.written, again.duplicate, again.redelivered) == (1, 0, 1), again.summary()
    counts = stored_counts(client, a.s)
    assert (counts["written"], counts["duplicate"]) == (1, 1), counts
    assert raw_rows(redis_repo, "crash-1").tolist() == ["crash-1"]
    assert online_features(redis_repo, stream_config, [41])["score"].tolist() == [8.25]
    assert client.xpending(stream, a.s.group)["pending"] == 0


def test_an_entry_taken_over_from_a_slow_consumer_is_counted_once(
    redis_repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    # pod-a reads a batch and stalls past the claim time; pod-b takes the entries over
    # (XAUTOCLAIM), writes and acknowledges them; then pod-a finishes its stale copy.
    stream = "s:slow"
    for n in range(3):
        client.xadd(stream, encode(event(f"slow-{n}", 51 + n, ago(20), score=float(n))))
    a = consumer(redis_repo, stream_config, client, stream, "pod-a", batch=3)
    b = consumer(redis_repo, stream_config, client, stream, "pod-b", claim_idle_ms=0)
    ensure_group(client, a.s)
    stale = a._new(100)
    assert len(stale) == 3
    taken = b.poll()
    assert (taken.written, taken.redelivered) == (3, 3), taken.summary()
    late = a.handle(stale, redelivered=False)
    assert late.events == 0 and not late.freshness_s, late.summary()  # not its outcomes
    counts = stored_counts(client, a.s)
    assert counts == {"written": 3, "late": 0, "duplicate": 0, "malformed": 0}, counts
    assert sorted(raw_rows(redis_repo, "slow-").unique()) == ["slow-0", "slow-1", "slow-2"]
    assert client.xpending(stream, a.s.group)["pending"] == 0
