"""free_port: ports the OS never hands out by itself, each given once."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from components.common import net
from components.common.net import free_port

pytestmark = pytest.mark.unit


def test_ports_are_under_the_ephemeral_range_distinct_and_bindable() -> None:
    first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    random.seed(1)  # a seeded `random` in the same process does not repeat the ports
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    assert all(20000 <= p < first for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # nothing holds it


def test_a_port_in_use_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        monkeypatch.setattr(net, "_below_ephemeral", lambda: range(taken, taken + 1001))
        monkeypatch.setattr(net._pick, "choice", lambda pool: taken)
        # Every pick is the held port: the OS picks instead.
        assert free_port() != taken


def test_without_a_range_to_pick_from_the_os_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net, "_EPHEMERAL_RANGE", Path("/nonexistent"))
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
