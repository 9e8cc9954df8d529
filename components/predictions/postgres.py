"""Prediction and feedback logs in PostgreSQL tables: the cluster's durable log.

Same records as the JSON-lines `AppendLog` (`files.py`), one row each, in the
tables `seamless_predictions` and `seamless_feedback` (created if missing, under an
advisory lock so concurrent replicas do not race). The known fields get typed columns
(`index` is stored as `idx`); a field that is unknown, or whose value does not fit its
column exactly (a non-canonical timestamp, a number where text is expected, a string
holding NUL), goes to the `extra` column (type `json`, which keeps text verbatim), so
every record reads back exactly as written. A field missing from a record reads back
as null.

Writing: `append` returns only once the request's rows are committed. Concurrent
requests share commits (group commit): a request queues its rows; whoever holds the
commit lock inserts every queued batch in one transaction and commits it, and the
requests it covered return without a round trip of their own. When PostgreSQL cannot
be reached, `append` raises `LogUnavailable` (an `OSError`); serving then spools the
records locally (`prediction_spool.SpooledLog`) and drains them once the server is
back. The connection is reopened on a later write, after a short cool-down.

Rows may carry a `log_key` (unique index; inserts are `ON CONFLICT (log_key) DO
NOTHING`): a record written twice with its key (a spooled batch re-sent after a kill)
is in the table once. Tables created before the column existed get it, and the index,
when a writer first connects (`ALTER TABLE ... ADD COLUMN`, then a unique index build
that blocks the table's writes while it scans: other replicas spool meanwhile).

Credentials: the URL's password, else libpq's own sources (`PGPASSWORD`, `~/.pgpass`).
Messages never contain the password.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from components.common.connect import first_connection
from components.common.errors import SeamlessError
from components.predictions.pg_copy import Column, copy_batch, plan

if TYPE_CHECKING:
    from components.predictions.records import BatchRecords, LogQuery, ReadStats

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
TABLE_PREFIX = "seamless_"
# Serializes table creation across processes (CREATE TABLE IF NOT EXISTS can race).
_DDL_LOCK_KEY = 0x5EA31E55


def is_pg_url(value: object) -> bool:
    """True for `postgresql://...` (also `postgres://`, `postgresql+psycopg2://`)."""
    return isinstance(value, str) and value.split("://", 1)[0].lower() in SCHEMES


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def libpq_url(url: str) -> str:
    """The URL libpq understands (SQLAlchemy's `+psycopg2` driver suffix dropped)."""
    scheme, rest = url.split("://", 1)
    if scheme.lower() not in SCHEMES:
        raise SeamlessError(f"Log URL {redact(url)} is not a postgresql:// URL.")
    return "postgresql://" + rest


class LogUnavailable(OSError):
    """The PostgreSQL log cannot be written now (an OSError, so serving answers 503)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EIO, message)


class LogRefused(LogUnavailable):
    """PostgreSQL refused the record itself (a constraint): not an outage to spool over."""


# Column checks: a value goes to its typed column only if it reads back identical.


def _is_canonical_ts(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        return False
    return parsed.tzinfo is not None and parsed.astimezone(UTC).isoformat() == v


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and "\x00" not in v


def _is_bigint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


def _is_double(v: Any) -> bool:
    return isinstance(v, float)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_jsonb(v: Any) -> bool:
    # jsonb cannot hold \u0000; such values go to the `json` extra column verbatim.
    return "\\u0000" not in json.dumps(v, allow_nan=False)


# Each table's columns in the order serving writes the fields, which is the order they
# read back in.
_TS: Column = ("ts", "ts", "timestamptz", _is_canonical_ts)
_REQUEST: Column = ("request_id", "request_id", "text", _is_text)
_INDEX: Column = ("index", "idx", "bigint", _is_bigint)
_ENTITY: Column = ("entity_id", "entity_id", "jsonb", _is_jsonb)
_COMMON: list[Column] = [_TS, _REQUEST, _INDEX, _ENTITY]
COLUMNS: dict[str, list[Column]] = {
    "predictions": [
        *_COMMON,
        ("route", "route", "text", _is_text),
        ("model_name", "model_name", "text", _is_text),
        ("model_version", "model_version", "text", _is_text),
        ("features", "features", "jsonb", _is_jsonb),
        ("score", "score", "double precision", _is_double),
        ("decision", "decision", "boolean", _is_bool),
    ],
    "feedback": [_TS, _REQUEST, _ENTITY, _INDEX, ("label", "label", "jsonb", _is_jsonb)],
}


def _columns(prefix: str) -> list[Column]:
    return COLUMNS.get(prefix, _COMMON)


def table_name(prefix: str) -> str:
    if not prefix.isidentifier() or not prefix.isascii():
        raise SeamlessError(f"Log name {prefix!r} is not a valid table name suffix.")
    return f"{TABLE_PREFIX}{prefix.lower()}"


def create_table_sql(prefix: str) -> str:
    cols = ",\n    ".join(f"{col} {kind}" for _, col, kind, _ in _columns(prefix))
    table = table_name(prefix)
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        f"    id bigserial PRIMARY KEY,\n    {cols},\n    extra json,\n"
        f"    logged_at timestamptz NOT NULL DEFAULT now(),\n    log_key text\n);\n"
        f"CREATE INDEX IF NOT EXISTS {table}_request_id ON {table} (request_id);\n"
        f"CREATE INDEX IF NOT EXISTS {table}_ts ON {table} (ts);\n"
        f"{add_key_sql(prefix)}"
    )


def add_key_sql(prefix: str) -> str:
    """The `log_key` column and its unique index (also the migration of older tables)."""
    table = table_name(prefix)
    return (
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS log_key text;\n"
        f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_log_key ON {table} (log_key)"
    )


def _row(record: dict[str, Any], columns: list[Column]) -> tuple[Any, ...]:
    known = {field for field, *_ in columns}
    extra = {k: v for k, v in record.items() if k not in known}
    values: list[Any] = []
    for field, _, kind, fits in columns:
        v = record.get(field)
        if v is not None and not fits(v):
            extra[field] = v
            v = None
        if v is not None and kind == "jsonb":
            v = json.dumps(v, separators=(",", ":"), allow_nan=False)
        values.append(v)
    values.append(json.dumps(extra, separators=(",", ":"), allow_nan=False) if extra else None)
    return tuple(values)


def _connect_kwargs(url: str, connect_timeout_s: float) -> dict[str, Any]:
    """libpq parameters: the URL's, plus timeouts and keepalives unless the URL sets them."""
    import psycopg2.extensions

    params: dict[str, Any] = {"dsn": libpq_url(url)}
    given = psycopg2.extensions.parse_dsn(params["dsn"])
    defaults = {
        "connect_timeout": max(1, round(connect_timeout_s)),
        "application_name": "seamless-serve",
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        # A commit on a dead peer fails after this long instead of hanging on TCP retries.
        "tcp_user_timeout": 15000,
    }
    for key, value in defaults.items():
        if key not in given:
            params[key] = value
    return params


class _Pending:
    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.done = False
        self.error: LogUnavailable | None = None


class PgLog:
    """Append-only log in one PostgreSQL table; safe to share between request threads."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        connect_timeout_s: float = 5.0,
        retry_after_s: float = 1.0,
        statement_timeout_ms: int = 15000,
        synchronous_commit: bool = True,
    ) -> None:
        libpq_url(url)  # reject a non-PostgreSQL URL now
        self.url = url
        self.prefix = prefix
        self.table = table_name(prefix)
        self.columns = _columns(prefix)
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self.statement_timeout_ms = statement_timeout_ms
        # False (`--log-sync write`): a commit returns before its WAL is flushed; a
        # PostgreSQL crash may lose the last moments of commits, never tear one.
        self.synchronous_commit = synchronous_commit
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()  # the group-commit leader holds it
        self._conn: Any = None
        self._failed_at: float | None = None
        self._last_error = ""
        self._closed = False
        names = ", ".join(col for _, col, _, _ in self.columns)
        self._insert = (
            f"INSERT INTO {self.table} ({names}, extra, log_key) VALUES %s "
            "ON CONFLICT (log_key) DO NOTHING"
        )
        casts = ", ".join(f"%s::{kind}" for _, _, kind, _ in self.columns)
        self._template = f"({casts}, %s::json, %s)"
        self.commits = 0  # transactions committed (group commit: <= appends)

    def __repr__(self) -> str:
        return f"PgLog({redact(self.url)!r}, {self.table})"

    # connection

    def _connection(self) -> Any:
        """The open connection, connecting (and creating the table) when needed."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        now = time.monotonic()
        if self._failed_at is not None and now - self._failed_at < self.retry_after_s:
            raise LogUnavailable(self._last_error)
        import psycopg2

        try:
            conn = psycopg2.connect(**_connect_kwargs(self.url, self.connect_timeout_s))
        except psycopg2.Error as exc:
            self._fail(f"cannot connect to {redact(self.url)}: {_first_line(exc)}")
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {int(self.statement_timeout_ms)}")
                if not self.synchronous_commit:
                    cur.execute("SET synchronous_commit = off")
                # The key's index exists once the table is current (created together).
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{self.table}_log_key",))
                current = bool(cur.fetchone()[0])
                if not current:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
                    # An older table's key index is built over every row: no time limit.
                    cur.execute("SET LOCAL statement_timeout = 0")
                    cur.execute(create_table_sql(self.prefix))
            conn.commit()
        except psycopg2.Error as exc:
            conn.close()
            self._fail(
                f"cannot prepare table {self.table} at {redact(self.url)}: {_first_line(exc)}"
            )
        self._conn = conn
        if self._failed_at is not None:
            log.info("Prediction log %s is writable again.", self)
        self._failed_at = None
        return conn

    def _fail(self, detail: str) -> Any:
        self._failed_at = time.monotonic()
        self._last_error = f"The PostgreSQL {self.prefix} log is unavailable: {detail}"
        raise LogUnavailable(self._last_error)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
        self._conn = None

    # log interface (same as AppendLog)

    def open(self) -> None:
        """Connect and create the table now; an outage is logged, not raised (503 later)."""
        self._closed = False
        with self._commit_lock:
            try:
                self._connection()
            except LogUnavailable as exc:
                log.warning("%s; retried on the next write.", exc.strerror)

    def append(self, records: list[dict[str, Any]], keys: list[str] | None = None) -> None:
        """Insert `records` and return once they are committed (else LogUnavailable;
        LogRefused when the server refuses the data). `keys`: their `log_key`s, one per
        record; a key already in the table skips its record."""
        if not records:
            return
        if self._closed:
            raise LogUnavailable(f"The PostgreSQL {self.prefix} log is closed.")
        if keys is None:
            rows = [(*_row(r, self.columns), None) for r in records]
        else:
            rows = [(*_row(r, self.columns), k) for r, k in zip(records, keys, strict=True)]
        mine = _Pending(rows)
        with self._queue_lock:
            self._queue.append(mine)
        with self._commit_lock:
            if not mine.done:  # nobody committed it while we waited: lead a group
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        if mine.error is not None:
            raise mine.error

    def append_batch(self, batch: BatchRecords) -> None:
        """A batch run's records in one transaction, with one binary COPY (`pg_copy.py`):
        all of them committed, or none (LogUnavailable / LogRefused). Row by row, like
        `append`, when a column's type or a value does not suit COPY."""
        import psycopg2

        if not len(batch):
            return
        if self._closed:
            raise LogUnavailable(f"The PostgreSQL {self.prefix} log is closed.")
        batch_plan = plan(batch, self.table, self.columns, _row(batch.constants, self.columns))
        if batch_plan is not None:
            with self._commit_lock:
                try:
                    conn = self._connection()
                    copy_batch(conn, batch_plan)
                    conn.commit()
                    self.commits += 1
                    return
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    self._drop_connection()
                    self._fail(f"write to {redact(self.url)} failed: {_first_line(exc)}")
                except psycopg2.DataError:
                    self._rollback()  # a value COPY cannot carry (e.g. NUL): row by row
                except psycopg2.Error as exc:
                    self._rollback()
                    raise LogRefused(
                        f"PostgreSQL refused the {self.prefix} batch: {_first_line(exc)}"
                    ) from None
                except BaseException:  # encoding failed: the COPY is abandoned, nothing kept
                    self._rollback()
                    raise
        self.append(list(batch.records()))

    def _commit(self, group: list[_Pending]) -> None:
        """Write `group` in one transaction; commit lock held. Marks every batch done."""
        import psycopg2

        try:
            try:
                conn = self._connection()
                self._write(conn, [row for p in group for row in p.rows])
                conn.commit()
                self.commits += 1
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                self._drop_connection()
                self._fail(f"write to {redact(self.url)} failed: {_first_line(exc)}")
            except psycopg2.Error as exc:
                # The server refused the data itself (not an outage): commit the other
                # requests' rows, fail only the batches that are refused on their own.
                self._rollback()
                if len(group) == 1:
                    raise LogRefused(
                        f"PostgreSQL refused the {self.prefix} record: {_first_line(exc)}"
                    ) from None
                for p in group:
                    self._commit([p])
                return
        except LogUnavailable as exc:
            for p in group:
                if not p.done:
                    p.error = exc
        for p in group:
            p.done = True

    def _write(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        from psycopg2.extras import execute_values

        with conn.cursor() as cur:
            execute_values(cur, self._insert, rows, template=self._template, page_size=1000)

    def _rollback(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rollback()
        except Exception:  # a broken connection is dropped
            self._drop_connection()

    def probe(self) -> str | None:
        """None when the table takes writes now, else why not (for /readyz)."""
        import psycopg2

        if self._closed:
            return f"The PostgreSQL {self.prefix} log is closed."
        with self._commit_lock:
            try:
                conn = self._connection()
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.rollback()  # end the transaction the query opened
            except LogUnavailable as exc:
                return exc.strerror
            except psycopg2.Error as exc:
                self._drop_connection()
                return f"The PostgreSQL {self.prefix} log is unavailable: {_first_line(exc)}"
        return None

    def close(self) -> None:
        with self._commit_lock:
            self._closed = True
            self._drop_connection()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0].strip()


def _record(row: tuple[Any, ...], columns: list[Column]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for (field, _, kind, _), value in zip(columns, row[: len(columns)], strict=True):
        if kind == "timestamptz" and value is not None:
            value = value.astimezone(UTC).isoformat()
        record[field] = value
    extra = row[len(columns)]
    if extra:
        record.update(extra)
    return record


def read_pg_records(
    url: str, prefix: str, stats: ReadStats | None = None, query: LogQuery | None = None
) -> Iterator[dict[str, Any]]:
    """Every committed record of the `prefix` log, in insertion order (streamed); with
    `query`, only those it keeps, as the files keep them. The server selects them (a
    request id and a time through their indexes); a row whose time is not in the `ts`
    column (kept as written in `extra`) is judged here.

    A missing table reads as an empty log; an unreachable server raises SeamlessError.
    `stats` (a `records.ReadStats`) counts records; a table has no torn lines.
    """
    kept = _read_rows(url, prefix, stats, query)
    return query.finish(kept) if query is not None else kept


def _read_rows(
    url: str, prefix: str, stats: ReadStats | None, query: LogQuery | None
) -> Iterator[dict[str, Any]]:
    import psycopg2

    table = table_name(prefix)
    columns = _columns(prefix)

    def failed(exc: BaseException, attempts: int, seconds: float) -> SeamlessError:
        tried = f" (after {attempts} attempts over {seconds:.0f} s)" if attempts > 1 else ""
        return SeamlessError(
            f"Cannot read the {prefix} log: cannot connect to {redact(url)}{tried}: "
            f"{_first_line(exc)}"
        )

    # A monitoring step is a fresh pod: its first connection may come before its
    # NetworkPolicies do (issue #14 A.1).
    conn = first_connection(
        redact(url), lambda: psycopg2.connect(**_connect_kwargs(url, 10.0)), failed
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cur.fetchone()[0]:
                return
        if stats is not None:
            stats.segments += 1
        # Omitted columns are not even sent (`finish` also drops them from `extra`).
        omit = query.omit if query is not None else frozenset()
        where, params = _where(query, table, {col for _, col, _, _ in columns})
        columns = [c for c in columns if c[0] not in omit]
        names = ", ".join(col for _, col, _, _ in columns)
        with conn.cursor(name=f"seamless_read_{prefix}") as cur:
            cur.itersize = 5000
            cur.execute(f"SELECT {names}, extra FROM {table}{where} ORDER BY id", params)
            for row in cur:
                record = _record(row, columns)
                if query is None or query.keeps(record):
                    if stats is not None:
                        stats.records += 1
                    yield record
    except psycopg2.Error as exc:
        raise SeamlessError(
            f"Reading the {prefix} log from {redact(url)} failed: {_first_line(exc)}"
        ) from None
    finally:
        conn.close()


def _where(query: LogQuery | None, table: str, columns: set[str]) -> tuple[str, list[Any]]:
    """The rows `query` may keep, as SQL (`LogQuery.keeps` then decides). A value of
    another type than its column's is kept in `extra` with the column null, so a null
    column matches every filter here. A field the table has no column for matches no
    row, as it matches no file record."""
    if query is None:
        return "", []
    tests = [
        (column, test, value)
        for column, test, value in (
            ("request_id", "=", query.request_id),
            ("model_name", "=", query.model_name),
            ("model_version", "=", query.model_version),
            ("ts", ">", query.since),
        )
        if value is not None
    ]
    if any(column not in columns for column, _, _ in tests):
        return " WHERE FALSE", []
    terms = [f"({column} {test} %s OR {column} IS NULL)" for column, test, _ in tests]
    params: list[Any] = [value for _, _, value in tests]
    if query.first is not None:
        # The first N of the rows with every column set, by the ts index; the others
        # (rare) all, for the reader to order.
        exact = " AND ".join([*(f"{c} {t} %s" for c, t, _ in tests), "ts IS NOT NULL"])
        nulls = " OR ".join(f"{c} IS NULL" for c in sorted({"ts", *(c for c, _, _ in tests)}))
        terms.append(
            f"({nulls} OR id IN (SELECT id FROM {table} WHERE {exact} ORDER BY ts, id LIMIT %s))"
        )
        params += [*params, query.first]
    return (f" WHERE {' AND '.join(terms)}" if terms else ""), params
