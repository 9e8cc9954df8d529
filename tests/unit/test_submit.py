"""`seamless submit` against endpoints that refuse: one sentence each, exit 1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.common.errors import SeamlessError
from components.common.net import free_port
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


def test_unreachable_host() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SeamlessError, match=r"is unreachable \(connection refused\)\.$"):
        submit(host, "training", {})


def test_bad_token(kfp_endpoint: str) -> None:
    with pytest.raises(SeamlessError, match=r"rejected the credentials \(HTTP 401\)"):
        submit(kfp_endpoint, "training", {}, token="bad")


def test_unknown_pipeline() -> None:
    with pytest.raises(SeamlessError, match=r"Unknown pipeline 'nope'"):
        package_path("nope")


def test_run_arguments_follow_each_pipelines_parameters() -> None:
    from pipelines.submit import run_arguments

    assert run_arguments("training", "cfg", "s3://b/data", []) == {
        "config_yaml": "cfg",
        "data_dir": "s3://b/data",
    }
    args = run_arguments(
        "batch-scoring", "cfg", "", ["input_uri=s3://b/new.parquet", "as_of=now", "model_version=3"]
    )
    assert args == {
        "config_yaml": "cfg",
        "input_uri": "s3://b/new.parquet",
        "as_of": "now",
        "model_version": "3",
    }
    with pytest.raises(SeamlessError, match=r"needs --param input_uri=\.\.\."):
        run_arguments("batch-scoring", "cfg", "", ["as_of=now"])
    with pytest.raises(SeamlessError, match="takes no --data-dir"):
        run_arguments("batch-scoring", "cfg", "s3://b/data", ["input_uri=x"])
    with pytest.raises(
        SeamlessError,
        match="--param input: the batch-scoring pipeline's parameters are as_of, input_uri",
    ):
        run_arguments("batch-scoring", "cfg", "", ["input=x"])
    with pytest.raises(SeamlessError, match="expected KEY=VALUE"):
        run_arguments("training", "cfg", "", ["data_dir"])
