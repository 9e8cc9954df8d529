"""A port that refuses connections for a while, then relays them to a real server: what a
fresh pod sees before the node has applied its NetworkPolicies (issue #14 A.1)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from tests.helpers.postgres import free_port


def _relay_after(delay_s: float, port: int, target: tuple[str, int], stop: threading.Event) -> None:
    time.sleep(delay_s)
    with socket.create_server(("127.0.0.1", port)) as server:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def late_port(target_port: int, delay_s: float = 2.0) -> Iterator[int]:
    """A loopback port that refuses for `delay_s`, then relays to `target_port`."""
    port, stop = free_port(), threading.Event()
    relay = threading.Thread(
        target=_relay_after, args=(delay_s, port, ("127.0.0.1", target_port), stop), daemon=True
    )
    relay.start()
    try:
        yield port
    finally:
        stop.set()
        relay.join(timeout=5)
