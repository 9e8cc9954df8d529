"""The cluster deploy step's Kubernetes API calls, through the real client library.

No API server can run on these machines (see DESIGN.md), so a small HTTP server on
loopback plays the one Deployment the step may touch and records what it receives.
Connection failures are real too: a loopback port with nothing listening, and a socket
that accepts connections but never answers.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from components.common.errors import SeamlessError
from components.deploy.kubernetes import VERSION_ANNOTATION, roll_serving

pytestmark = pytest.mark.unit
PATH = "/apis/apps/v1/namespaces/seamless/deployments/serving"


class _ApiServer(BaseHTTPRequestHandler):
    patches: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != PATH:
            self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
        elif self.status != 200:
            self._reply(self.status, {"kind": "Status", "code": self.status})
        else:
            self._reply(200, {"kind": "Deployment", "metadata": {"name": "serving"}})

    def do_PATCH(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).patches.append(
            {"type": self.headers["Content-Type"], "body": json.loads(self.rfile.read(length))}
        )
        self._reply(200, {"kind": "Deployment", "metadata": {"name": "serving"}})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def apps_api() -> Iterator[Any]:
    from kubernetes import client

    _ApiServer.patches = []
    _ApiServer.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield client.AppsV1Api(client.ApiClient(cfg))
    finally:
        server.shutdown()


def test_rollout_patches_the_pod_template(apps_api: Any) -> None:
    record = roll_serving("credit_risk", "7", "seamless", "serving", "run-1", api=apps_api)
    assert record["model_uri"] == "models:/credit_risk/7"
    (patch,) = _ApiServer.patches
    assert "merge-patch" in patch["type"] or "strategic-merge-patch" in patch["type"]
    annotations = patch["body"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations[VERSION_ANNOTATION] == "credit_risk/7"
    assert annotations["seamless.dev/pipeline-run-id"] == "run-1"


def test_missing_deployment_is_one_sentence(apps_api: Any) -> None:
    with pytest.raises(SeamlessError, match=r"deployment seamless/other does not exist"):
        roll_serving("credit_risk", "7", "seamless", "other", api=apps_api)
    assert _ApiServer.patches == []


def test_forbidden_names_the_permission(apps_api: Any) -> None:
    _ApiServer.status = 403
    with pytest.raises(SeamlessError, match=r"Not allowed to patch .*get and patch"):
        roll_serving("credit_risk", "7", "seamless", "serving", api=apps_api)


def _client_for(host: str) -> Any:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = host
    return client.AppsV1Api(client.ApiClient(cfg))


def test_server_error_is_one_sentence(apps_api: Any) -> None:
    _ApiServer.status = 500
    with pytest.raises(
        SeamlessError, match=r"Patching deployment seamless/serving failed: HTTP 500"
    ):
        roll_serving("credit_risk", "7", "seamless", "serving", api=apps_api)


def test_refused_connection_names_the_api_server_and_the_reason() -> None:
    with socket.socket() as probe:  # a free port; nothing listens once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = _client_for(f"http://127.0.0.1:{port}")
    with pytest.raises(SeamlessError) as caught:
        roll_serving("credit_risk", "7", "seamless", "serving", api=api)
    message = str(caught.value)
    assert message == (
        f"Cannot reach the Kubernetes API server at http://127.0.0.1:{port} to patch "
        "deployment seamless/serving: Connection refused (check that the step's egress "
        "NetworkPolicy allows that address)."
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_silent_api_server_times_out_in_one_sentence() -> None:
    with socket.socket() as silent:  # accepts (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        api = _client_for(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(
            SeamlessError, match=r"API server at http://127\.0\.0\.1:\d+ .*timed out"
        ):
            roll_serving("credit_risk", "7", "seamless", "serving", api=api, timeout=(1.0, 0.2))
        assert time.monotonic() - started < 10
