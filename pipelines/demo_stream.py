"""The demo loop's streaming step: one customer's credit history changes by an event on a
Redis stream, `seamless stream consume`'s consumer pushes it into the online store, and the
running `seamless serve` scores the customer on the new values at once (docs/streaming.md).

It needs a `redis-server` binary (Debian's `redis-server`); without one the step says so and
is skipped. The server is this step's own: loopback, a free port, no persistence.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.net import free_port

VIEW = "credit_history"
CHANGED = ("delinquencies_12m", "credit_utilization", "credit_score")


def riskier(current: dict[str, Any]) -> dict[str, Any]:
    """What a new delinquency report would bring: three more delinquencies, the credit
    lines nearly used up, a lower score."""
    return {
        "delinquencies_12m": int(current["delinquencies_12m"] or 0) + 3,
        "credit_utilization": 0.97,
        "credit_score": max(300, int(current["credit_score"] or 600) - 80),
    }


@contextmanager
def local_redis() -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1; yields its URL."""
    exe = shutil.which("redis-server") or "redis-server"
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="seamless-demo-redis-"))
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SeamlessError("The demo's redis-server did not start.") from None
                time.sleep(0.1)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def stream_step(
    config: SeamlessConfig,
    repo: Path,
    customer: Any,
    score: Callable[[Any], float],
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """Push riskier credit-history values for `customer` through a Redis stream and the
    consumer; `score(customer)` asks serving before and after. None when skipped."""
    view = next((v for v in config.features.views if v.name == VIEW), None)
    if view is None or not set(CHANGED) <= set(view.features):
        say(f"    skipped: the config has no view {VIEW} with {list(CHANGED)}")
        return None
    if shutil.which("redis-server") is None:
        say("    skipped: no redis-server on PATH (Debian: apt-get install redis-server)")
        return None
    with local_redis() as url:
        return _push_and_score(config, repo, view.features, customer, score, url)


def _push_and_score(
    config: SeamlessConfig,
    repo: Path,
    features: list[str],
    customer: Any,
    score: Callable[[Any], float],
    url: str,
) -> dict[str, Any]:
    import redis
    from feast.online_response import TIMESTAMP_POSTFIX

    from components.features.store import open_store
    from components.stream.consumer import Consumer, StreamSettings
    from components.stream.events import encode

    store = open_store(repo)
    got = store.get_online_features(
        features=[f"{VIEW}:{f}" for f in features], entity_rows=[{config.entity_key(): customer}]
    ).to_dict(include_event_timestamps=True)
    current = {f: got[f][0] for f in features}
    stored_at = max(got[f + TIMESTAMP_POSTFIX][0] for f in features)
    # The generated data runs ahead of the clock (to the end of its drifted period), so
    # the event comes a minute after the customer's latest record, not at `now`: an
    # event older than the stored value would be late, and never replace it online.
    when = max(datetime.now(UTC), datetime.fromtimestamp(stored_at, UTC) + timedelta(minutes=1))
    ahead_s = (when - datetime.now(UTC)).total_seconds()
    before = score(customer)
    event = {
        "event_id": f"demo-{uuid.uuid4().hex[:12]}",
        "view": VIEW,
        config.entity_key(): customer,
        "event_timestamp": when.isoformat(),
        **current,
        **riskier(current),
    }
    client: Any = redis.Redis.from_url(url, decode_responses=True)
    settings = StreamSettings(
        stream="seamless:features", block_ms=200, max_future_s=max(300.0, ahead_s + 300)
    )
    client.xadd(settings.stream, encode(event))
    done = Consumer(config, repo, store, client, settings).run(max_events=1, idle_exit_s=5)
    if done.written != 1:
        letters = client.xrevrange(settings.dead_letter, count=1)
        why = letters[0][1].get("error", "") if letters else ""
        raise SeamlessError(f"The demo's event was not written ({done.summary()}): {why}")
    client.close()
    return {
        "customer": customer,
        "written": done.written,
        "before": {f: current[f] for f in CHANGED},
        "after": {f: event[f] for f in CHANGED},
        "score_before": before,
        "score_after": score(customer),
    }
