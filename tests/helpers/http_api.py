"""A real JSON API on 127.0.0.1 in a background thread, with pagination and failures.

Routes (all GET):
- `/records?page=N&page_size=M`  page pagination: `{"data": [...]}`, empty past the end;
- `/cursor?offset=K&page_size=M` next_url pagination: `{"data": [...], "next": "/cursor?..."}`;
- `/list`                        the records as a bare JSON list;
- `/html`                        a 200 answer that is not JSON;
- `/nokey`                       JSON without the `data` key;
- `/forever?page=N`              a page that is never empty;
- `/files/<name>`                raw bytes registered in `files` (for file sources over HTTP).

`fail_first` requests answer `fail_status`; `slow_first` requests (or all, with
`slow_all`) sleep `delay_s` before answering. Every request path is kept in `requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class JsonApi:
    """State and behaviour of the server; change attributes between requests freely."""

    def __init__(self, records: list[dict[str, Any]] | None = None) -> None:
        self.records = records or []
        self.files: dict[str, bytes] = {}
        self.max_page_size = 1000
        self.fail_first = 0
        self.fail_status = 500
        self.slow_first = 0
        self.slow_all = False
        self.delay_s = 0.0
        self.requests: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.base_url = ""
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base_url + path

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            n = len(self.requests)
            self.requests.append(path)
            self.headers_seen.append(headers)
        if self.slow_all or n < self.slow_first:
            time.sleep(self.delay_s)
        if n < self.fail_first:
            return self.fail_status, "application/json", b'{"error": "injected failure"}'
        parts = urlsplit(path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        size = min(int(q.get("page_size", self.max_page_size)), self.max_page_size)
        route = parts.path
        if route == "/records":
            start = (int(q.get("page", 1)) - 1) * size
            return self._json({"data": self.records[start : start + size]})
        if route == "/cursor":
            offset = int(q.get("offset", 0))
            body: dict[str, Any] = {"data": self.records[offset : offset + size]}
            if offset + size < len(self.records):
                body["next"] = f"/cursor?offset={offset + size}&page_size={size}"
            return self._json(body)
        if route == "/list":
            return self._json(self.records)
        if route == "/html":
            return 200, "text/html", b"<html><body>Service maintenance</body></html>"
        if route == "/nokey":
            return self._json({"items": self.records, "count": len(self.records)})
        if route == "/forever":
            return self._json({"data": [{"id": int(q.get("page", 1))}]})
        if route.startswith("/files/") and route[len("/files/") :] in self.files:
            return 200, "application/octet-stream", self.files[route[len("/files/") :]]
        return 404, "application/json", b'{"error": "not found"}'

    @staticmethod
    def _json(payload: Any) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(payload).encode()


def _handler(api: JsonApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, ctype, body = api._answer(self.path, dict(self.headers.items()))
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # slow handlers must not block shutdown

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out close their socket mid-answer


@contextmanager
def json_api(records: list[dict[str, Any]] | None = None) -> Iterator[JsonApi]:
    """Serve a `JsonApi` on a free 127.0.0.1 port for the duration of the block."""
    api = JsonApi(records)
    server = _Server(("127.0.0.1", 0), _handler(api))
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
