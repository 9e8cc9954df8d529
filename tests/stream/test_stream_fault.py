"""kill -9 of `seamless stream consume` mid-stream, twice: restarted under the same name
it finishes its own pending entries; under a new name (a replacement pod) it takes them
over with XAUTOCLAIM. Every event ends up online and offline exactly once, counted once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from components.common.config import SeamlessConfig
from components.stream.consumer import StreamSettings, stored_counts
from components.stream.events import encode
from components.stream.pushed import read_pushed
from tests.helpers.mini_features import MINI
from tests.stream.world import event

pytestmark = [pytest.mark.slow, pytest.mark.stream]

STREAM = "s:fault"
ENTITIES = range(1000, 1400)
ROUNDS = 4  # events per entity, each newer than the last
REPEATS = 150  # producer retries: the same event id sent again


@pytest.fixture()
def cli(tmp_path: Path, redis_repo: Path, redis: Any) -> Iterator[Any]:
    config = tmp_path / "mini.yaml"
    config.write_text(MINI)
    env = {**os.environ, "SEAMLESS_FEAST_REPO": str(redis_repo), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []

    def start(consumer: str, *extra: str) -> subprocess.Popen[bytes]:
        args = [
            sys.executable, "-m", "pipelines.cli", "stream", "consume", "--config", str(config),
            "--workspace", str(tmp_path / "ws"), "--redis-url",
            f"redis://{redis.host}:{redis.port}/0", "--stream", STREAM, "--batch", "25",
            "--consumer", consumer, *extra,
        ]  # fmt: skip
        log = (tmp_path / f"{consumer}-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_mid_batch(client: Any, handled: int, proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL once `handled` events are counted and a batch is in hand (read, not yet
    acknowledged); returns the entries it left pending."""
    deadline = time.monotonic() + 120
    while (
        sum(stored_counts(client, StreamSettings(stream=STREAM)).values()) < handled
        or client.xpending(STREAM, "seamless-stream")["pending"] == 0
    ):
        assert proc.poll() is None, f"consumer exited early ({proc.returncode})"
        assert time.monotonic() < deadline, "consumer made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return int(client.xpending(STREAM, "seamless-stream")["pending"])


def test_kill_9_loses_nothing_and_counts_nothing_twice(
    cli: Any, client: Any, redis_repo: Path, stream_config: SeamlessConfig, tmp_path: Path
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    sent: list[dict[str, Any]] = []
    for r in range(ROUNDS):
        for n, entity in enumerate(ENTITIES):
            when = (start + timedelta(seconds=r * 600 + n)).isoformat()
            sent.append(event(f"f-{entity}-{r}", entity, when, score=float(r * 10_000 + entity)))
    retries = sent[: REPEATS * 7 : 7]
    with client.pipeline(transaction=False) as pipe:
        for e in [*sent, *retries]:
            pipe.xadd(STREAM, encode(e))
        pipe.execute()
    total = len(sent) + len(retries)

    left = kill_mid_batch(client, total // 3, cli("pod-a"))
    # Same name: it finishes its own pending entries first.
    left += kill_mid_batch(client, 2 * total // 3, cli("pod-a"))
    # A replacement pod under a new name takes the dead one's entries over.
    last = cli("pod-b", "--claim-idle-s", "0.5", "--idle-exit-s", "3", "--json")
    assert last.wait(timeout=180) == 0, (tmp_path / "pod-b-2.log").read_text()[-2000:]
    log = (tmp_path / "pod-b-2.log").read_text()
    summary = json.loads(log[log.index("{") :])
    assert left > 0 and summary["redelivered"] > 0, (left, summary)

    counts = stored_counts(client, StreamSettings(stream=STREAM))
    assert sum(counts.values()) == total, counts
    assert counts["duplicate"] == len(retries) and counts["malformed"] == 0
    assert counts["written"] + counts["late"] == len(sent)
    assert client.xpending(STREAM, "seamless-stream")["pending"] == 0
    offline = read_pushed(redis_repo, "facts_view")
    ids = offline[offline["_event_id"].str.startswith("f-")]["_event_id"]
    assert sorted(ids) == sorted(e["event_id"] for e in sent)  # each exactly once
    from components.features.features import online_features

    online = online_features(redis_repo, stream_config, list(ENTITIES))
    newest = [float((ROUNDS - 1) * 10_000 + e) for e in ENTITIES]
    assert online["score"].tolist() == newest
