"""Which prediction log serving writes: files locally, PostgreSQL behind a spool on the
cluster (the backends are in `components/predictions/`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from components.predictions.files import WRITE_SYNC_INTERVAL_S, AppendLog
from components.predictions.postgres import PgLog
from components.predictions.records import FEEDBACK, PREDICTIONS, RecordLog
from components.predictions.spool import Spool, SpooledLog

if TYPE_CHECKING:
    from components.predictions.spool import SpoolObserver
    from components.serve.settings import ServeSettings


def make_logs(
    settings: ServeSettings, observer: Callable[[str], SpoolObserver] | None = None
) -> tuple[RecordLog, RecordLog]:
    """The (predictions, feedback) logs the settings ask for, not opened yet.

    `settings.log_url` (`postgresql://...`) selects the PostgreSQL tables, each behind a
    local spool in `settings.spool_path()` (`components/predictions/spool.py`) unless
    `spool_max_bytes` is 0; `observer(prefix)` gets each spool's counts. Otherwise the
    JSON-lines segment files in `settings.predictions_path()` / `feedback_path()`.
    """
    if settings.log_url:
        durable = settings.log_sync == "fsync"
        pair = (
            PgLog(settings.log_url, PREDICTIONS, synchronous_commit=durable),
            PgLog(settings.log_url, FEEDBACK, synchronous_commit=durable),
        )
        if not settings.spool_max_bytes:
            return pair
        spools = [Spool(settings.spool_path(), p.prefix, settings.spool_max_bytes) for p in pair]
        preds, feedback = (
            SpooledLog(p, s, observer=observer(p.prefix) if observer else None)
            for p, s in zip(pair, spools, strict=True)
        )
        return preds, feedback
    every = None if settings.log_sync == "fsync" else WRITE_SYNC_INTERVAL_S
    return (
        AppendLog(settings.predictions_path(), PREDICTIONS, settings.segment_bytes, every),
        AppendLog(settings.feedback_path(), FEEDBACK, settings.segment_bytes, every),
    )
