"""A throwaway Redis Cluster of three masters on loopback (no replicas): one
`redis-server --cluster-enabled yes` per free port in a temp dir, joined with
`redis-cli --cluster create`; stopped and removed afterwards. Missing binaries skip
(fail under CI)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from components.common.net import free_port
from tests.helpers.require import unavailable

BUS_OFFSET = 10_000
"""Redis Cluster's node-to-node bus listens on the client port + 10000."""


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port + BUS_OFFSET < 65536 and _bindable(port + BUS_OFFSET) and port not in ports:
            ports.append(port)
    return ports


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10)  # fmt: skip
    return done.stdout


@contextmanager
def redis_cluster(masters: int = 3, timeout_s: float = 30.0) -> Iterator[list[int]]:
    """The client ports of a running cluster whose every slot is served."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        unavailable("install Debian's redis-server (apt-get install -y redis-server)")
    root = Path(tempfile.mkdtemp(prefix="seamless-redis-cluster-"))
    ports = _cluster_ports(masters)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node = root / str(port)
            node.mkdir()
            with (node / "redis.log").open("ab") as log:
                procs.append(subprocess.Popen(
                    ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--dir", str(node), "--save", "", "--appendonly", "no",
                     "--protected-mode", "no", "--daemonize", "no"],
                    stdout=log, stderr=subprocess.STDOUT, cwd=node,
                ))  # fmt: skip
        deadline = time.monotonic() + timeout_s
        for port, proc in zip(ports, procs, strict=True):
            while _cli(port, "PING").strip() != "PONG":
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not start:\n{_logs(root)}")
                time.sleep(0.05)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
        for port in ports:
            while "cluster_state:ok" not in _cli(port, "CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not come up:\n{_logs(root)}")
                time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)


def _logs(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-2000:] for p in root.glob("*/redis.log"))
