"""A throwaway Redis Cluster of three masters on loopback (no replicas): one
`redis-server --cluster-enabled yes` per free port in a temp dir, joined with
`redis-cli --cluster create`; stopped and removed afterwards. Missing binaries skip
(fail under CI). A node can be stopped and started again with its data (`Cluster`), and
a slot migrated between masters as a resharding does (`migrating`, `move_slot`)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from components.common.net import bindable, free_port
from tests.helpers.require import unavailable

BUS_OFFSET = 10_000
"""Redis Cluster's node-to-node bus listens on the client port + 10000."""


def _cluster_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port + BUS_OFFSET < 65536 and bindable(port + BUS_OFFSET) and port not in ports:
            ports.append(port)
    return ports


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10)  # fmt: skip
    return done.stdout


class Cluster(list[int]):
    """The client ports of the masters, and their servers (stop/start one by port)."""

    def __init__(self, root: Path, ports: list[int]) -> None:
        super().__init__(ports)
        self.root = root
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int, deadline: float | None = None) -> None:
        """(Re)start the node on `port` with its nodes.conf and saved data."""
        node = self.root / str(port)
        node.mkdir(exist_ok=True)
        with (node / "redis.log").open("ab") as log:
            self.procs[port] = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--dir", str(node), "--save", "", "--appendonly", "no",
                 "--protected-mode", "no", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, cwd=node,
            )  # fmt: skip
        deadline = time.monotonic() + 30 if deadline is None else deadline
        while _cli(port, "PING").strip() != "PONG":
            if self.procs[port].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {port} did not start:\n{_logs(self.root)}")
            time.sleep(0.05)

    def stop(self, port: int) -> None:
        """Save the node's data and shut it down (its port refuses connections)."""
        _cli(port, "SHUTDOWN", "SAVE")
        proc = self.procs.pop(port)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every node says the cluster serves all its slots."""
        deadline = time.monotonic() + timeout_s
        for port in self:
            while "cluster_state:ok" not in _cli(port, "CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not come up:\n{_logs(self.root)}")
                time.sleep(0.1)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
        self.procs.clear()


@contextmanager
def redis_cluster(masters: int = 3, timeout_s: float = 30.0) -> Iterator[Cluster]:
    """A running cluster whose every slot is served (a list of its client ports)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        unavailable("install Debian's redis-server (apt-get install -y redis-server)")
    cluster = Cluster(
        Path(tempfile.mkdtemp(prefix="seamless-redis-cluster-")), _cluster_ports(masters)
    )
    try:
        deadline = time.monotonic() + timeout_s
        for port in cluster:
            cluster.start(port, deadline)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in cluster),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
        cluster.wait_ok(max(deadline - time.monotonic(), 0.0))
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(cluster.root, ignore_errors=True)


@contextmanager
def migrating(ports: list[int], key: bytes, src: int) -> Iterator[int]:
    """`key`'s slot mid-migration from the master on port `src` to another master, whose
    port is yielded: inside, the slot's keys are already on the new master while the old
    one still owns the slot (a client asking the old one is answered ASK); on leaving,
    the slot is the new master's on every node (the old one answers MOVED)."""
    import redis as redis_py
    from redis.crc import key_slot

    nodes = {p: redis_py.Redis(host="127.0.0.1", port=p) for p in ports}
    try:
        dst = next(p for p in ports if p != src)
        ids = {p: nodes[p].execute_command("CLUSTER", "MYID").decode() for p in (src, dst)}
        slot = key_slot(key)
        nodes[dst].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
        nodes[src].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
        keys = nodes[src].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        nodes[src].execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
        try:
            yield dst
        finally:
            for node in nodes.values():
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
    finally:
        for node in nodes.values():
            node.close()


def move_slot(ports: list[int], key: bytes, src: int) -> int:
    """Migrate `key`'s slot (and its keys) from the master on port `src` to another
    master, as a resharding does; returns the new master's port."""
    with migrating(ports, key, src) as dst:
        return dst


def node_port(ports: list[int], key: bytes) -> int:
    """The port of the master serving `key`'s slot, asked of the cluster itself."""
    import redis as redis_py
    from redis.crc import key_slot

    slot = key_slot(key)
    client: Any = redis_py.Redis(host="127.0.0.1", port=ports[0])
    try:
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
    finally:
        client.close()
    raise LookupError(f"no master serves slot {slot}")


def _logs(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-2000:] for p in root.glob("*/redis.log"))
