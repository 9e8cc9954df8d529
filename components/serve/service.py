"""The serving logic behind the HTTP routes: look up, score, log. No FastAPI here."""

from __future__ import annotations

import gc
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import SeamlessConfig, feature_columns
from components.common.pii import entity_key
from components.predictions.records import jsonable
from components.serve.logs import make_logs
from components.serve.lookup.features import (
    FeatureStoreUnavailable,
    OnlineFeatures,
    unknown_positions,
)
from components.serve.metrics import ServeMetrics
from components.serve.models import memory
from components.serve.models.compiled import Checked, Predictor, choose_predictor, prepare
from components.serve.models.model_store import LoadedModel, ModelStore, load_version
from components.serve.overload import LoopLag
from components.serve.settings import ServeSettings

log = logging.getLogger(__name__)
PREDICTIONS = "predictions"
FEEDBACK = "feedback"


class ServeError(Exception):
    """A request that cannot be served; `status` is the HTTP code to answer with."""

    status = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class NotReady(ServeError):
    status = 503


class StoreDown(ServeError):
    status = 503


class LogDown(ServeError):
    status = 503


class TooLarge(ServeError):
    status = 413


class UnknownEntities(ServeError):
    status = 404


class VersionNotServed(ServeError):
    status = 404


@dataclass
class Scored:
    request_id: str
    model: LoadedModel
    entity_ids: list[Any] | None
    scores: np.ndarray
    decisions: np.ndarray


class Limiter:
    """Bounded concurrency without a queue: a request beyond `limit` is refused.

    Used from the event loop only (one thread), so a plain counter is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_acquire(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1


class Service:
    def __init__(self, settings: ServeSettings, config: SeamlessConfig) -> None:
        self.settings = settings
        self.config = config
        self.metrics = ServeMetrics()
        self.model_name = settings.model_name or config.model.name
        self.threshold = config.model.threshold
        # SEAMLESS_SERVE_PREDICTOR=sklearn turns the compiled (ONNX) path off.
        self.compile = os.environ.get("SEAMLESS_SERVE_PREDICTOR", "auto") != "sklearn"
        self.models = ModelStore(
            self.model_name,
            self._prepare,
            settings.alias,
            on_swap=self._on_swap,
            on_failure=lambda version, detail: self.metrics.reload_failures.inc(),
            after_swap=self._trim,
        )
        self.feature_names = list(config.feature_types())
        numeric = set(feature_columns(config)[0])
        self._numeric = [i for i, f in enumerate(self.feature_names) if f in numeric]
        self.features = OnlineFeatures(settings.feast_path(), config)
        # An entity key tagged `pii: pseudonymize` is stored as pseudonyms: requests carry
        # raw ids, which are pseudonymized (same key as ingest) before the lookup and the
        # log, so neither the store nor the prediction log ever sees a raw id.
        self.pseudonyms = entity_key(config, "Serving")
        self._key_kind = config.entity_type()
        # Files, or PostgreSQL tables behind a local spool (components/predictions/spool.py).
        self.predictions, self.feedback = make_logs(settings, self.metrics.spool_observer)
        self.limiter = Limiter(settings.max_concurrency)
        self.lag = LoopLag(settings.max_queue_ms / 1000, on_sample=self.metrics.loop_lag.set)

    def _prepare(self, name: str, version: str) -> tuple[Predictor, Any]:
        """(predictor, model to keep or None) of a version, before it is swapped in.

        The compiled graph comes from a child process (or is kept from an earlier load);
        only when it cannot serve does this process load the scikit-learn model (and
        import scikit-learn)."""
        log.info("Preparing %s v%s.", name, version)
        if self.compile:
            checked = prepare(name, version, self.config)
        else:
            checked = Checked(None, "SEAMLESS_SERVE_PREDICTOR=sklearn", [], [])
        return choose_predictor(checked, self.config, lambda: load_version(name, version))

    def _on_swap(self, new: Any, old: Any) -> None:
        self.metrics.set_model(new.name, new.version, old.version if old else None)
        self.metrics.set_predictor(new.name, new.version, new.predictor.kind)
        from components.governance import hooks

        hooks.on_model_reload(new.name, str(new.version), str(old.version) if old else None)

    @staticmethod
    def _trim() -> None:
        """After a swap: the load's transient copies and the old version (unless a request
        still holds it), back to the OS."""
        gc.collect()
        memory.trim()

    def start(self) -> None:
        # One BLAS/OpenMP thread per request thread: with several request threads, each
        # model call otherwise starts its own OpenMP team that spins on a busy machine
        # (measured: 10x the CPU per prediction; docs/serving-benchmark.md).
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
        self.predictions.open()
        self.feedback.open()
        result = self.models.reload()
        if result.outcome != "swapped":
            log.warning("No model loaded at start (%s); polling continues.", result.detail)
        # Opens Feast now (seconds) rather than in the first request.
        problem = self.features.probe()
        if problem:
            log.warning("Online store not reachable at start: %s", problem)
        self.models.start_polling(self.settings.poll_seconds)

    def stop(self) -> None:
        self.models.stop_polling()
        self.predictions.close()
        self.feedback.close()

    def check_batch(self, n: int) -> None:
        if n > self.settings.max_batch:
            raise TooLarge(f"Batch of {n} exceeds the limit of {self.settings.max_batch}.")

    def stored_ids(self, entity_ids: list[Any]) -> list[Any]:
        """The ids as the stores and logs hold them: pseudonyms when the entity key is
        tagged `pii: pseudonymize`, else as given."""
        if self.pseudonyms is None:
            return entity_ids
        return self.pseudonyms.values(entity_ids, self._key_kind)

    def lookup(self, entity_ids: list[Any]) -> list[list[Any]]:
        """Feature rows (service order) for the ids; 404 naming every unknown id (as the
        client sent it)."""
        rows = self._fetch(self.features.fetch_rows, self.stored_ids(entity_ids))
        assert rows is not None
        return self._known(rows, entity_ids)

    def lookup_local(self, entity_ids: list[Any]) -> list[list[Any]] | None:
        """`lookup` when it is a local SQLite read (see `OnlineFeatures.fetch_rows_local`),
        else None: the event loop's lookup."""
        rows = self._fetch(self.features.fetch_rows_local, self.stored_ids(entity_ids))
        return None if rows is None else self._known(rows, entity_ids)

    async def lookup_async(self, entity_ids: list[Any]) -> list[list[Any]] | None:
        """`lookup` on the event loop when it is a Redis read with the asyncio client
        (`OnlineFeatures.fetch_rows_async`), else None."""
        try:
            rows = await self.features.fetch_rows_async(self.stored_ids(entity_ids))
        except FeatureStoreUnavailable as exc:
            raise self._store_down(exc) from None
        return None if rows is None else self._known(rows, entity_ids)

    def _fetch(
        self, fetch: Callable[[list[Any]], list[list[Any]] | None], entity_ids: list[Any]
    ) -> list[list[Any]] | None:
        try:
            return fetch(entity_ids)
        except FeatureStoreUnavailable as exc:
            raise self._store_down(exc) from None

    def _store_down(self, exc: FeatureStoreUnavailable) -> StoreDown:
        self.metrics.feature_store_errors.inc()
        log.error("Online store unavailable: %s", exc)
        return StoreDown(f"The online feature store is unavailable: {exc}")

    def _known(self, rows: list[list[Any]], entity_ids: list[Any]) -> list[list[Any]]:
        missing = unknown_positions(rows)
        if missing:
            self.metrics.feature_misses.inc(len(missing))
            ids = [jsonable(entity_ids[i]) for i in missing]
            raise UnknownEntities(
                f"Unknown entity ids (no online features for '{self.features.key}'): {ids}.",
                unknown_entity_ids=ids,
            )
        return rows

    def frame_rows(self, frame: pd.DataFrame) -> list[list[Any]]:
        """Rows (service order, None = missing) of a full feature frame."""
        part = frame[self.feature_names]
        rows: list[list[Any]] = part.astype(object).where(part.notna(), None).values.tolist()
        return rows

    def check_version(self, version: str) -> None:
        """404 unless `version` is the one served (503 while none is)."""
        loaded = self.models.current
        if loaded is None:
            raise NotReady(f"No model loaded for {self.model_name}@{self.models.alias} yet.")
        if loaded.version != version:
            raise self._not_served(version, loaded.version)

    def _not_served(self, version: str, served: str) -> VersionNotServed:
        return VersionNotServed(
            f"Model '{self.model_name}' version '{version}' is not served here; this server "
            f"serves version '{served}' ({self.model_name}@{self.models.alias})."
        )

    def score(
        self,
        rows: list[list[Any]],
        entity_ids: list[Any] | None,
        route: str,
        version: str | None = None,
    ) -> Scored:
        """Score feature rows with the live model and log every prediction; with `version`,
        only if that version still serves (a swap may have come since the request began)."""
        scored, records = self._predict(rows, entity_ids, route)
        if version is not None and scored.model.version != version:
            raise self._not_served(version, scored.model.version)
        try:
            self.predictions.append(records)
        except OSError as exc:
            raise self._log_down(exc) from None
        return self._acknowledged(scored)

    @property
    def async_log(self) -> bool:
        """Whether the prediction log can be awaited on the event loop (`score_async`)."""
        return hasattr(self.predictions, "append_async")

    async def score_async(
        self, rows: list[list[Any]], entity_ids: list[Any] | None, route: str
    ) -> Scored:
        """`score` on the event loop (`async_log` logs only): the fsync is awaited."""
        scored, records = self._predict(rows, entity_ids, route)
        try:
            await self.predictions.append_async(records)  # type: ignore[attr-defined]
        except OSError as exc:
            raise self._log_down(exc) from None
        return self._acknowledged(scored)

    def _log_down(self, exc: OSError) -> LogDown:
        # Unlogged predictions are not acknowledged: the log is the audit trail.
        log.error("Prediction log write failed: %s", exc)
        return LogDown(f"The prediction log cannot be written: {exc.strerror}.")

    def _predict(
        self, rows: list[list[Any]], entity_ids: list[Any] | None, route: str
    ) -> tuple[Scored, list[dict[str, Any]]]:
        """Scores and the prediction-log records (not written yet)."""
        loaded = self.models.current  # read once: a swap cannot change it mid-request
        if loaded is None:
            raise NotReady(f"No model loaded for {self.model_name}@{self.models.alias} yet.")
        scores = loaded.predictor.predict(rows)
        decisions = scores >= self.threshold
        request_id = uuid.uuid4().hex
        now = datetime.now(UTC).isoformat()
        names, numeric = self.feature_names, self._numeric
        score_list, decision_list = scores.tolist(), decisions.tolist()
        logged_ids = None if entity_ids is None else self.stored_ids(entity_ids)
        records = []
        for i, row in enumerate(rows):
            logged = list(row)
            for j in numeric:  # logged as the model sees them: numbers as floats
                v = logged[j]
                logged[j] = None if v is None else float(v)
            records.append(
                {
                    "ts": now,
                    "request_id": request_id,
                    "index": i,
                    "entity_id": None if logged_ids is None else jsonable(logged_ids[i]),
                    "route": route,
                    "model_name": loaded.name,
                    "model_version": loaded.version,
                    "features": dict(zip(names, map(jsonable, logged), strict=True)),
                    "score": score_list[i],
                    "decision": decision_list[i],
                }
            )
        return Scored(request_id, loaded, entity_ids, scores, decisions), records

    def _acknowledged(self, scored: Scored) -> Scored:
        """Metrics of logged predictions."""
        observe = self.metrics.scores.observe
        score_list = scored.scores.tolist()
        for s in score_list:
            observe(s)
        self.metrics.count_predictions(scored.model.version, len(score_list))
        return scored

    def record_feedback(self, items: list[dict[str, Any]]) -> int:
        now = datetime.now(UTC).isoformat()
        if self.pseudonyms is not None:  # logged as the prediction log has the entity
            items = [
                {**it, "entity_id": self.pseudonyms.value(it.get("entity_id"), self._key_kind)}
                for it in items
            ]
        records = [{"ts": now, **{k: jsonable(v) for k, v in it.items()}} for it in items]
        try:
            self.feedback.append(records)
        except OSError as exc:
            raise LogDown(f"The feedback log cannot be written: {exc.strerror}.") from None
        return len(records)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        model = self.models.status()
        store_error = self.features.probe()
        # Unlogged predictions are refused (503), so a log that cannot take records makes
        # the pod unready as an unreachable store does. The PostgreSQL log takes them
        # while its database is away (spooled): only a full spool counts here, and the
        # probe makes no database round trip.
        log_error = self.predictions.probe()
        ready = model["version"] is not None and store_error is None and log_error is None
        detail: dict[str, Any] = {
            "ready": ready,
            "model": model,
            "feature_store": "ok" if store_error is None else store_error,
            "feature_reads": self.features.read_path,
            "prediction_log": "ok" if log_error is None else log_error,
        }
        if self.pseudonyms is not None:  # compare with the snapshot's (seamless lineage)
            detail["pii_key_fingerprint"] = self.pseudonyms.fingerprint
        spooled = getattr(self.predictions, "spool", None)
        if spooled is not None:  # informational: never changes `ready`
            detail["prediction_log_pending"] = spooled.pending_records
            detail["prediction_log_database"] = getattr(self.predictions, "database", "ok")
        return ready, detail
