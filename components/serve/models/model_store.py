"""The live model: loaded from the MLflow alias, re-polled and swapped atomically.

Requests read `ModelStore.current` once and use that object to the end, so a swap
never changes the model under an in-flight request: the old object lives until its
last user drops it. A version that fails to load is reported (callback, log line,
`status()`) and the old one keeps serving; the poller retries that version after a
back-off (30 s, doubling to 10 min), a forced reload (/admin/reload) at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from components.common.tracking import champion_version, mlflow_client

log = logging.getLogger(__name__)
MIN_BACKOFF_S = 30.0
MAX_BACKOFF_S = 600.0


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model version; immutable so it can be shared across threads."""

    name: str
    version: str
    run_id: str
    model: Any
    """The scikit-learn model when it serves itself (the fallback); None when the compiled
    graph serves (the model then never enters this process)."""
    loaded_at: str
    predictor: Any = None
    """What scores requests: the compiled graph or the model itself (`compiled.Predictor`)."""


@dataclass(frozen=True)
class ReloadResult:
    """What one check of the alias did: `swapped`, `unchanged`, `failed` or `no_alias`."""

    outcome: str
    version: str | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "version": self.version, "detail": self.detail}


def load_version(name: str, version: str) -> Any:
    """The scikit-learn model of one registered version (by number, not by alias); a
    model without `predict_proba` cannot serve and is refused here.

    Loading by number means the alias moving again during the load cannot mix versions.
    """
    import mlflow.sklearn

    mlflow_client()
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"{type(model).__name__} has no predict_proba")
    return model


def load_input_example(name: str, version: str) -> Any:
    """The input example logged with the version (a DataFrame), or None without one.

    Only that small file is downloaded; it seeds the compiled predictor's parity check.
    """
    import tempfile

    import mlflow
    from mlflow.models import Model

    mlflow_client()
    uri = f"models:/{name}/{version}"
    try:
        meta = Model.load(uri)
        info = meta.saved_input_example_info
        if not info:
            return None
        with tempfile.TemporaryDirectory(prefix="seamless-example-") as tmp:
            mlflow.artifacts.download_artifacts(f"{uri}/{info['artifact_path']}", dst_path=tmp)
            return meta.load_input_example(tmp)
    except Exception as exc:  # no example: the parity check uses generic rows
        log.warning("No input example for %s v%s (%s).", name, version, exc)
        return None


class ModelStore:
    """Holds the live model of `name@alias` and swaps it when the alias moves."""

    def __init__(
        self,
        name: str,
        prepare: Callable[[str, str], tuple[Any, Any]],
        alias: str = "champion",
        on_swap: Callable[[LoadedModel, LoadedModel | None], None] | None = None,
        on_failure: Callable[[str, str], None] | None = None,
        after_swap: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.alias = alias
        # (name, version) -> (predictor, the model when it must be kept, else None);
        # raises when the version cannot be served.
        self._prepare = prepare
        self._on_swap = on_swap
        self._on_failure = on_failure
        # Runs once the reload has dropped its references to the new version's transient
        # objects and to the old version (memory housekeeping: gc + heap trim).
        self._after_swap = after_swap
        self._current: LoadedModel | None = None
        # One reload at a time (poller and /admin/reload); readers never take it.
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_check_at: str | None = None
        # A version that failed is retried by the poller only after a back-off (loading
        # spawns a process); a forced reload always tries.
        self._failed_version: str | None = None
        self._retry_at = 0.0
        self._backoff_s = 0.0

    @property
    def current(self) -> LoadedModel | None:
        """The live model (a plain attribute read: atomic under the GIL)."""
        return self._current

    def reload(self, force: bool = True) -> ReloadResult:
        """Re-read the alias; load and swap in a new version, keep the old one on failure.

        `force=False` (the poller) skips a version that failed until its back-off ends."""
        with self._reload_lock:
            self.last_check_at = _now()
            try:
                mv = champion_version(mlflow_client(), self.name, self.alias)
            except Exception as exc:  # registry unreachable: keep serving what we have
                return self._failed(None, f"reading alias {self.name}@{self.alias}: {exc}")
            if mv is None:
                detail = f"no model version has alias {self.name}@{self.alias}"
                if self._current is None:
                    self.last_error, self.last_error_at = detail, _now()
                return ReloadResult("no_alias", None, detail)
            version = str(mv.version)
            old = self._current
            if old is not None and old.version == version:
                return ReloadResult("unchanged", version)
            if not force and version == self._failed_version and time.monotonic() < self._retry_at:
                return ReloadResult("failed", version, self.last_error or "")
            try:
                predictor, keep = self._prepare(self.name, version)
            except Exception as exc:
                return self._failed(version, f"loading {self.name} v{version}: {exc}")
            new = LoadedModel(self.name, version, str(mv.run_id or ""), keep, _now(), predictor)
            del keep, predictor
            self._current = new  # the atomic swap
            self.last_error = self.last_error_at = self._failed_version = None
            self._backoff_s = 0.0
            log.info("Serving %s v%s (was %s).", self.name, version, old.version if old else "none")
            if self._on_swap:
                self._on_swap(new, old)
            del new, old
        if self._after_swap:
            self._after_swap()
        return ReloadResult("swapped", version)

    def _failed(self, version: str | None, detail: str) -> ReloadResult:
        self.last_error, self.last_error_at = detail, _now()
        if version:
            same = version == self._failed_version
            self._backoff_s = min(2 * self._backoff_s, MAX_BACKOFF_S) if same else MIN_BACKOFF_S
            self._failed_version, self._retry_at = version, time.monotonic() + self._backoff_s
        serving = self._current.version if self._current else "none"
        log.error("Model reload failed (%s); still serving version %s.", detail, serving)
        if self._on_failure:
            self._on_failure(version or "", detail)
        return ReloadResult("failed", version, detail)

    def start_polling(self, every_s: float) -> None:
        """Check the alias every `every_s` seconds in a daemon thread (0: never)."""
        if every_s <= 0 or self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.reload(force=False)
                except Exception:  # the poller must outlive any single failure
                    log.exception("Model poll failed.")

        self._thread = threading.Thread(target=loop, name="seamless-model-poll", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def status(self) -> dict[str, Any]:
        cur = self._current
        return {
            "model": self.name,
            "alias": self.alias,
            "version": cur.version if cur else None,
            "loaded_at": cur.loaded_at if cur else None,
            "predictor": getattr(cur.predictor, "kind", None) if cur else None,
            "predictor_detail": getattr(cur.predictor, "detail", None) if cur else None,
            "last_check_at": self.last_check_at,
            "last_reload_error": self.last_error,
            "last_reload_error_at": self.last_error_at,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat()


def wait_for(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.05) -> bool:
    """Poll `predicate` until true or timeout (used by tests and the CLI)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()
