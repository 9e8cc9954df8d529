"""The FastAPI app: routes over `Service`; see README.md for the API.

No `from __future__ import annotations` here: the request models are built from the
config inside `create_app`, and FastAPI must see them as real objects, not strings.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from components.common.config import SeamlessConfig, load_config
from components.common.env import disable_telemetry
from components.common.errors import SeamlessError
from components.serve import metrics
from components.serve.api import oip
from components.serve.api.auth import TokenAuth
from components.serve.api.fastpath import RETRY_AFTER_S, Front, error_key
from components.serve.api.oidc import verifier_from
from components.serve.api.schemas import (
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    InferOutput,
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReady,
    OipErrorBody,
    OipValidationErrorBody,
    Prediction,
    PredictResponse,
    Readiness,
    ReloadAnswer,
    ServerMetadata,
    ValidationErrorBody,
    predict_request_model,
)
from components.serve.models import memory
from components.serve.service import ServeError, Service
from components.serve.settings import ServeSettings

log = logging.getLogger(__name__)

# What the OpenAPI document says each error answer carries (schemathesis checks every
# answer against it: tests/serving/test_schemathesis.py).
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
BEARER_CHALLENGE = {
    "WWW-Authenticate": {"description": "`Bearer`", "required": True, "schema": {"type": "string"}}
}
AUTH_ERRORS = {
    401: "Missing or unknown bearer token.",
    403: "The token lacks the role this route needs.",
}
BODY_ERRORS = {
    413: "Body above --max-body-bytes, or batch above --max-batch.",
    422: "Malformed JSON, wrong types, missing or extra fields (every one named).",
}
LIMITED_ERRORS = {
    429: "Concurrency limit reached (Retry-After).",
    503: "No model loaded, online store or prediction log unavailable, or the server "
    "overloaded (Retry-After).",
}


def error_responses(
    body: type[BaseModel], described: dict[int, str]
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, each with the body and headers it is sent with."""
    out: dict[int | str, dict[str, Any]] = {}
    for code, text in sorted(described.items()):
        entry: dict[str, Any] = {"model": body, "description": text}
        if code == 422:
            entry["model"] = OipValidationErrorBody if body is OipErrorBody else ValidationErrorBody
        elif code == 401:
            entry["headers"] = BEARER_CHALLENGE
        elif code in (429, 503):
            entry["headers"] = RETRY_AFTER
        out[code] = entry
    return out


class PrometheusText(Response):
    """Prometheus' text exposition format 0.0.4 (what every Prometheus version scrapes)."""

    media_type = metrics.CONTENT_TYPE


def _one_thread() -> None:
    # One OpenMP/BLAS thread per request thread (a plain-sklearn model would otherwise
    # start a spinning thread team per call; docs/serving-benchmark.md).
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


class ServingApp(FastAPI):
    """FastAPI with `Front` (fastpath.py) outside Starlette's middleware stack: the hot
    path skips the error, telemetry and body-limit layers, about 4% of a prediction's
    CPU; every other request still passes through all of them (Front hands it on)."""

    front: Front | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        front = self.front
        if front is None:
            await super().__call__(scope, receive, send)
        else:
            await front(scope, receive, send)

    async def stack(self, scope: Any, receive: Any, send: Any) -> None:
        """The app behind Front: FastAPI with its middleware stack."""
        await super().__call__(scope, receive, send)


def create_app(
    settings: ServeSettings | None = None, config: SeamlessConfig | None = None
) -> FastAPI:
    """Build the app; the model is loaded and polling starts when the app starts up."""
    disable_telemetry()  # MLflow/Feast must not phone home from the serving pod either
    memory.limit_arenas()  # before any request thread allocates (memory.py)
    settings = settings or ServeSettings.from_env()
    config = config or load_config(settings.config_path)
    auth = TokenAuth.from_sources(
        settings.tokens_file,
        settings.tokens_json,
        settings.auth_disabled,
        oidc=verifier_from(settings),
    )
    if auth.disabled:
        log.warning("Authentication is DISABLED (--no-auth): for local development only.")
    service = Service(settings, config)
    PredictRequest = predict_request_model(config)
    # The hot path's worker threads: lookups, model calls and log fsyncs block.
    executor = ThreadPoolExecutor(
        max_workers=settings.max_concurrency,
        thread_name_prefix="seamless-predict",
        initializer=_one_thread,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        lag_task = asyncio.create_task(service.lag.run(), name="seamless-loop-lag")
        try:
            yield
        finally:
            lag_task.cancel()
            executor.shutdown(wait=True)
            service.stop()

    app = ServingApp(
        # No max_body_size: Front applies --max-body-bytes to every route (FastAPI's limit
        # answers a plain-text 413, not the JSON error body the OpenAPI document declares).
        title="Seamless serving",
        version="1",
        summary=f"Scores '{config.model.name}' (alias {settings.alias}) on feature service "
        f"'{config.features.service}'.",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry bridge is unused here (metrics are Prometheus'); off, it
        # no longer looks for configured OTel providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming every bad field; the offending inputs are echoed as short text only
        (an echoed Infinity or a huge value must not turn the answer into a 500)."""
        errors = [
            {
                "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
                "input": repr(e.get("input"))[:80],
            }
            for e in exc.errors()[:50]
        ]
        fields = sorted({".".join(str(p) for p in err["loc"][1:]) or "body" for err in errors})
        more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
        message = f"Invalid request: check {', '.join(fields[:5])}{more}."
        syntax = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if syntax is not None:  # its loc is ("body", position): say what is wrong there
            why = str((syntax.get("ctx") or {}).get("error", syntax.get("msg")))[:80]
            at = syntax.get("loc", ())[-1]
            message = f"Invalid request: the body is not JSON ({why} at position {at})."
        body: dict[str, Any] = {"detail": errors, "message": message}
        if request.url.path.startswith("/v2/"):
            body["error"] = message  # where OIP clients read the sentence
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """401/403, 404/405 of unknown paths, 413: `{"error": ...}` on the OIP routes."""
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
            # FastAPI's "There was an error parsing the body": malformed JSON, as above.
            undecodable = {"type": "json_invalid", "loc": ("body", cause.start), "msg": ""}
            return await invalid_request(
                request,
                RequestValidationError([{**undecodable, "ctx": {"error": "not UTF-8 text"}}]),
            )
        if error_key(request.url.path) == "error":
            return JSONResponse(
                {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
            )
        return await http_exception_handler(request, exc)

    bearer = HTTPBearer(auto_error=False, description="Token with role predict or admin.")

    def require(role: str) -> Callable[..., None]:
        def check(
            request: Request,
            creds: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        ) -> None:
            roles = auth.roles_of(request.headers.get("authorization"))
            if roles is None:
                refused = auth.refusal(request.headers.get("authorization"))
                if refused is not None:  # a JWT: who claimed to call, and why refused
                    _audit_refused(*refused, request.url.path)
                raise HTTPException(
                    401, "Missing or unknown bearer token.", {"WWW-Authenticate": "Bearer"}
                )
            if role not in roles:
                if role == "admin":
                    # Denied admin calls are part of the audit trail (who tried what).
                    _audit_denied(request.headers.get("authorization") or "", roles)
                raise HTTPException(403, f"This token lacks the '{role}' role.")

        return check

    predict_auth = [Depends(require("predict"))]
    admin_auth = [Depends(require("admin"))]

    # Limiter, metrics and the /v1/predict hot path (components/serve/api/fastpath.py).
    app.front = Front(app.stack, service=service, auth=auth, executor=executor)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S} if exc.status == 503 else None
        body = {error_key(request.url.path): str(exc), **exc.extra}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(oip.OipError)
    async def oip_error(request: Request, exc: oip.OipError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S} if exc.status == 503 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    # ---- v1 -------------------------------------------------------------------

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        dependencies=predict_auth,
        responses=error_responses(
            ErrorBody,
            {
                **AUTH_ERRORS,
                404: "Unknown entity ids (every one listed in unknown_entity_ids).",
                **BODY_ERRORS,
                **LIMITED_ERRORS,
            },
        ),
        tags=["v1"],
    )
    def predict(body: PredictRequest) -> PredictResponse:  # type: ignore[valid-type]
        """Score entities (features from Feast) or full feature rows (`instances`).

        Any unknown entity fails the whole request with 404 naming them all.
        """
        ids: list[Any] | None = body.entity_ids  # type: ignore[attr-defined]
        instances: list[Any] | None = body.instances  # type: ignore[attr-defined]
        service.check_batch(len(ids) if ids is not None else len(instances or []))
        if ids is not None:
            rows = service.lookup(ids)
        else:
            names = service.feature_names
            rows = [[getattr(row, f) for f in names] for row in instances or []]
        scored = service.score(rows, ids, "/v1/predict")
        m = scored.model
        return PredictResponse(
            request_id=scored.request_id,
            model_name=m.name,
            model_version=m.version,
            threshold=service.threshold,
            predictions=[
                Prediction(
                    entity_id=None if ids is None else ids[i],
                    index=i,
                    score=float(s),
                    decision=bool(scored.decisions[i]),
                    model_name=m.name,
                    model_version=m.version,
                    request_id=scored.request_id,
                )
                for i, s in enumerate(scored.scores)
            ],
        )

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        dependencies=predict_auth,
        responses=error_responses(
            ErrorBody,
            {
                **AUTH_ERRORS,
                **BODY_ERRORS,
                503: "The feedback log cannot be written (Retry-After).",
            },
        ),
        tags=["v1"],
    )
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        """Record ground-truth labels by request id (append-only feedback log)."""
        service.check_batch(len(body.feedback))
        n = service.record_feedback([item.model_dump() for item in body.feedback])
        return FeedbackResponse(recorded=n)

    # ---- Open Inference Protocol v2 -------------------------------------------

    def ready() -> tuple[bool, dict[str, Any]]:
        return service.readiness()

    readiness: dict[int | str, dict[str, Any]] = {
        200: {"model": Readiness, "description": "Ready."},
        503: {"model": Readiness, "description": "Not ready: the body says which part."},
    }

    @app.get("/v2/health/live", tags=["v2"])
    def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"], responses=readiness)
    def v2_ready() -> JSONResponse:
        ok, detail = ready()
        return JSONResponse({"ready": ok, **detail}, status_code=200 if ok else 503)

    @app.get("/v2", response_model=ServerMetadata, tags=["v2"])
    def v2_server() -> ServerMetadata:
        """Server metadata; `extensions` lists the protocol extensions supported."""
        return ServerMetadata(name="seamless", version="1", extensions=oip.EXTENSIONS)

    def model_or_404(name: str, version: str | None = None) -> None:
        if name != service.model_name:
            raise oip.OipError(
                f"Unknown model '{name}'; this server has '{service.model_name}'.", 404
            )
        if version is not None:
            service.check_version(version)

    unknown_model = {404: "Unknown model.", 422: "Malformed path."}
    unknown_version = {
        404: "Unknown model, or not the version served (the sentence names the one served).",
        422: "Malformed path.",
        503: "No model loaded yet (Retry-After).",
    }

    def metadata(name: str) -> ModelMetadata:
        cur = service.models.current
        return ModelMetadata(
            name=name,
            versions=[cur.version] if cur else [],
            platform="sklearn",
            inputs=oip.input_metadata(config),
            outputs=oip.OUTPUTS,
            parameters={
                "entity_input": {
                    "names": [config.entity_key(), oip.ENTITY_ALIAS],
                    "datatype": "INT64" if config.entity_type() == "int" else "BYTES",
                    "shape": [-1],
                    "note": "Alternative to the feature inputs: features looked up in Feast.",
                },
                "threshold": service.threshold,
            },
        )

    @app.get(
        "/v2/models/{name}",
        response_model=ModelMetadata,
        responses=error_responses(OipErrorBody, unknown_model),
        tags=["v2"],
    )
    def v2_metadata(name: str) -> ModelMetadata:
        model_or_404(name)
        return metadata(name)

    @app.get(
        "/v2/models/{name}/versions/{version}",
        response_model=ModelMetadata,
        responses=error_responses(OipErrorBody, unknown_version),
        tags=["v2"],
    )
    def v2_version_metadata(name: str, version: str) -> ModelMetadata:
        """Metadata of the served version (404 naming the served one for any other)."""
        model_or_404(name, version)
        return metadata(name)

    model_ready: dict[int | str, dict[str, Any]] = {
        200: {"model": ModelReady, "description": "The model is loaded."},
        503: {"model": ModelReady, "description": "No model loaded yet."},
    }

    @app.get(
        "/v2/models/{name}/ready",
        responses={**model_ready, **error_responses(OipErrorBody, unknown_model)},
        tags=["v2"],
    )
    def v2_model_ready(name: str) -> JSONResponse:
        model_or_404(name)
        cur = service.models.current
        return JSONResponse({"name": name, "ready": cur is not None}, 200 if cur else 503)

    @app.get(
        "/v2/models/{name}/versions/{version}/ready",
        responses={
            **model_ready,
            **error_responses(OipErrorBody, {404: unknown_version[404], 422: "Malformed path."}),
        },
        tags=["v2"],
    )
    def v2_version_ready(name: str, version: str) -> JSONResponse:
        """Ready when `version` is the one loaded (404 naming the served one for any other)."""
        model_or_404(name)
        if service.models.current is not None:
            service.check_version(version)
        ok = service.models.current is not None
        return JSONResponse(
            {"name": name, "version": version, "ready": ok}, status_code=200 if ok else 503
        )

    infer_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "JSON tensors, or binary tensor data when the request asks for it "
            "(`parameters.binary_data_output`, an output's `parameters.binary_data`): the "
            "JSON header of Inference-Header-Content-Length bytes, then the raw outputs.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            "headers": {
                "Inference-Header-Content-Length": {
                    "description": "Byte length of the JSON header (binary answers only).",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
        },
        **error_responses(
            OipErrorBody,
            {
                400: "A request the protocol rejects (the sentence names the input at fault).",
                **AUTH_ERRORS,
                404: "Unknown model, not the version served, or unknown entity ids (listed).",
                **BODY_ERRORS,
                **LIMITED_ERRORS,
            },
        ),
    }

    # Both infer routes (any version, or the served one named) answer alike.
    infer_route: dict[str, Any] = {
        "response_model": InferResponse,
        "dependencies": predict_auth,
        "responses": infer_responses,
        "tags": ["v2"],
    }

    def infer(
        name: str, version: str | None, body: InferRequest, binary: Any, route: str
    ) -> InferResponse | Response:
        model_or_404(name, version)
        wanted = oip.outputs_wanted([o.name for o in body.outputs] if body.outputs else None)
        as_binary = oip.binary_outputs(body, wanted) if body.parameters or body.outputs else None
        ids, frame = oip.parse_inputs(config, body.inputs, binary)
        service.check_batch(len(ids) if ids is not None else len(frame))  # type: ignore[arg-type]
        if ids is not None:
            rows = service.lookup(ids)
        else:
            assert frame is not None
            rows = service.frame_rows(frame)
        scored = service.score(rows, ids, route, version)
        request_id = body.id or scored.request_id
        if as_binary:
            arrays = {"score": ("FP32", scored.scores), "decision": ("BOOL", scored.decisions)}
            content, header_length = oip.binary_response(
                {"model_name": name, "model_version": scored.model.version, "id": request_id},
                [(w, *arrays[w]) for w in wanted],
                as_binary,
            )
            return Response(
                content,
                media_type="application/octet-stream",
                headers={"Inference-Header-Content-Length": str(header_length)},
            )
        n = len(scored.scores)
        tensors = {
            "score": InferOutput(
                name="score", shape=[n], datatype="FP32", data=[float(s) for s in scored.scores]
            ),
            "decision": InferOutput(
                name="decision", shape=[n], datatype="BOOL", data=scored.decisions.tolist()
            ),
        }
        return InferResponse(
            model_name=name,
            model_version=scored.model.version,
            id=request_id,
            outputs=[tensors[w] for w in wanted],
        )

    @app.post("/v2/models/{name}/infer", **infer_route)
    def v2_infer(name: str, body: InferRequest, request: Request) -> InferResponse | Response:
        """Named tensors: one per feature, or a single entity-id tensor (see metadata).

        JSON tensors, or the binary tensor data extension (`Inference-Header-Content-Length`
        header, inputs with `parameters.binary_data_size`)."""
        binary = request.scope.get("seamless.binary")
        return infer(name, None, body, binary, "/v2/models/{name}/infer")

    @app.post("/v2/models/{name}/versions/{version}/infer", **infer_route)
    def v2_version_infer(
        name: str, version: str, body: InferRequest, request: Request
    ) -> InferResponse | Response:
        """`/v2/models/{name}/infer` for the served version (404 naming it for any other)."""
        binary = request.scope.get("seamless.binary")
        route = "/v2/models/{name}/versions/{version}/infer"
        return infer(name, version, body, binary, route)

    # ---- operations -----------------------------------------------------------

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, bool]:
        """Alive: the process answers."""
        return {"alive": True}

    @app.get("/readyz", tags=["ops"], responses=readiness)
    def readyz() -> JSONResponse:
        """Ready: a model is loaded, the online store answers and the prediction log takes
        records (503 otherwise). The PostgreSQL log's database is not needed: its records
        are spooled locally meanwhile (`prediction_log_pending` in the body)."""
        ok, detail = ready()
        return JSONResponse(detail, status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=PrometheusText,
        responses={200: {"description": "Prometheus text format 0.0.4."}},
    )
    def prometheus_metrics() -> PrometheusText:
        body, _ = service.metrics.render()
        return PrometheusText(body)

    @app.post(
        "/admin/reload",
        dependencies=admin_auth,
        tags=["admin"],
        responses={
            200: {"model": ReloadAnswer, "description": "Swapped, or unchanged."},
            **error_responses(ErrorBody, AUTH_ERRORS),
            404: {"model": ReloadAnswer, "description": "The alias points at no version."},
            502: {"model": ReloadAnswer, "description": "Load failed; the old model serves."},
        },
    )
    def admin_reload() -> JSONResponse:
        """Re-read the alias now: 200 swapped/unchanged, 404 no alias, 502 load failed."""
        result = service.models.reload()
        code = {"swapped": 200, "unchanged": 200, "no_alias": 404}.get(result.outcome, 502)
        return JSONResponse(
            {**result.to_dict(), "serving": service.models.status()}, status_code=code
        )

    return app


def _audit_refused(actor: str, reason: str, path: str) -> None:
    from components.governance import audit

    with suppress(SeamlessError):  # an unreachable audit store must not turn 401 into 500
        audit.record(
            audit.ACCESS_DENIED,
            f"serve:{path}",
            {"action": "authenticate", "reason": reason, "credential": "oidc"},
            actor=actor,
        )


def _audit_denied(header: str, roles: set[str] | frozenset[str] | list[str]) -> None:
    from components.governance import access

    token = header.partition(" ")[2]
    with suppress(access.AccessDenied):
        access.require(
            "reload_model", "serve:/admin", principal=access.token_principal(token, roles)
        )
