"""Bounded aggregates of the prediction log: volume per hour and the score distribution.

Over the newest `max_records` records only (a dashboard must not read a year of
traffic to draw a chart): a folder is read segment by segment from the newest, and a
closed segment's aggregate is remembered by (name, size, mtime), so a page view reads
just the segment being written; a PostgreSQL table is aggregated by the server over its
newest rows (`ORDER BY id DESC LIMIT`). Records are streamed, never held all at once.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from components.common.times import parse_utc
from components.predictions.batch_segment import SUFFIX as BATCH_SUFFIX
from components.predictions.batch_segment import segment_header
from components.predictions.files import segments
from components.predictions.postgres import is_pg_url

SCORE_BINS = 10
"""Equal-width bins over [0, 1]; scores outside are clamped into the end bins."""
MAX_RECORDS = 200_000
_CACHE_SEGMENTS = 256


@dataclass
class TrafficSummary:
    records: int = 0
    """Records aggregated (at most `max_records`, plus the rest of the oldest segment read)."""
    first_ts: str | None = None
    last_ts: str | None = None
    per_hour: dict[str, int] = field(default_factory=dict)
    """`YYYY-MM-DDTHH` (UTC) -> predictions that hour, in time order."""
    per_version: dict[str, int] = field(default_factory=dict)
    score_bins: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)
    scored: int = 0
    """Records with a numeric score (the rest: errors, or no score logged)."""
    complete: bool = True
    """False when older records exist beyond what was aggregated."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "per_hour": dict(sorted(self.per_hour.items())),
            "per_version": dict(sorted(self.per_version.items())),
            "score_bins": list(self.score_bins),
            "bin_edges": [round(i / SCORE_BINS, 3) for i in range(SCORE_BINS + 1)],
            "scored": self.scored,
            "complete": self.complete,
        }


def _hour(ts: Any) -> tuple[str, str] | None:
    """(UTC hour key, normalized timestamp) of a record's `ts`; None when unreadable."""
    t = parse_utc(ts) if isinstance(ts, str) else None
    if t is None:
        return None
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H"), t.isoformat()


def _bin(score: float) -> int:
    return min(SCORE_BINS - 1, max(0, int(score * SCORE_BINS)))


@dataclass
class _Part:
    records: int = 0
    scanned: int = 0
    first: str | None = None
    last: str | None = None
    hours: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    bins: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)
    scored: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        self.versions[str(record.get("model_version"))] += 1
        hour = _hour(record.get("ts"))
        if hour is not None:
            self.hours[hour[0]] += 1
            if self.first is None or hour[1] < self.first:
                self.first = hour[1]
            if self.last is None or hour[1] > self.last:
                self.last = hour[1]
        score = record.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and score == score:
            self.scored += 1
            self.bins[_bin(float(score))] += 1


_cache: OrderedDict[tuple[str, str, int, int, str], _Part] = OrderedDict()
_cache_lock = threading.Lock()


def _segment_part(path: Path, model_name: str | None) -> _Part:
    stat = path.stat()
    key = (str(path), model_name or "", stat.st_size, stat.st_mtime_ns, "v1")
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    part = (
        _batch_part(path, model_name)
        if path.suffix == BATCH_SUFFIX
        else _lines_part(path, model_name)
    )
    with _cache_lock:
        _cache[key] = part
        while len(_cache) > _CACHE_SEGMENTS:
            _cache.popitem(last=False)
    return part


def _lines_part(path: Path, model_name: str | None) -> _Part:
    part = _Part()
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # a torn tail: the writer's next segment starts clean
            part.scanned += 1
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if model_name is not None and record.get("model_name") != model_name:
                continue
            part.add(record)
    return part


def _batch_part(path: Path, model_name: str | None) -> _Part:
    """A batch segment's aggregate, column by column (a million records at once)."""
    import numpy as np
    import pyarrow.parquet as pq

    try:
        constants, _, rows = segment_header(path)
        names = ("model_name", "model_version", "ts", "score")
        read = [n for n in names if n not in constants]
        table = pq.read_table(path, columns=read)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError):
        return _Part()  # damaged: skipped, as unparseable lines are (read_records counts it)

    def column(name: str) -> list[Any]:
        if name in constants:
            return [constants[name]] * rows
        return table.column(name).to_pylist() if name in read else [None] * rows

    keep = [True] * rows
    if model_name is not None:
        keep = [m == model_name for m in column("model_name")]

    def kept(name: str) -> list[Any]:
        values = column(name)
        return values if model_name is None else [v for v, k in zip(values, keep, strict=True) if k]

    part = _Part(scanned=rows, records=sum(keep))
    for version, n in Counter(kept("model_version")).items():
        part.versions[str(version)] += n
    for ts, n in Counter(kept("ts")).items():
        hour = _hour(ts)
        if hour is not None:
            part.hours[hour[0]] += n
            part.first = hour[1] if part.first is None else min(part.first, hour[1])
            part.last = hour[1] if part.last is None else max(part.last, hour[1])
    scores = kept("score")
    numbers = np.array(
        [s for s in scores if isinstance(s, (int, float)) and not isinstance(s, bool)], float
    )
    numbers = numbers[~np.isnan(numbers)]
    part.scored = len(numbers)
    bins = np.clip(np.floor(numbers * SCORE_BINS), 0, SCORE_BINS - 1).astype(int)
    part.bins = np.bincount(bins, minlength=SCORE_BINS).tolist()
    return part


def _merge(parts: list[_Part], complete: bool) -> TrafficSummary:
    out = TrafficSummary(complete=complete)
    hours: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    for p in parts:
        out.records += p.records
        out.scored += p.scored
        hours.update(p.hours)
        versions.update(p.versions)
        out.score_bins = [a + b for a, b in zip(out.score_bins, p.bins, strict=True)]
        if p.first is not None and (out.first_ts is None or p.first < out.first_ts):
            out.first_ts = p.first
        if p.last is not None and (out.last_ts is None or p.last > out.last_ts):
            out.last_ts = p.last
    out.per_hour = dict(sorted(hours.items()))
    out.per_version = dict(sorted(versions.items()))
    return out


def summarize(
    source: Path | str,
    model_name: str | None = None,
    max_records: int = MAX_RECORDS,
    prefix: str = "predictions",
) -> TrafficSummary:
    """Volume and score distribution of the newest `max_records` records of `source` (a
    log folder or a `postgresql://` URL), of `model_name` only when given."""
    if is_pg_url(source):
        return _summarize_pg(str(source), prefix, model_name, max_records)
    parts: list[_Part] = []
    seen = 0
    files = segments(Path(source), prefix)
    complete = True
    for i, seg in enumerate(reversed(files)):
        if seen >= max_records:
            complete = i == len(files)
            break
        try:
            part = _segment_part(seg, model_name)
        except FileNotFoundError:
            continue  # removed while we listed (retention)
        parts.append(part)
        seen += part.scanned  # the bound is on records read, whichever model they are of
    return _merge(parts, complete)


def _summarize_pg(url: str, prefix: str, model_name: str | None, limit: int) -> TrafficSummary:
    """The same aggregate computed by PostgreSQL over the newest `limit` rows."""
    import psycopg2

    from components.common.errors import SeamlessError
    from components.predictions.postgres import _connect_kwargs, redact, table_name

    table = table_name(prefix)
    where = "WHERE model_name = %(model)s" if model_name is not None else ""
    sql = f"""
        WITH recent AS (
            SELECT ts, score, model_version FROM {table} {where}
            ORDER BY id DESC LIMIT %(limit)s
        )
        SELECT 'hour', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24'), count(*)
            FROM recent WHERE ts IS NOT NULL GROUP BY 2
        UNION ALL
        SELECT 'version', coalesce(model_version, 'None'), count(*) FROM recent GROUP BY 2
        UNION ALL
        SELECT 'bin', least(greatest(floor(score * {SCORE_BINS}), 0), {SCORE_BINS - 1})::text,
            count(*) FROM recent WHERE score IS NOT NULL AND score <> 'NaN' GROUP BY 2
        UNION ALL
        SELECT 'span', coalesce(to_json(min(ts)) #>> '{{}}', '') || '|'
            || coalesce(to_json(max(ts)) #>> '{{}}', ''), count(*) FROM recent
    """
    try:
        conn = psycopg2.connect(**_connect_kwargs(url, 10.0))
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise SeamlessError(f"Cannot read the {prefix} log at {redact(url)}: {first}.") from None
    out = TrafficSummary()
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cur.fetchone()[0]:
                return out
            cur.execute(sql, {"model": model_name, "limit": limit})
            rows = cur.fetchall()
            cur.execute(
                f"SELECT count(*) > %(limit)s FROM (SELECT 1 FROM {table} {where} "
                "LIMIT %(limit)s + 1) s",
                {"model": model_name, "limit": limit},
            )
            out.complete = not cur.fetchone()[0]
    except psycopg2.Error as exc:
        raise SeamlessError(f"Reading the {prefix} log at {redact(url)} failed: {exc}") from None
    finally:
        conn.close()
    for kind, key, count in rows:
        if kind == "hour":
            out.per_hour[key] = int(count)
        elif kind == "version":
            out.per_version[key] = int(count)
        elif kind == "bin":
            out.score_bins[int(float(key))] = int(count)
            out.scored += int(count)
        elif kind == "span":
            out.records = int(count)
            first, _, last = key.partition("|")
            out.first_ts, out.last_ts = _iso(first), _iso(last)
    out.per_hour = dict(sorted(out.per_hour.items()))
    out.per_version = dict(sorted(out.per_version.items()))
    return out


def _iso(value: str) -> str | None:
    t = parse_utc(value)
    return None if t is None else t.astimezone(UTC).isoformat()
