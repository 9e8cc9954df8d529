"""A webhook receiver on 127.0.0.1 for the tests: records every POST, answers with the
statuses it is told (then 200)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
