"""A throwaway PostgreSQL server from Debian's binaries, on a free port in a temp dir.

initdb refuses to run as root, so as root every server command runs as the `postgres`
user (`runuser -u postgres --`) over a data dir that user owns. Missing binaries skip
the test (fail under CI, where they must be installed).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.common.net import free_port as free_port  # re-exported: the tests import it here
from tests.helpers.require import unavailable

USER = "seamless"
PASSWORD = "s3cret-pg-pw"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg2: with SQLAlchemy 2.1 plain postgresql:// means psycopg 3)."""
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        )

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements in autocommit mode (CREATE DATABASE cannot run in a transaction)."""
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=database
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()


def postgres_bin_dir() -> Path | None:
    """Newest /usr/lib/postgresql/<version>/bin holding initdb, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    return Path(max(found, key=lambda p: int(Path(p).parts[-3]))).parent


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL (password auth over TCP), yield it, stop it and delete its files."""
    bindir = postgres_bin_dir()
    if bindir is None:
        unavailable("install Debian's postgresql")
        raise AssertionError("unreachable")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        if shutil.which("runuser") is None:
            unavailable("running as root needs runuser (util-linux) to start PostgreSQL")
        try:
            import pwd

            pg = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root needs the 'postgres' user; install Debian's postgresql")
            raise
        prefix = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="seamless-pg-"))
    if as_root:
        os.chown(root, pg.pw_uid, pg.pw_gid)
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if as_root:
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)

    def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=60, cwd=root)
        if check and res.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}\n{log}")
        return res

    started = False
    try:
        run(
            str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        for attempt in range(3):  # a free port can be taken between probe and bind
            port = free_port()
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            res = run(
                str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts,
                "-w", "-t", "30", "start", check=attempt == 2,
            )  # fmt: skip
            if res.returncode == 0:
                started = True
                break
        yield PostgresServer("127.0.0.1", port, USER, PASSWORD)
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    """Module-scoped PostgreSQL; import this name into a test module to use it."""
    with postgres_server() as server:
        yield server
