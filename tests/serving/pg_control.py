"""Stop and restart the PostgreSQL server of `tests.helpers.postgres` in place.

The helper's server does not expose its data folder, so it is asked for it
(`data_directory`, `postmaster.opts`: the superuser may read both); a restart uses the
same options, hence the same port and the same data.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.postgres import PostgresServer, postgres_bin_dir


def fresh_database(server: PostgresServer, name: str) -> str:
    """Create database `name` (dropped first if it exists); its libpq URL."""
    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return f"postgresql://{server.user}:{server.password}@{server.host}:{server.port}/{name}"


@dataclass
class PgControl:
    """pg_ctl stop/start for a running helper server."""

    data: Path
    options: str

    @classmethod
    def of(cls, server: PostgresServer) -> PgControl:
        import psycopg2

        conn = psycopg2.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password,
            dbname="postgres",
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW data_directory")
                data = Path(cur.fetchone()[0])
                cur.execute("SELECT pg_read_file('postmaster.opts')")
                opts = shlex.split(cur.fetchone()[0])
        finally:
            conn.close()
        # postmaster.opts: <postgres binary> "-D" "<data>" <options...>
        i = opts.index("-D")
        rest = opts[1:i] + opts[i + 2 :]
        return cls(data, " ".join(shlex.quote(a) for a in rest))

    def _run(self, *args: str) -> None:
        bindir = postgres_bin_dir()
        assert bindir is not None
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        cmd = [*prefix, str(bindir / "pg_ctl"), "-D", str(self.data), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=self.data.parent)
        assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout}\n{res.stderr}"

    def stop(self) -> None:
        """Fast shutdown: open connections are terminated, like a database going away."""
        self._run("-m", "fast", "-w", "stop")

    def start(self) -> None:
        self._run(
            "-l", str(self.data.parent / "log"), "-o", self.options, "-w", "-t", "30", "start"
        )
