"""The stream consumer's Prometheus metrics (`seamless stream consume --metrics-port`).

Counters of this process (Prometheus handles their reset at a restart; the group's
totals over all consumers and restarts stay in Redis, `seamless stream status`):

- `seamless_stream_events_total{outcome}`: written, late, duplicate, malformed (the
  malformed ones are the dead letters);
- `seamless_stream_redelivered_total`, `seamless_stream_batches_total`;
- `seamless_stream_online_rows_total{view}`, `seamless_stream_offline_rows_total{view}`:
  rows pushed to the online store (the newest per entity of a batch) and to the
  pushed-events log;
- `seamless_stream_batch_seconds` (last batch: read to XACK) and
  `seamless_stream_last_batch_timestamp_seconds`;
- `seamless_stream_freshness_seconds`: histogram, event time to the online write;
- read from Redis at each scrape (one XINFO GROUPS): `seamless_stream_pending` (entries
  delivered, not acknowledged) and `seamless_stream_lag` (entries not yet delivered to
  the group); `seamless_stream_redis_up` is 0 when that read fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from components.stream.events import OUTCOMES

log = logging.getLogger(__name__)

FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class StreamMetrics:
    """The consumer's metrics in a registry of their own (tests start several)."""

    def __init__(self, client: Any, stream: str, group: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "seamless_stream_events", "Events handled, by outcome (malformed: dead letters).",
            ["outcome"], registry=r,
        )  # fmt: skip
        for outcome in OUTCOMES:
            self.events.labels(outcome)  # every outcome shows, at 0 too
        self.redelivered = Counter(
            "seamless_stream_redelivered", "Events read again after a crash or from a dead "
            "consumer (also counted in an outcome).", registry=r,
        )  # fmt: skip
        self.batches = Counter("seamless_stream_batches", "Batches handled.", registry=r)
        self.online_rows = Counter(
            "seamless_stream_online_rows", "Rows pushed to the online store.", ["view"],
            registry=r,
        )  # fmt: skip
        self.offline_rows = Counter(
            "seamless_stream_offline_rows", "Rows written to the pushed-events log.", ["view"],
            registry=r,
        )  # fmt: skip
        self.batch_seconds = Gauge(
            "seamless_stream_batch_seconds", "The last batch's time from check to XACK.",
            registry=r,
        )  # fmt: skip
        self.last_batch = Gauge(
            "seamless_stream_last_batch_timestamp_seconds", "When the last batch was "
            "acknowledged (Unix time).", registry=r,
        )  # fmt: skip
        self.freshness = Histogram(
            "seamless_stream_freshness_seconds", "Written events: event time to the end of "
            "the online write.", buckets=FRESHNESS_BUCKETS, registry=r,
        )  # fmt: skip
        r.register(_GroupState(client, stream, group))

    def batch(
        self,
        outcomes: dict[str, int],
        redelivered: int,
        online: dict[str, int],
        offline: dict[str, int],
        seconds: float,
        freshness: list[float],
    ) -> None:
        """Record one acknowledged batch."""
        for outcome, n in outcomes.items():
            if n:
                self.events.labels(outcome).inc(n)
        if redelivered:
            self.redelivered.inc(redelivered)
        self.batches.inc()
        for view, n in online.items():
            self.online_rows.labels(view).inc(n)
        for view, n in offline.items():
            self.offline_rows.labels(view).inc(n)
        self.batch_seconds.set(seconds)
        self.last_batch.set_to_current_time()
        for f in freshness:
            self.freshness.observe(max(f, 0.0))


class _GroupState(Collector):
    """Pending and lag of the consumer group, read from Redis at each scrape."""

    def __init__(self, client: Any, stream: str, group: str) -> None:
        self.client, self.stream, self.group = client, stream, group

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "seamless_stream_redis_up", "1 when the scrape could read the group from Redis."
        )
        try:
            groups = self.client.xinfo_groups(self.stream)
        except Exception as exc:  # Redis down: the scrape still answers, with up 0
            log.warning("metrics: could not read group %s of %s: %s", self.group, self.stream, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        mine = next((g for g in groups if _text(g.get("name")) == self.group), None)
        if mine is None:
            return
        pending = GaugeMetricFamily(
            "seamless_stream_pending", "Entries delivered to the group, not acknowledged."
        )
        pending.add_metric([], float(mine.get("pending") or 0))
        yield pending
        if mine.get("lag") is not None:  # Redis 7.0+; unknown after some deletions
            lag = GaugeMetricFamily(
                "seamless_stream_lag", "Entries of the stream not yet delivered to the group."
            )
            lag.add_metric([], float(mine["lag"]))
            yield lag


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def serve(metrics: StreamMetrics, port: int, host: str, cert: str | None, key: str | None) -> Any:
    """Serve /metrics (HTTPS with `cert` and `key`) on a daemon thread; returns the
    server (its `shutdown()` stops it)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(
        port, addr=host, registry=metrics.registry, certfile=cert, keyfile=key
    )
    return server
