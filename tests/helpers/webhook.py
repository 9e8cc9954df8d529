"""A webhook receiver on 127.0.0.1 for the tests: records every POST, answers with the
statuses it is told (then 200)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.helpers.loopback import answer, loopback_server


class Receiver:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answered in order, then 200
        self.lock = threading.Lock()
        self.url = ""

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            out = [p["body"] for p in self.posts]
        return [b for b in out if event is None or b.get("event") == event]


@contextmanager
def webhook_receiver(path: str = "/hook/T0KEN-secret") -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.posts.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(raw or b"null"),
                        "status": status,
                    }
                )
            answer(self, b"ok", "text/plain", status)

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler) as base:
        receiver.url = f"{base}{path}"
        yield receiver
