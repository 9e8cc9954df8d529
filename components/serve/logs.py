"""Which prediction log serving writes: files locally, PostgreSQL behind a spool on the
cluster (the backends are in `components/predictions/`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from components.predictions.files import WRITE_SYNC_INTERVAL_S
from components.predictions.postgres import PgLog
from components.predictions.reader import writer_for
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
    durable = settings.log_sync == "fsync"
    every = None if durable else WRITE_SYNC_INTERVAL_S
    pair = (
        writer_for(
            settings.log_url, settings.predictions_path(), PREDICTIONS,
            settings.segment_bytes, every, durable,
        ),
        writer_for(
            settings.log_url, settings.feedback_path(), FEEDBACK,
            settings.segment_bytes, every, durable,
        ),
    )  # fmt: skip
    if not settings.log_url or not settings.spool_max_bytes:
        return pair
    tables = cast(tuple[PgLog, PgLog], pair)  # a log_url gives PostgreSQL tables
    preds, feedback = (
        SpooledLog(
            p,
            Spool(settings.spool_path(), p.prefix, settings.spool_max_bytes),
            observer=observer(p.prefix) if observer else None,
        )
        for p in tables
    )
    return preds, feedback
