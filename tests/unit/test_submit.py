"""`seamless submit` against endpoints that refuse: one sentence each, exit 1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.common.errors import SeamlessError
from pipelines.submit import package_path, submit

pytestmark = pytest.mark.unit


class _Refuses(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.send_response(200 if auth == "Bearer good" else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def kfp_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_host() -> None:
    host = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(SeamlessError, match=r"is unreachable \(connection refused\)\.$"):
        submit(host, "training", {})


def test_bad_token(kfp_endpoint: str) -> None:
    with pytest.raises(SeamlessError, match=r"rejected the credentials \(HTTP 401\)"):
        submit(kfp_endpoint, "training", {}, token="bad")


def test_unknown_pipeline() -> None:
    with pytest.raises(SeamlessError, match=r"Unknown pipeline 'nope'"):
        package_path("nope")
