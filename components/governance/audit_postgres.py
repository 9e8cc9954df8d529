"""The audit trail as a PostgreSQL table, for clusters where pods share no volume.

Same entries and hash chain as the file backend (`audit.py`). The table keeps the exact
canonical line in `entry` (jsonb would reorder keys and renormalize numbers, breaking
the hash) plus a few columns to query by. Appends serialize on a transaction-scoped
advisory lock, then read the head and insert `seq = head + 1`; the `seq` primary key
would reject a forked chain even without the lock. A trigger refuses UPDATE and DELETE,
so tampering needs a table owner disabling it on purpose, which `verify()` then shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.common.connect import first_connection
from components.common.errors import SeamlessError
from components.governance.audit_chain import AuditLog, Chunk, entry_line, new_entry

TABLE = "seamless_audit"
# Arbitrary constant naming "the audit head" among the database's advisory locks.
LOCK_KEY = 0x5EA41E55

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq BIGINT PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    hash CHAR(64) NOT NULL UNIQUE,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_subject ON {TABLE} (subject);
CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS {TABLE}_no_change ON {TABLE};
CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only();
"""


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy spellings (`postgresql+psycopg2://`) as well as libpq URLs."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgres"):
        raise SeamlessError(f"SEAMLESS_AUDIT_URL must be a postgresql:// URL, got {scheme!r}.")
    return f"postgresql://{rest}"


class PostgresAuditLog(AuditLog):
    """`FileAuditLog`'s interface over a PostgreSQL table (created on first use)."""

    def __init__(self, url: str, connect_timeout_s: int = 10) -> None:
        self.url = libpq_url(url)
        self.connect_timeout_s = connect_timeout_s
        self._ready = False

    def describe(self) -> str:
        # Host and database only: the URL may hold a password.
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path} table {TABLE}"

    def _connect(self) -> Any:
        import psycopg2

        def failed(exc: BaseException, attempts: int, seconds: float) -> SeamlessError:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
            tried = f" (after {attempts} attempts over {seconds:.0f} s)" if attempts > 1 else ""
            return SeamlessError(
                f"Cannot reach the audit database {self.describe()}{tried}: {first}."
            )

        def connect() -> Any:
            return psycopg2.connect(self.url, connect_timeout=self.connect_timeout_s)

        # A fresh pod may start before its NetworkPolicies allow it out (issue #14 A.1).
        return first_connection(self.describe(), connect, failed)

    def _ensure_schema(self, cur: Any) -> None:
        """Create the table and its append-only trigger if either is missing. Under the
        advisory lock: concurrent CREATE ... IF NOT EXISTS can still collide. A table that
        is complete is left alone, so a role that may only SELECT and INSERT (the
        dashboard's) can append."""
        if self._ready:
            return
        cur.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
            (TABLE, f"{TABLE}_no_change"),
        )
        if cur.fetchone()[0] == 0:
            import psycopg2

            try:
                cur.execute(_SCHEMA)
            except psycopg2.errors.InsufficientPrivilege as exc:
                raise SeamlessError(
                    f"The audit table in {self.describe()} is missing or lacks its "
                    "append-only trigger, and this database role may not create them "
                    f"({str(exc).strip().splitlines()[0]}); the first entry by the audit "
                    "role (a pipeline step) creates them."
                ) from exc
        self._ready = True

    def _append(
        self, action: str, subject: str, details: Mapping[str, Any] | None, who: str
    ) -> dict[str, Any]:
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:  # one transaction; commit on success
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                self._ensure_schema(cur)
                cur.execute(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1")
                row = cur.fetchone()
                last = None if row is None else {"seq": row[0], "hash": row[1]}
                entry = new_entry(last, action, subject, details, who)
                cur.execute(
                    f"INSERT INTO {TABLE} (seq, time, actor, action, subject, hash, entry) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        entry["seq"],
                        entry["time"],
                        who,
                        action,
                        subject,
                        entry["hash"],
                        entry_line(entry).decode("utf-8").rstrip("\n"),
                    ),
                )
        finally:
            conn.close()
        return entry

    def read_after(self, cursor: Any = None) -> Chunk:
        """The rows after `cursor` (rows read, last seq, its hash), by the seq index; a
        table whose last read row is gone or changed is read from the start. "Line" numbers
        are row positions in seq order."""
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (TABLE,))
                if cur.fetchone()[0] is None:
                    return Chunk([], None, None, restarted=cursor is not None)
                restarted = False
                if cursor is not None:
                    cur.execute(f"SELECT hash FROM {TABLE} WHERE seq = %s", (cursor[1],))
                    row = cur.fetchone()
                    restarted = row is None or row[0] != cursor[2]
                count, last_seq, last_hash = (
                    cursor if cursor is not None and not restarted else (0, 0, None)
                )
                cur.execute(
                    f"SELECT seq, hash, entry FROM {TABLE} WHERE seq > %s ORDER BY seq",
                    (last_seq,),
                )
                rows = cur.fetchall()
        finally:
            conn.close()
        lines: list[tuple[int, bytes | str]] = [
            (count + i + 1, str(r[2])) for i, r in enumerate(rows)
        ]
        if rows:
            last_seq, last_hash = rows[-1][0], rows[-1][1]
        return Chunk(lines, (count + len(rows), last_seq, last_hash), None, restarted)
