"""Benchmark: the stream consumer into a Redis online store, against Feast's own write.

One run, on a throwaway `redis-server` on loopback and the features stage's mini world
(tests/stream/world.py) published with that Redis as the online store. Cases:

- `feast-direct` (the baseline): the same events, already parsed, written with
  `FeatureStore.write_to_online_store` in batches of `--batch`; no stream, no checks;
- `consumer-online`: `--events` events pre-loaded into a stream, drained by the
  consumer with `offline=False` (check, dedupe, late rule, push, ack + counters);
- `consumer`: the same with the offline pushed-events log written too (the default);
- `freshness`: a producer sends `--rate` events/s for `--seconds`, each stamped with its
  send time, while the consumer runs; freshness is event time -> end of the online
  write (serving reads the store directly, so the value is servable from then on).

Usage: python benchmarks/streaming.py [--events 20000] [--batch 500] [--rate 1000]
       [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.common.env import disable_telemetry  # noqa: E402
from components.stream.consumer import Consumer, Counts, StreamSettings  # noqa: E402
from components.stream.events import encode  # noqa: E402
from tests.helpers.postgres import free_port  # noqa: E402
from tests.serving.redis_store import RedisServer  # noqa: E402
from tests.stream.world import STREAM_CONFIG, build_repo, event  # noqa: E402


def events(n: int, tag: str, when: datetime | None = None) -> list[dict[str, str]]:
    stamp = (when or datetime.now(UTC)).isoformat()
    return [
        encode(event(f"{tag}-{i}", 10_000 + i, stamp, score=float(i), tier="t")) for i in range(n)
    ]


def fill(client: Any, stream: str, entries: list[dict[str, str]]) -> None:
    for start in range(0, len(entries), 5000):
        with client.pipeline(transaction=False) as pipe:
            for fields in entries[start : start + 5000]:
                pipe.xadd(stream, fields)
            pipe.execute()


def drain(repo: Path, client: Any, stream: str, batch: int, offline: bool) -> tuple[float, Counts]:
    from components.features.store import open_store

    settings = StreamSettings(stream=stream, batch=batch, block_ms=50, offline=offline)
    consumer = Consumer(STREAM_CONFIG(), repo, open_store(repo), client, settings)
    started = time.perf_counter()
    done = consumer.run(idle_exit_s=0.3)
    return time.perf_counter() - started - 0.3, done


def feast_direct(repo: Path, n: int, batch: int) -> float:
    import pandas as pd

    from components.features.store import open_store

    store = open_store(repo)
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame(
        {
            "customer_id": range(20_000, 20_000 + n),
            "event_timestamp": [now] * n,
            "score": [float(i) for i in range(n)],
            "tier": ["t"] * n,
        }
    )
    started = time.perf_counter()
    for lo in range(0, n, batch):
        store.write_to_online_store("facts_view", frame.iloc[lo : lo + batch])
    return time.perf_counter() - started


def freshness(repo: Path, client: Any, batch: int, rate: int, seconds: float) -> Counts:
    from components.features.store import open_store

    stream = "bench:fresh"
    settings = StreamSettings(stream=stream, batch=batch, block_ms=20)
    consumer = Consumer(STREAM_CONFIG(), repo, open_store(repo), client, settings)
    stop = threading.Event()
    result: list[Counts] = []
    worker = threading.Thread(target=lambda: result.append(consumer.run(stop=stop.is_set)))
    worker.start()
    sent, tick, started = 0, 0.01, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate) - sent
        if due > 0:
            fill(client, stream, [
                encode(event(f"fr-{sent + i}", 40_000 + (sent + i) % 5000,
                             datetime.now(UTC).isoformat(), score=float(sent + i)))
                for i in range(due)
            ])  # fmt: skip
            sent += due
        time.sleep(tick)
    time.sleep(1.0)
    stop.set()
    worker.join()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    disable_telemetry()
    import redis

    with tempfile.TemporaryDirectory(prefix="seamless-stream-bench-") as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        server = RedisServer(root / "redis", free_port())
        server.start()
        try:
            repo = build_repo(root, STREAM_CONFIG(), server.connection_string)
            client = redis.Redis(host=server.host, port=server.port, decode_responses=True)
            n, b = args.events, args.batch
            out: dict[str, Any] = {"events": n, "batch": b}
            base = feast_direct(repo, n, b)
            out["feast-direct"] = {"seconds": round(base, 3), "events_per_s": round(n / base)}
            for case, offline in (("consumer-online", False), ("consumer", True)):
                fill(client, f"bench:{case}", events(n, case))
                secs, done = drain(repo, client, f"bench:{case}", b, offline)
                assert done.written == n, done.summary()
                out[case] = {
                    "seconds": round(secs, 3),
                    "events_per_s": round(n / secs),
                    "vs_feast_direct": round(base / secs, 3),
                }
            fresh = freshness(repo, client, b, args.rate, args.seconds)
            out["freshness"] = {
                "rate": args.rate,
                "seconds": args.seconds,
                **{k: v for k, v in fresh.summary().items() if k != "batches"},
            }
        finally:
            server.stop()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{n} events, batches of {b}, redis-server on loopback")
    for case in ("feast-direct", "consumer-online", "consumer"):
        row = out[case]
        ratio = f" ({row['vs_feast_direct']:.2f}x feast-direct)" if "vs_feast_direct" in row else ""
        print(f"  {case:16} {row['events_per_s']:>8,} events/s  {row['seconds']:7.2f} s{ratio}")
    f = out["freshness"]
    print(
        f"  freshness at {f['rate']} events/s for {f['seconds']:g} s: {f['written']} written, "
        f"p50 {f['freshness_p50_s']} s, p99 {f['freshness_p99_s']} s"
    )


if __name__ == "__main__":
    main()
