"""The stream consumer: Redis Streams events -> Feast push source (online) + pushed log (offline).

One batch at a time, in this order, so a consumer killed at any point loses nothing
and counts nothing twice:

1. read: this consumer's own pending entries first (delivered before a crash, never
   acknowledged), entries idle too long at other consumers (XAUTOCLAIM: a pod that
   died), then new ones (XREADGROUP `>`);
2. check each event (events.py); a malformed one goes to the dead-letter stream;
3. claim each event id, atomically, before any write: `SET <seen key> <stream id> NX EX
   dedup_ttl_s` (one pipeline per batch). Only events whose claim succeeded are
   written; an id claimed by another stream entry is a duplicate, also when two
   consumers race on it at the same moment (Redis runs one SET NX first). A claim holds
   the stream id of its entry, so that entry redelivered after a crash between the
   claim and the XACK owns its claim and is written again (nothing is lost). The same
   id earlier in the batch is a duplicate too;
4. compare with the online store: an event not newer than the value stored for its
   entity is late. Late events go to the offline log only (history at their own
   time, so training sees them where they belong) and never replace a newer value
   online. Redis' Feast store already skips older writes; SQLite's does not, so the
   rule is applied here for both;
5. write the offline part, then push the on-time events through the view's Feast
   push source (online), through a writer that compares and sets each entity's event
   time atomically at the store (online.py): an entry taken over from a consumer that
   is stuck but alive is written by both (the claim holds the entry's stream id, which
   both hold), and the stuck one's late rule is stale by the time it resumes, so only
   the store's own check keeps its older value from replacing a newer one written
   meanwhile. Re-checking ownership before the write would only narrow that race;
   the atomic newer-only write closes it. Offline its event lands twice, which
   readers keep once;
6. in one Lua script (atomic at Redis): per entry its XACK and, only if that XACK
   acknowledged it (another consumer may have taken it over and finished it first),
   its outcome counter and, if malformed, its dead letter. Until it runs nothing is
   acknowledged; a restart re-reads the batch, whose writes are idempotent (same
   values and times online, same event ids offline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.common import pii
from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.stream import compaction, pushed
from components.stream import events as ev

if TYPE_CHECKING:
    from feast import FeatureStore

    from components.stream.metrics import StreamMetrics

log = logging.getLogger(__name__)

OUTCOMES = ev.OUTCOMES
DEAD_LETTER_MAXLEN = 100_000
"""Dead letters kept (approximately, oldest trimmed first)."""


@dataclass
class Counts:
    """Outcomes of the events handled: every event lands in exactly one."""

    written: int = 0
    late: int = 0
    duplicate: int = 0
    malformed: int = 0
    batches: int = 0
    redelivered: int = 0
    """Events read again after a crash or from a dead consumer (also in an outcome)."""
    freshness_s: list[float] = field(default_factory=list, repr=False)
    """Per written event: seconds from its event time to the end of its online write."""

    def add(self, other: Counts) -> None:
        for name in (*OUTCOMES, "batches", "redelivered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.freshness_s.extend(other.freshness_s)

    @property
    def events(self) -> int:
        return sum(getattr(self, o) for o in OUTCOMES)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "freshness_s"}
        out["events"] = self.events
        out["freshness_p50_s"] = _quantile(self.freshness_s, 0.5)
        out["freshness_p99_s"] = _quantile(self.freshness_s, 0.99)
        return out


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 4)


@dataclass(frozen=True)
class StreamSettings:
    """Where the consumer reads and how it behaves."""

    stream: str = "seamless:features"
    group: str = "seamless-stream"
    consumer: str = "consumer-1"
    batch: int = 500
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    """An entry pending this long at another consumer is taken over (that consumer died)."""
    dedup_ttl_s: int = 7 * 24 * 3600
    """How long an event id is remembered: a retry later than this is a new event."""
    max_future_s: float = 300.0
    offline: bool = True
    """Write the pushed-events log (for training); off only for online-only benchmarks."""
    compact_parts: int = 0
    """After this many parts written to a view's pushed-events log, this consumer
    compacts that view (compaction.compact, after the batch's XACK); 0: never."""

    @property
    def dead_letter(self) -> str:
        return f"{self.stream}:dead"

    @property
    def counts_key(self) -> str:
        return f"{self.stream}:{self.group}:counts"

    def seen_key(self, event_id: str) -> str:
        return f"{self.stream}:{self.group}:seen:{event_id}"


def ensure_group(client: Any, s: StreamSettings) -> None:
    """Create the consumer group (and the stream) if missing; it starts at the stream's
    beginning so events sent before the first consumer are not skipped."""
    import redis as _redis

    try:
        client.xgroup_create(s.stream, s.group, id="0", mkstream=True)
    except _redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def refuse_cluster(client: Any, s: StreamSettings) -> None:
    """Stop, in one sentence, when the stream's Redis is a Redis Cluster: the commit
    script touches the stream, its counters and its dead letters at once, keys a
    cluster puts in different slots (the online store may be a cluster: online.py)."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster) or int(client.info("cluster").get("cluster_enabled", 0)):
        raise SeamlessError(
            f"The stream's Redis is a Redis Cluster, which the consumer does not support "
            f"for its stream '{s.stream}' (its commit script writes the stream, its "
            f"counters and its dead letters at once, keys a cluster spreads over slots): "
            f"put the stream on a standalone Redis; the online store may stay a cluster."
        )


def stored_counts(client: Any, s: StreamSettings) -> dict[str, int]:
    """The group's outcome counters over all its consumers and restarts."""
    raw = client.hgetall(s.counts_key)
    return {o: int(raw.get(o, 0)) for o in OUTCOMES}


def stream_status(client: Any, s: StreamSettings, letters: int = 10) -> dict[str, Any]:
    """Counters, entries pending in the group, and the newest dead letters."""
    ensure_group(client, s)
    pending = client.xpending(s.stream, s.group)
    dead = client.xrevrange(s.dead_letter, count=letters)
    return {
        "stream": s.stream,
        "group": s.group,
        "counts": stored_counts(client, s),
        "pending": int(pending["pending"]),
        "dead_letter_stream": s.dead_letter,
        "dead_letters_total": int(client.xlen(s.dead_letter)),
        "dead_letters": [
            {"stream_id": f.get("stream_id", ""), "error": f.get("error", ""), "dead_letter_id": i}
            for i, f in dead
        ],
    }


class Consumer:
    """Consumes one stream for one config's Feast repo (see the module docstring)."""

    def __init__(
        self,
        config: SeamlessConfig,
        repo_path: Path,
        store: FeatureStore,
        client: Any,
        settings: StreamSettings,
    ) -> None:
        self.config = config
        self.repo_path = repo_path
        self.store = store
        self.client = client
        self.s = settings
        self.schema = ev.Schema.of(config)
        self.ts_column = {v.name: config.timestamp_key(v.table) for v in config.features.views}
        self.counts = Counts()
        self._last_claim = 0.0
        self._views: dict[str, Any] = {}
        self._parts_written: dict[str, int] = {}
        self.metrics: StreamMetrics | None = None
        """Set to record each batch for Prometheus (components/stream/metrics.py)."""
        # Producers send raw ids, as serving's callers do; with the entity key tagged
        # `pii: pseudonymize` only pseudonyms reach the stores, and dead letters withhold
        # the event (it holds the raw id). Without SEAMLESS_PII_KEY: one sentence, no start.
        self.pseudonyms = pii.entity_key(config, "The stream consumer")
        from components.stream.online import guard_writes

        # Online writes compare and set atomically at the store: a consumer that resumes
        # after its entry was taken over never replaces a newer value (online.py).
        self.newer_only = guard_writes(store)
        if not self.newer_only:
            log.warning(
                "The online store (%s) has no newer-only writer here: an entry taken over "
                "from a stuck consumer can replace a newer value when that consumer resumes.",
                type(store.config.online_store).__name__,
            )

    # -- reading ---------------------------------------------------------------------

    def _own_pending(self) -> list[tuple[str, dict[str, str] | None]]:
        reply = self.client.xreadgroup(
            self.s.group, self.s.consumer, {self.s.stream: "0"}, count=self.s.batch
        )
        return list(reply[0][1]) if reply else []

    def _claim(self) -> list[tuple[str, dict[str, str] | None]]:
        self._last_claim = time.monotonic()
        reply = self.client.xautoclaim(
            self.s.stream, self.s.group, self.s.consumer, self.s.claim_idle_ms, "0-0",
            count=self.s.batch,
        )  # fmt: skip
        return list(reply[1])

    def _new(self, block_ms: int) -> list[tuple[str, dict[str, str] | None]]:
        reply = self.client.xreadgroup(
            self.s.group, self.s.consumer, {self.s.stream: ">"}, count=self.s.batch,
            block=block_ms,
        )  # fmt: skip
        return list(reply[0][1]) if reply else []

    def recover(self) -> Counts:
        """Finish what a killed consumer of this name left pending; returns its outcomes."""
        done = Counts()
        while entries := self._own_pending():
            done.add(self.handle(entries, redelivered=True))
        return done

    def poll(self, block_ms: int | None = None) -> Counts:
        """One read and its batch: other consumers' stale entries first (every
        `claim_idle_ms`), else new entries, waiting up to `block_ms`."""
        if time.monotonic() - self._last_claim >= self.s.claim_idle_ms / 1000:
            claimed = self._claim()
            if claimed:
                return self.handle(claimed, redelivered=True)
        entries = self._new(self.s.block_ms if block_ms is None else block_ms)
        return self.handle(entries, redelivered=False) if entries else Counts()

    def run(
        self,
        stop: Callable[[], bool] = lambda: False,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
        on_batch: Callable[[Counts], None] | None = None,
        on_poll: Callable[[], None] | None = None,
    ) -> Counts:
        """Consume until `stop()`, `max_events` handled, or `idle_exit_s` without events;
        `on_poll` runs after every read, events or not (a liveness heartbeat)."""
        refuse_cluster(self.client, self.s)
        ensure_group(self.client, self.s)
        total = self.recover()
        idle_since = time.monotonic()
        while not stop():
            if max_events is not None and total.events >= max_events:
                break
            done = self.poll()
            if on_poll:
                on_poll()
            if done.events:
                total.add(done)
                idle_since = time.monotonic()
                if on_batch:
                    on_batch(total)
            elif idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                break
        return total

    # -- one batch -------------------------------------------------------------------

    def handle(self, entries: list[tuple[str, dict[str, str] | None]], redelivered: bool) -> Counts:
        """Check, dedupe, write and acknowledge one batch of entries."""
        started = time.monotonic()
        done = Counts(batches=1, redelivered=len(entries) if redelivered else 0)
        now = datetime.now(UTC)
        good: list[ev.Event] = []
        dead: list[tuple[str, dict[str, str], str]] = []
        for stream_id, fields in entries:
            try:
                # An entry trimmed from the stream while pending comes back without fields.
                good.append(
                    ev.parse(stream_id, fields or {}, self.schema, now, self.s.max_future_s)
                )
            except ev.BadEvent as exc:
                dead.append((stream_id, fields or {}, str(exc)))
        if self.pseudonyms is not None:
            kind = self.schema.key_type
            good = [replace(e, entity=self.pseudonyms.value(e.entity, kind)) for e in good]
            dead = [(sid, {}, self._withheld(why)) for sid, _, why in dead]
        fresh = self._claim_ids(good)
        done.duplicate = len(good) - len(fresh)
        on_time, late = self._split_late(fresh, redelivered)
        done.malformed, done.late, done.written = len(dead), len(late), len(on_time)
        offline = self._write_offline([*on_time, *late]) if self.s.offline else {}
        online = self._push_online(on_time)
        written_at = datetime.now(UTC)
        outcome = {e.stream_id: "duplicate" for e in good}
        outcome.update({e.stream_id: "late" for e in late})
        outcome.update({e.stream_id: "written" for e in on_time})
        outcome.update({sid: "malformed" for sid, _, _ in dead})
        acked = self._commit([(sid, outcome[sid]) for sid, _ in entries], dead)
        if len(acked) < len(entries):
            # Another consumer took some entries over (XAUTOCLAIM) and acknowledged them
            # first: they are its outcomes, counted there once.
            for sid, _ in entries:
                if sid not in acked:
                    setattr(done, outcome[sid], getattr(done, outcome[sid]) - 1)
            on_time = [e for e in on_time if e.stream_id in acked]
        done.freshness_s = [(written_at - e.event_time).total_seconds() for e in on_time]
        if self.metrics is not None:
            self.metrics.batch(
                {o: getattr(done, o) for o in OUTCOMES}, done.redelivered, online, offline,
                time.monotonic() - started, done.freshness_s,
            )  # fmt: skip
        self._compact_if_due()
        self.counts.add(done)
        for stream_id, _, why in dead:
            if stream_id in acked:
                log.warning("event %s dead-lettered: %s", stream_id, why)
        return done

    def _withheld(self, why: str) -> str:
        """A dead letter's reason without the raw entity id it may quote."""
        key = self.schema.key
        if why.startswith(f"'{key}' "):
            why = f"'{key}' is not a valid {self.schema.key_type} (the value is withheld)"
        return f"{why}; the event is withheld: the config tags '{key}' pii: pseudonymize"

    def _claim_ids(self, good: list[ev.Event]) -> list[ev.Event]:
        """The events this batch owns: the first of each event id in the batch whose
        claim (`SET NX`, value: its stream id) succeeded now or is already its own (the
        same entry, redelivered after a crash before its XACK). `SET ... NX GET` answers
        nil when it set the key, else the holder's stream id, in one atomic step."""
        first: dict[str, ev.Event] = {}
        for e in good:
            first.setdefault(e.event_id, e)
        if not first:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for e in first.values():
                pipe.set(
                    self.s.seen_key(e.event_id), e.stream_id, nx=True, ex=self.s.dedup_ttl_s,
                    get=True,
                )  # fmt: skip
            holders = pipe.execute()
        owned = {
            e.event_id
            for e, holder in zip(first.values(), holders, strict=True)
            if holder is None or holder == e.stream_id
        }
        return [e for e in good if e.event_id in owned and first[e.event_id] is e]

    def _split_late(
        self, fresh: list[ev.Event], redelivered: bool
    ) -> tuple[list[ev.Event], list[ev.Event]]:
        """(on time, late): late is not newer than the entity's stored value or an
        earlier event of the batch. A redelivered event whose time equals the stored one
        was written before the crash: it is on time (written once, counted once)."""
        stored: dict[tuple[str, Any], datetime | None] = {}
        for view in {e.view for e in fresh}:
            ids = list(dict.fromkeys(e.entity for e in fresh if e.view == view))
            for entity, ts in zip(ids, self._stored_times(view, ids), strict=True):
                stored[(view, entity)] = ts
        latest: dict[tuple[str, Any], datetime] = {}
        on_time, late = [], []
        for e in fresh:
            k = (e.view, e.entity)
            before, mine = stored[k], latest.get(k)
            behind_batch = mine is not None and e.event_time <= mine
            behind_store = before is not None and (
                e.event_time < before or (e.event_time == before and not redelivered)
            )
            if behind_batch or behind_store:
                late.append(e)
            else:
                latest[k] = e.event_time
                on_time.append(e)
        return on_time, late

    def _stored_times(self, view: str, entities: list[Any]) -> list[datetime | None]:
        """The event time of each entity's online value in `view` (None: no value)."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import python_values_to_proto_values

        # Looked up once: a registry read costs ~0.1 s, and only the view's name, entity
        # and first feature are used, which a later `apply` of the same config keeps.
        fv = self._views.get(view) or self._views.setdefault(
            view, self.store.get_feature_view(view)
        )
        key = self.schema.key
        value_type = next(c.dtype for c in fv.entity_columns if c.name == key).to_value_type()
        keys = [
            EntityKey(join_keys=[key], entity_values=[v])
            for v in python_values_to_proto_values(entities, value_type)
        ]
        # Feast's provider interface: the only read that returns the stored event time
        # at full precision (OnlineResponse rounds it to seconds).
        rows = self.store._get_provider().online_read(
            config=self.store.config, table=fv, entity_keys=keys,
            requested_features=[fv.features[0].name],
        )  # fmt: skip
        return [None if ts is None else _utc(ts) for ts, _ in rows]

    def _frame(self, view: str, rows: list[ev.Event], with_ids: bool) -> Any:
        import pandas as pd

        key, ts = self.schema.key, self.ts_column[view]
        data: dict[str, list[Any]] = {key: [e.entity for e in rows]}
        data[ts] = [e.event_time for e in rows]
        for f in self.schema.views[view]:
            data[f] = [e.values[f] for e in rows]
        frame = pd.DataFrame(data)
        for f, kind in self.schema.views[view].items():
            dtype = {"int": "Int64", "float": "float64", "string": "object", "bool": "boolean"}
            if kind in dtype:
                frame[f] = frame[f].astype(dtype[kind])
        frame[ts] = pd.to_datetime(frame[ts], utc=True)
        if with_ids:
            frame[pushed.EVENT_ID_COLUMN] = [e.event_id for e in rows]
            frame[pushed.STREAM_ID_COLUMN] = [e.stream_id for e in rows]
        return frame

    def _write_offline(self, accepted: list[ev.Event]) -> dict[str, int]:
        """One part per view; returns the rows written per view."""
        written: dict[str, int] = {}
        for view in dict.fromkeys(e.view for e in accepted):
            rows = [e for e in accepted if e.view == view]
            written[view] = len(rows)
            pushed.write_part(
                self.config, self.repo_path, view, self._frame(view, rows, with_ids=True)
            )
            self._parts_written[view] = self._parts_written.get(view, 0) + 1
        return written

    def _compact_if_due(self) -> None:
        """Compact the views this consumer wrote `compact_parts` parts to. A failure is
        logged, not raised: the batch is acknowledged, and the parts stay readable."""
        if self.s.compact_parts <= 0:
            return
        for view, n in list(self._parts_written.items()):
            if n < self.s.compact_parts:
                continue
            self._parts_written[view] = 0
            try:
                done = compaction.compact(self.repo_path, view)
            except SeamlessError as exc:
                log.warning("compaction of %s's pushed-events log failed: %s", view, exc)
                continue
            log.info("compacted %s: %d parts into %s (%d rows)", view, done.parts_merged,
                     done.merged, done.rows)  # fmt: skip

    def _push_online(self, on_time: list[ev.Event]) -> dict[str, int]:
        """Push each view's newest value per entity; returns the rows pushed per view."""
        from feast.data_source import PushMode

        from components.features.repo import push_source_name

        pushed_rows: dict[str, int] = {}
        for view in dict.fromkeys(e.view for e in on_time):
            # The newest event per entity only: it is the value the store must end with.
            newest: dict[Any, ev.Event] = {}
            for e in on_time:
                if e.view == view:
                    newest[e.entity] = e
            frame = self._frame(view, list(newest.values()), with_ids=False)
            self.store.push(push_source_name(view), frame, to=PushMode.ONLINE)
            pushed_rows[view] = len(frame)
        return pushed_rows

    def _commit(
        self, outcomes: list[tuple[str, str]], dead: list[tuple[str, dict[str, str], str]]
    ) -> set[str]:
        """Per entry, in one script (atomic at Redis): its XACK and, only where that XACK
        acknowledged it, its outcome counted and, if malformed, its dead letter written;
        returns the stream ids acknowledged here. An entry another consumer took over
        and acknowledged first is counted and dead-lettered there only."""
        letters = {sid: {"stream_id": sid, "error": why, **fields} for sid, fields, why in dead}
        args: list[Any] = [self.s.group, DEAD_LETTER_MAXLEN]
        for sid, outcome in outcomes:
            letter = letters.get(sid, {})
            args += [sid, outcome, len(letter), *(x for kv in letter.items() for x in kv)]
        keys = [self.s.stream, self.s.counts_key, self.s.dead_letter]
        acked = self.client.eval(_ACK_COUNT_AND_DEAD_LETTER, len(keys), *keys, *args)
        return {sid for (sid, _), n in zip(outcomes, acked, strict=True) if int(n) == 1}


_ACK_COUNT_AND_DEAD_LETTER = """
local counts = {}
local acked = {}
local i = 3
while i <= #ARGV do
  local sid, outcome, nfields = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local n = redis.call('XACK', KEYS[1], ARGV[1], sid)
  acked[#acked + 1] = n
  if n == 1 then
    counts[outcome] = (counts[outcome] or 0) + 1
    if nfields > 0 then
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
                 unpack(ARGV, i + 3, i + 2 + 2 * nfields))
    end
  end
  i = i + 3 + 2 * nfields
end
for outcome, n in pairs(counts) do redis.call('HINCRBY', KEYS[2], outcome, n) end
return acked
"""
"""KEYS: stream, counters hash, dead-letter stream; ARGV: group, dead letters kept, then
per entry its stream id, outcome, number of dead-letter fields (0: none) and those
field/value pairs. XACK of each entry; only when it acknowledged the entry is its
outcome counted and its dead letter added (the XACK's 1 is the single owner's mark)."""


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
