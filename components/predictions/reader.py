"""Reading the prediction log wherever it is: a folder of segment files or a PostgreSQL
table, chosen by the source (a path or a `postgresql://` URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.predictions.files import read_records
from components.predictions.postgres import is_pg_url, read_pg_records
from components.predictions.records import ReadStats


def read_log(
    source: Path | str,
    prefix: str,
    stats: ReadStats | None = None,
    request_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """`read_records` over a folder, or the PostgreSQL table when `source` is a URL;
    `request_id` keeps one request's records (an index lookup in PostgreSQL)."""
    if is_pg_url(source):
        return read_pg_records(str(source), prefix, stats, request_id)
    records = read_records(Path(source), prefix, stats)
    if request_id is None:
        return records
    return (r for r in records if r.get("request_id") == request_id)
