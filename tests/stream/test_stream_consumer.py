"""The stream consumer against a real redis-server and Feast (online store on that Redis,
and on SQLite): every event ends in one counted outcome, pushed values are served at
once, late events never replace newer values online, the snapshot stays untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from components.common.config import SeamlessConfig
from components.features.features import online_features
from components.features.store import open_store
from components.stream.consumer import Consumer, Counts, StreamSettings, stored_counts
from components.stream.events import encode
from components.stream.pushed import read_pushed
from tests.stream.world import build_repo, digest, event

pytestmark = [pytest.mark.slow, pytest.mark.stream]


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def consume(repo: Path, config: SeamlessConfig, client: Any, stream: str) -> Counts:
    settings = StreamSettings(stream=stream, block_ms=100)
    return Consumer(config, repo, open_store(repo), client, settings).run(idle_exit_s=0.5)


def send(client: Any, stream: str, *events: dict[str, Any] | str) -> None:
    for e in events:
        client.xadd(stream, {"event": e} if isinstance(e, str) else encode(e))


def served(repo: Path, config: SeamlessConfig, ids: list[int]) -> list[list[Any]]:
    """What serving's own lookup (direct online-store reads) returns for `ids`."""
    from components.serve.lookup.features import OnlineFeatures

    return OnlineFeatures(repo, config).fetch_rows(ids)


def test_an_event_is_served_at_once_and_kept_offline(
    redis_repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    snapshots = sorted((redis_repo / "data" / "facts").glob("*.parquet"))
    before = {p.name: digest(p) for p in snapshots}
    send(client, "s:served", event("srv-1", 1, ago(30), score=9.5, tier="gold"))
    done = consume(redis_repo, stream_config, client, "s:served")
    assert (done.written, done.events) == (1, 1), done.summary()
    assert served(redis_repo, stream_config, [1]) == [[9.5, "gold"]]
    sdk = online_features(redis_repo, stream_config, [1, 2])
    assert sdk["score"].tolist() == [9.5, 5.0]  # customer 2 keeps its materialized value
    offline = read_pushed(redis_repo, "facts_view")
    row = offline[offline["_event_id"] == "srv-1"]
    assert row["score"].tolist() == [9.5] and row["customer_id"].tolist() == [1]
    # The ingest snapshot the registry and lineage point at is not touched.
    assert {p.name: digest(p) for p in snapshots} == before
    assert done.freshness_s and 25 < done.freshness_s[0] < 120
    assert client.xpending("s:served", "seamless-stream")["pending"] == 0


def test_each_event_has_one_counted_outcome(
    redis_repo: Path, stream_config: SeamlessConfig, client: Any
) -> None:
    stream = "s:outcomes"
    send(
        client, stream,
        event("o-1", 2, ago(60), score=1.0),  # written
        event("o-1", 2, ago(60), score=1.0),  # same id again (a producer retry): duplicate
        event("o-2", 2, ago(120), score=2.0),  # older than o-1, same entity: late
        event("o-3", 2, "2024-01-01T00:00:00Z", score=3.0),  # older than the batch load: late
        event("o-4", 2, ago(10), score="high"),  # malformed: bad type
        event("o-5", 2, "noon"),  # malformed: bad timestamp
        json.dumps({"event_id": "o-6", "view": "facts_view"}),  # malformed: no entity key
        event("o-7", 2, ago(10), colour="red"),  # malformed: unknown feature
    )  # fmt: skip
    done = consume(redis_repo, stream_config, client, stream)
    counts = {"written": 1, "late": 2, "duplicate": 1, "malformed": 4}
    assert {k: getattr(done, k) for k in counts} == counts
    assert stored_counts(client, StreamSettings(stream=stream)) == counts
    # The newest value is online; late ones did not replace it.
    assert served(redis_repo, stream_config, [2]) == [[1.0, "c"]]
    # Late events are history: offline at their own times, for training.
    offline = read_pushed(redis_repo, "facts_view")
    assert set(offline["_event_id"]) >= {"o-1", "o-2", "o-3"}
    assert (offline["_event_id"] == "o-1").sum() == 1
    letters = client.xrange(f"{stream}:dead")
    errors = [f["error"] for _, f in letters]
    assert len(errors) == 4
    assert "'score' must be float" in errors[0]
    assert "'event_timestamp' 'noon' is not an ISO 8601 time" in errors[1]
    assert "the entity key 'customer_id' is missing" in errors[2]
    assert "'colour' is not a feature of view 'facts_view'" in errors[3]
    assert json.loads(letters[0][1]["event"])["event_id"] == "o-4"  # the event, kept as sent
    # The same event id in a later batch is still a duplicate; nothing is pending.
    send(client, stream, event("o-1", 2, ago(5), score=7.0))
    again = consume(redis_repo, stream_config, client, stream)
    assert (again.duplicate, again.written) == (1, 0)
    assert served(redis_repo, stream_config, [2]) == [[1.0, "c"]]
    assert client.xpending(stream, "seamless-stream")["pending"] == 0


def test_sqlite_online_store_keeps_the_newest_value_too(
    stream_config: SeamlessConfig, client: Any, tmp_path: Path
) -> None:
    # Feast's SQLite store overwrites whatever it is given; the consumer's own rule
    # keeps a late event out, as Redis' store would.
    repo = build_repo(tmp_path, stream_config, None)
    stream = "s:sqlite"
    send(client, stream, event("q-1", 1, ago(60), score=4.0), event("q-2", 1, ago(600), score=8.0))
    done = consume(repo, stream_config, client, stream)
    assert (done.written, done.late) == (1, 1)
    assert served(repo, stream_config, [1]) == [[4.0, "c"]]
    assert online_features(repo, stream_config, [1])["score"].tolist() == [4.0]


def _pii_config() -> SeamlessConfig:
    """The mini world with the entity key tagged `pii: pseudonymize` in every table."""
    import yaml

    from components.common.config import parse_config
    from tests.helpers.mini_features import MINI

    raw = yaml.safe_load(MINI)
    for table in raw["tables"].values():
        table["columns"]["customer_id"] = {"type": "int", "pii": "pseudonymize"}
    return parse_config(yaml.safe_dump(raw), origin="mini-pii.yaml")


def test_a_pseudonymized_entity_key_reaches_the_stores_as_pseudonyms_only(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.common.errors import SeamlessError
    from components.common.pii import Pseudonymizer

    config = _pii_config()
    repo = build_repo(tmp_path, config, None)
    settings = StreamSettings(stream="s:pii", block_ms=100)
    monkeypatch.delenv("SEAMLESS_PII_KEY", raising=False)
    with pytest.raises(SeamlessError, match="stream consumer takes raw 'customer_id'"):
        Consumer(config, repo, open_store(repo), client, settings)

    key = "k" * 40
    monkeypatch.setenv("SEAMLESS_PII_KEY", key)
    raw_id, bad_id = 918273645, "secret-name-9"
    send(client, "s:pii", event("pii-1", raw_id, ago(20), score=4.25, tier="p"),
         event("pii-2", bad_id, ago(20)))  # fmt: skip
    done = Consumer(config, repo, open_store(repo), client, settings).run(idle_exit_s=0.5)
    assert (done.written, done.malformed) == (1, 1), done.summary()

    pseudonym = Pseudonymizer(key.encode()).of_int(raw_id)
    assert online_features(repo, config, [pseudonym])["score"].tolist() == [4.25]
    assert online_features(repo, config, [raw_id])["score"].isna().all()
    offline = read_pushed(repo, "facts_view")
    assert offline["customer_id"].tolist() == [pseudonym]
    ((_, letter),) = client.xrange("s:pii:dead")
    assert "withheld" in letter["error"] and set(letter) == {"stream_id", "error"}
    assert str(bad_id) not in json.dumps(letter) and str(raw_id) not in json.dumps(letter)
