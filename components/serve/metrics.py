"""Prometheus metrics of one app instance (own registry, so several apps can coexist)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# The text format 0.0.4 (prometheus_client's default escaping writes it): every Prometheus
# version and other scrapers read it; CONTENT_TYPE_LATEST (1.0.0) is newer than some know.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def children(metric: Any) -> Callable[..., Any]:
    """`metric.labels(*values)` with each child looked up once: labels() takes a lock
    and builds a tuple per call, which the per-request paths do not need to pay."""
    known: dict[tuple[str, ...], Any] = {}

    def child(*values: str) -> Any:
        found = known.get(values)
        if found is None:
            found = known[values] = metric.labels(*values)
        return found

    return child


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "seamless_serve_request_seconds",
            "Request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "seamless_serve_requests",
            "Requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.scores = Histogram(
            "seamless_serve_prediction_score",
            "Predicted positive-class scores.",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "seamless_serve_predictions", "Predictions made.", ["model_version"], registry=r
        )
        self._predictions_of = children(self.predictions)
        self.model_info = Gauge(
            "seamless_serve_model_info",
            "1 for the model version being served.",
            ["model", "version"],
            registry=r,
        )
        self.predictor_info = Gauge(
            "seamless_serve_predictor_info",
            "1 for the predictor serving the model version: kind onnx (compiled) or sklearn.",
            ["model", "version", "kind"],
            registry=r,
        )
        self._predictor_labels: tuple[str, str, str] | None = None
        self.feature_misses = Counter(
            "seamless_serve_online_feature_misses",
            "Entities the online store did not know (every feature null).",
            registry=r,
        )
        self.feature_store_errors = Counter(
            "seamless_serve_feature_store_errors",
            "Online feature lookups that failed (store unreachable).",
            registry=r,
        )
        self.reload_failures = Counter(
            "seamless_serve_model_reload_failures",
            "Model versions that failed to load (the previous one kept serving).",
            registry=r,
        )
        self.rejected = Counter(
            "seamless_serve_rejected",
            "Requests refused because the concurrency limit was reached.",
            registry=r,
        )
        self.shed = Counter(
            "seamless_serve_shed",
            "Prediction requests refused (503) while the event loop lagged beyond the "
            "queueing budget (--max-queue-ms).",
            registry=r,
        )
        self.loop_lag = Gauge(
            "seamless_serve_event_loop_lag_seconds",
            "Last measured event-loop scheduling delay.",
            registry=r,
        )
        self.in_flight = Gauge(
            "seamless_serve_in_flight", "Prediction requests being served.", registry=r
        )
        self.log_spooled = Counter(
            "seamless_serve_log_spooled_records",
            "Log records written to the local spool (PostgreSQL unreachable, or a spool "
            "backlog still draining), by log.",
            ["log"],
            registry=r,
        )
        self.log_drained = Counter(
            "seamless_serve_log_drained_records",
            "Spooled log records sent to PostgreSQL, by log (a record re-sent after a "
            "crash counts again; the table keeps it once).",
            ["log"],
            registry=r,
        )
        self.log_spool_pending = Gauge(
            "seamless_serve_log_spool_pending_records",
            "Spooled log records not yet in PostgreSQL, by log.",
            ["log"],
            registry=r,
        )

    def spool_observer(self, log: str) -> SpoolCounts:
        """Where one log's spool reports (`components.predictions.spool.SpoolObserver`)."""
        return SpoolCounts(
            self.log_spooled.labels(log),
            self.log_drained.labels(log),
            self.log_spool_pending.labels(log),
        )

    def set_model(self, model: str, version: str, previous: str | None) -> None:
        if previous is not None:
            self.model_info.remove(model, previous)
        self.model_info.labels(model, version).set(1)

    def set_predictor(self, model: str, version: str, kind: str) -> None:
        """One series: the live version's predictor kind (the old one is removed)."""
        if self._predictor_labels is not None:
            self.predictor_info.remove(*self._predictor_labels)
        self._predictor_labels = (model, version, kind)
        self.predictor_info.labels(model, version, kind).set(1)

    def count_predictions(self, version: str, n: int) -> None:
        self._predictions_of(version).inc(n)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE


class SpoolCounts:
    """One log's spool series: records spooled, drained and pending."""

    def __init__(self, spooled: Any, drained: Any, pending: Any) -> None:
        self._spooled, self._drained, self._pending = spooled, drained, pending

    def spooled(self, n: int) -> None:
        self._spooled.inc(n)

    def drained(self, n: int) -> None:
        self._drained.inc(n)

    def pending(self, n: int) -> None:
        self._pending.set(n)
