"""The ASGI layer in front of the FastAPI app: limiter, metrics, and the hot path.

Every request passes here: prediction routes are refused with 503 while the event loop
lags beyond the queueing budget (overload.py), take a concurrency slot (429 beyond the
limit), and every answer is counted and timed. `POST /v1/predict` with a well-formed
`{"entity_ids": [...]}` body and a `predict` token is then answered directly: no
routing, dependency injection or pydantic models, which cost more than the lookup and
the model together. With the ONNX predictor, a local SQLite store and the file log it
runs on the event loop itself (no worker-thread hop), the prediction log's fsync
included: one per loop iteration, shared by its requests (group commit).
Any other request, or anything unusual about this one (another
content type, a missing token, a value of the wrong type, too many ids), goes to the
FastAPI app unchanged (its body replayed), which answers it with its full validation
and error messages. Both paths call the same `Service` methods.

Every other request passes the body limit here (`--max-body-bytes`: 413 with the JSON
error body before the rest is read, chunked bodies counted), and an infer request with the
`Inference-Header-Content-Length` header (the OIP binary tensor data extension) is split:
the JSON header goes on to the FastAPI route as the body, the tensor bytes ride along in
the scope (`seamless.binary`). Both cost those requests one scan of their headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from components.serve.api import oip
from components.serve.api.auth import TokenAuth
from components.serve.metrics import children
from components.serve.service import Scored, ServeError, Service

log = logging.getLogger(__name__)
RETRY_AFTER_S = "1"
PREDICT = "/v1/predict"
BODY_ROUTES = {PREDICT, "/v1/feedback", "/admin/reload"}  # metrics labels of a 413
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def limited(path: str) -> bool:
    """Prediction routes: the ones the concurrency limit guards."""
    return path == PREDICT or (path.startswith("/v2/models/") and path.endswith("/infer"))


# One encoder for every answer: json.dumps with options builds a new one per call.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(body: Any) -> bytes:
    """JSON as FastAPI's JSONResponse renders it."""
    return _JSON.encode(body).encode("utf-8")


def error_key(path: str) -> str:
    """The key of an error's sentence: `error` on the OIP routes (what their clients read)."""
    return "error" if path.startswith("/v2/") else "detail"


def _infer_route(path: str) -> str:
    """The route template of an infer path (for the metrics of an answer given here)."""
    parts = path.split("/")
    if len(parts) == 5:
        return "/v2/models/{name}/infer"
    if len(parts) == 7 and parts[4] == "versions":
        return "/v2/models/{name}/versions/{version}/infer"
    return "unmatched"


def error_body(path: str, exc: ServeError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, JSON body and extra headers of a ServeError (OIP routes say `error`)."""
    key = error_key(path)
    headers = [(b"retry-after", RETRY_AFTER_S.encode())] if exc.status == 503 else []
    return exc.status, dumps({key: str(exc), **exc.extra}), headers


class Front:
    """ASGI middleware around the FastAPI app (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, service: Service, auth: TokenAuth, executor: ThreadPoolExecutor
    ) -> None:
        self.app = app
        self.service = service
        self.auth = auth
        self.executor = executor
        m = service.metrics
        self._fast_latency = m.latency.labels(PREDICT, "POST")
        self._requests = children(m.requests)
        self._int_keys = service.features.placeholder_id() == -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        service = self.service
        guarded = limited(scope["path"])
        if guarded and service.lag.shedding:
            # Overloaded (overload.py): refuse before reading the body or doing any work.
            service.metrics.shed.inc()
            lag = service.lag
            body = dumps(
                {
                    error_key(scope["path"]): f"Server overloaded (event loop "
                    f"{lag.lag_s * 1000:.0f} ms behind, budget {lag.budget_s * 1000:.0f} ms); "
                    "retry later."
                }
            )
            retry = str(lag.retry_after_s()).encode()
            await _respond(send_status, 503, body, [(b"retry-after", retry)])
        elif guarded and not service.limiter.try_acquire():
            service.metrics.rejected.inc()
            body = dumps({error_key(scope["path"]): "Too many requests in flight; retry later."})
            await _respond(send_status, 429, body, [(b"retry-after", RETRY_AFTER_S.encode())])
        elif guarded:
            service.metrics.in_flight.inc()
            try:
                if scope["path"] == PREDICT and scope["method"] == "POST":
                    await self._predict(scope, receive, send_status)
                else:
                    await self._forward(scope, receive, send_status)
            finally:
                service.limiter.release()
                service.metrics.in_flight.dec()
        else:
            await self._forward(scope, receive, send_status)
        # The route template, never the raw path: bounded label cardinality.
        name = scope.get("seamless.route") or getattr(scope.get("route"), "path", "unmatched")
        elapsed = time.perf_counter() - started
        metrics, method = service.metrics, scope["method"]
        if name == PREDICT and method == "POST":
            self._fast_latency.observe(elapsed)
            self._requests(PREDICT, "POST", str(status[0])).inc()
        else:
            metrics.latency.labels(name, method).observe(elapsed)
            metrics.requests.labels(name, method, str(status[0])).inc()

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.service.settings.max_body_bytes
        body, disconnected = await _read_body(receive, limit)
        if len(body) > limit:
            scope["seamless.route"] = PREDICT
            detail = f"Request body exceeds the limit of {limit} bytes (--max-body-bytes)."
            await _respond(send, 413, dumps({"detail": detail}), [(b"connection", b"close")])
            return
        ids = None if disconnected else self._fast_ids(scope, body)
        if ids is None:
            await self.app(scope, _replay(body, receive), send)
            return
        scope["seamless.route"] = PREDICT
        loaded = self.service.models.current
        if self.service.async_log and loaded is not None and loaded.predictor.kind == "onnx":
            status, out, headers = await self._score_inline(ids)
        else:
            loop = asyncio.get_running_loop()
            status, out, headers = await loop.run_in_executor(self.executor, self._score, ids)
        await _respond(send, status, out, headers)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """To the FastAPI app, past the body limit (413 before the rest is read) and with a
        binary tensor data request split (`_binary_infer`). A body with a Content-Length
        within the limit goes on unread (the server delivers no more than it says)."""
        length = chunked = binary = ctype = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                length = v
            elif k == b"transfer-encoding":
                chunked = v
            elif k == b"inference-header-content-length":
                binary = v
            elif k == b"content-type":
                ctype = v
        if scope["path"].endswith("/infer"):
            if binary is not None:
                await self._binary_infer(scope, receive, send, binary)
                return
            if ctype is None:
                # Triton's client sends its JSON without a Content-Type, which FastAPI's
                # strict content type would refuse (422): the protocol's body is JSON.
                scope["headers"] = [*scope["headers"], (b"content-type", b"application/json")]
        limit = self.service.settings.max_body_bytes
        if length is not None:
            if length.isdigit() and int(length) > limit:
                await self._too_large(scope, send)
            else:
                await self.app(scope, receive, send)
        elif chunked is None:
            await self.app(scope, receive, send)  # no body
        else:
            body, _ = await _read_body(receive, limit)
            if len(body) > limit:
                await self._too_large(scope, send)
            else:
                await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        scope["seamless.route"] = path if path in BODY_ROUTES else _infer_route(path)
        limit = self.service.settings.max_body_bytes
        error = f"Request body exceeds the limit of {limit} bytes (--max-body-bytes)."
        body = dumps({error_key(path): error})
        await _respond(send, 413, body, [(b"connection", b"close")])

    async def _binary_infer(
        self, scope: Scope, receive: Receive, send: Send, header: bytes
    ) -> None:
        """A binary tensor data request: the route gets the JSON header as the body and the
        tensor bytes in `scope["seamless.binary"]` (oip.py decodes them)."""
        limit = self.service.settings.max_body_bytes
        body, _ = await _read_body(receive, limit)
        if len(body) > limit:
            await self._too_large(scope, send)
            return
        try:
            head, tensors = oip.split_binary(body, header)
        except oip.OipError as exc:
            scope["seamless.route"] = _infer_route(scope["path"])
            await _respond(send, exc.status, dumps({"error": str(exc)}), [])
            return
        scope["seamless.binary"] = tensors
        scope["headers"] = [
            *((k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(head)).encode()),
        ]
        await self.app(scope, _replay(head, receive), send)

    async def _score_inline(self, ids: list[Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """`_score` on the event loop when nothing in it blocks for long: a local SQLite
        read or an asyncio Redis read (a first-time or SDK lookup still goes to a worker
        thread), the ONNX graph (tens of microseconds), the log's write and the
        iteration's shared fsync."""
        service = self.service
        try:
            rows = service.lookup_local(ids)
            if rows is None:
                rows = await service.lookup_async(ids)
            if rows is None:
                loop = asyncio.get_running_loop()
                rows = await loop.run_in_executor(self.executor, service.lookup, ids)
            scored = await service.score_async(rows, ids, PREDICT)
        except Exception as exc:
            return self._failure(exc)
        return 200, self._body(ids, scored), []

    def _fast_ids(self, scope: Scope, body: bytes) -> list[Any] | None:
        """The entity ids when the request is exactly what the hot path serves, else None."""
        ctype = auth = None
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v
            elif k == b"authorization":
                auth = v
        if ctype is None or ctype.split(b";")[0].strip().lower() != b"application/json":
            return None
        roles = self.auth.roles_of(auth.decode("latin-1") if auth is not None else None)
        if roles is None or "predict" not in roles:
            return None  # FastAPI answers 401/403 (and audits) as usual
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # deep nesting: FastAPI answers 4xx
            return None
        if type(doc) is not dict or len(doc) != 1:
            return None
        ids = doc.get("entity_ids")
        if type(ids) is not list or not ids or len(ids) > self.service.settings.max_batch:
            return None
        if self._int_keys:
            ok = all(type(v) is int and INT64_MIN <= v <= INT64_MAX for v in ids)
        else:
            ok = all(type(v) is str for v in ids)
        return ids if ok else None

    def _score(self, ids: list[Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Lookup, score, log (in a worker thread: the log write waits for fsync)."""
        service = self.service
        try:
            scored = service.score(service.lookup(ids), ids, PREDICT)
        except Exception as exc:
            return self._failure(exc)
        return 200, self._body(ids, scored), []

    @staticmethod
    def _failure(exc: Exception) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """A ServeError's own status and message; anything else is logged and a 500."""
        if isinstance(exc, ServeError):
            return error_body(PREDICT, exc)
        log.exception("Prediction failed.", exc_info=exc)
        return 500, dumps({"detail": "Internal Server Error"}), []

    def _body(self, ids: list[Any], scored: Scored) -> bytes:
        m, rid = scored.model, scored.request_id
        decisions = scored.decisions.tolist()
        predictions = [
            {
                "entity_id": ids[i],
                "index": i,
                "score": s,
                "decision": decisions[i],
                "model_name": m.name,
                "model_version": m.version,
                "request_id": rid,
            }
            for i, s in enumerate(scored.scores.tolist())
        ]
        body = {
            "request_id": rid,
            "model_name": m.name,
            "model_version": m.version,
            "threshold": self.service.threshold,
            "predictions": predictions,
        }
        return dumps(body)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole request body, and whether the client went away meanwhile; reading stops
    once more than `limit` bytes came (the caller answers 413)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body to the app, then defers to the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
