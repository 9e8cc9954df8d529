"""A throwaway `redis-server` and a Feast repo whose online store is that Redis.

The server runs on 127.0.0.1 on a free port with its files in a temp dir; `stop()`
saves its data (SHUTDOWN SAVE) and `start()` brings it back on the same port with the
same data, so a test can take the online store away and give it back. Missing
`redis-server` skips (fails under CI, where .ci/run installs it).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

from components.common.config import SeamlessConfig
from tests.helpers.postgres import free_port
from tests.helpers.require import unavailable


class RedisServer:
    """`tls=(cert, key, ca)`: TLS only on the port, as on the cluster (`--port 0`, no
    client certificates); `command()` then verifies the server against `ca`."""

    def __init__(self, root: Path, port: int, tls: tuple[Path, Path, Path] | None = None) -> None:
        self.root = root
        self.port = port
        self.host = "127.0.0.1"
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        """Feast's `online_store.connection_string` for this server."""
        if self.tls:
            return f"{self.host}:{self.port},ssl=true,ssl_ca_certs={self.tls[2]}"
        return f"{self.host}:{self.port}"

    def _listen_args(self) -> list[str]:
        if not self.tls:
            return ["--port", str(self.port)]
        cert, key, _ = self.tls
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                "--tls-key-file", str(key), "--tls-auth-clients", "no"]  # fmt: skip

    def start(self, timeout_s: float = 20.0) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, "--bind", self.host, *self._listen_args(), "--dir", str(self.root),
             "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log_tail()}")
            try:
                if self.command("PING") == b"+PONG":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Save the data and shut the server down (its port refuses connections)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with suppress(OSError):  # the server closes the connection without answering
            self.command("SHUTDOWN SAVE")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def command(self, line: str) -> bytes:
        """One inline command; the first line of the answer."""
        with socket.create_connection((self.host, self.port), timeout=2) as plain:
            s = plain
            if self.tls:
                context = ssl.create_default_context(cafile=str(self.tls[2]))
                # The CA is checked, the name not: tests start servers whose certificate
                # deliberately does not name 127.0.0.1 (the clients under test refuse them).
                context.check_hostname = False
                s = context.wrap_socket(plain, server_hostname=self.host)
            s.sendall(line.encode() + b"\r\n")
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.strip()

    def log_tail(self) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextmanager
def redis_server(tls: tuple[Path, Path, Path] | None = None) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("install Debian's redis-server (apt-get install -y redis-server)")
    root = Path(tempfile.mkdtemp(prefix="seamless-redis-"))
    server = RedisServer(root, free_port(), tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def redis_repo_config(project: str, repo: Path, connection_string: str) -> dict[str, Any]:
    """The local repo's feature_store.yaml with the online store swapped for Redis."""
    from components.features.repo import local_repo_config

    cfg = local_repo_config(project, repo)
    cfg["online_store"] = {"type": "redis", "connection_string": connection_string}
    return cfg


def build_redis_repo(
    root: Path, config: SeamlessConfig, connection_string: str, rows: int = 3000, seed: int = 5
) -> Path:
    """A Feast repo at `<root>/feast` on Redis, materialized from the serving workspace's
    demo data (same rows and seed as `workspace.build_workspace`); returns the repo."""
    import pandas as pd

    from components.features.features import build_features
    from components.features.repo import FEATURE_STORE_YAML
    from pipelines.demo_data import generate

    repo = root / "feast"
    repo.mkdir(parents=True)
    # Written first: `ensure_repo` keeps an existing feature_store.yaml, as on a cluster.
    (repo / FEATURE_STORE_YAML).write_text(
        yaml.safe_dump(
            redis_repo_config(config.features.project, repo, connection_string), sort_keys=False
        )
    )
    paths = generate(root / "data", n_rows=rows, seed=seed)
    tables = {name: pd.read_parquet(p) for name, p in paths.items()}
    hashes = {name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for name, p in paths.items()}
    build_features(config, tables, hashes, repo)
    return repo


def repo_variant(repo: Path, dest: Path, connection_string: str) -> Path:
    """A second repo folder on the same registry and Redis data, with another
    `connection_string` (e.g. client options); online reads need nothing else."""
    from components.features.repo import FEATURE_STORE_YAML

    cfg = yaml.safe_load((repo / FEATURE_STORE_YAML).read_text())
    cfg["online_store"]["connection_string"] = connection_string
    dest.mkdir(parents=True)
    (dest / FEATURE_STORE_YAML).write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


def same_predictions(
    client: Any, sqlite_client: Any, ids: list[Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One /v1/predict for `ids` to an app on a Redis store (`client`) and to the same
    app on the SQLite store: both answer 200, and `client`'s predictions are for `ids` in
    order with the SQLite store's scores. Returns both bodies."""
    import pytest

    on_redis = client.post("/v1/predict", json={"entity_ids": ids})
    on_sqlite = sqlite_client.post("/v1/predict", json={"entity_ids": ids})
    assert on_redis.status_code == 200, on_redis.text
    assert on_sqlite.status_code == 200, on_sqlite.text
    r, s = on_redis.json(), on_sqlite.json()
    assert [p["entity_id"] for p in r["predictions"]] == ids
    assert [p["score"] for p in r["predictions"]] == pytest.approx(
        [p["score"] for p in s["predictions"]], abs=1e-12
    )
    return r, s


__all__ = [
    "RedisServer",
    "build_redis_repo",
    "redis_repo_config",
    "redis_server",
    "repo_variant",
    "same_predictions",
]
