"""Loopback ports for the servers the project starts itself (demo loop, tests)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20000
"""Ports under this are left alone (well-known and registered services)."""
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_pick = random.SystemRandom()  # not the `random` module's state, which a test may seed
_given: set[int] = set()


def _below_ephemeral() -> range:
    """Ports the OS never hands out by itself: under its ephemeral range (Linux)."""
    try:
        first = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(_LOWEST, first)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to right now.

    Picked under the OS's ephemeral range where there is room: a port from that range
    can be taken by any outgoing connection or port-0 bind of another process between
    this pick and the server's own bind, which is likely when many processes are busy.
    Elsewhere the OS picks."""
    pool = _below_ephemeral()
    for _ in range(50 if len(pool) > 1000 else 0):
        port = _pick.choice(pool)
        if port not in _given and bindable(port):
            _given.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bindable(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:`port` now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
