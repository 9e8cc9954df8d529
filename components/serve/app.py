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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from components.common.config import SeamlessConfig, load_config
from components.common.env import disable_telemetry
from components.serve import memory, oip
from components.serve.auth import TokenAuth
from components.serve.fastpath import RETRY_AFTER_S, Front
from components.serve.schemas import (
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    InferOutput,
    InferRequest,
    InferResponse,
    ModelMetadata,
    Prediction,
    PredictResponse,
    predict_request_model,
)
from components.serve.service import ServeError, Service
from components.serve.settings import ServeSettings

log = logging.getLogger(__name__)


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
        settings.tokens_file, settings.tokens_json, settings.auth_disabled
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
        # Every route but Front's hot path (which counts its own body): 413 past the limit.
        max_body_size=settings.max_body_bytes,
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
        return JSONResponse(
            {"detail": errors, "message": f"Invalid request: check {', '.join(fields[:5])}{more}."},
            status_code=422,
        )

    bearer = HTTPBearer(auto_error=False, description="Token with role predict or admin.")

    def require(role: str) -> Callable[..., None]:
        def check(
            request: Request,
            creds: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        ) -> None:
            roles = auth.roles_of(request.headers.get("authorization"))
            if roles is None:
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

    # Limiter, metrics and the /v1/predict hot path (components/serve/fastpath.py).
    app.front = Front(app.stack, service=service, auth=auth, executor=executor)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S} if exc.status == 503 else None
        if request.url.path.startswith("/v2/"):
            body: dict[str, Any] = {"error": str(exc), **exc.extra}
        else:
            body = {"detail": str(exc), **exc.extra}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(oip.OipError)
    async def oip_error(request: Request, exc: oip.OipError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": "Unknown entity ids (listed)."},
        413: {"model": ErrorBody, "description": "Batch larger than the limit."},
        429: {"model": ErrorBody, "description": "Concurrency limit reached (Retry-After)."},
        503: {
            "model": ErrorBody,
            "description": "No model, online store or log unavailable, or overloaded "
            "(Retry-After).",
        },
    }

    # ---- v1 -------------------------------------------------------------------

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        dependencies=predict_auth,
        responses=errors,
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
        "/v1/feedback", response_model=FeedbackResponse, dependencies=predict_auth, tags=["v1"]
    )
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        """Record ground-truth labels by request id (append-only feedback log)."""
        service.check_batch(len(body.feedback))
        n = service.record_feedback([item.model_dump() for item in body.feedback])
        return FeedbackResponse(recorded=n)

    # ---- Open Inference Protocol v2 -------------------------------------------

    def ready() -> tuple[bool, dict[str, Any]]:
        return service.readiness()

    @app.get("/v2/health/live", tags=["v2"])
    def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"])
    def v2_ready() -> JSONResponse:
        ok, detail = ready()
        return JSONResponse({"ready": ok, **detail}, status_code=200 if ok else 503)

    @app.get("/v2", tags=["v2"])
    def v2_server() -> dict[str, Any]:
        return {"name": "seamless", "version": "1", "extensions": []}

    def model_or_404(name: str) -> None:
        if name != service.model_name:
            raise oip.OipError(
                f"Unknown model '{name}'; this server has '{service.model_name}'.", 404
            )

    @app.get("/v2/models/{name}", response_model=ModelMetadata, tags=["v2"])
    def v2_metadata(name: str) -> ModelMetadata:
        model_or_404(name)
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
                    "datatype": "INT64" if oip.entity_type(config) == "int" else "BYTES",
                    "shape": [-1],
                    "note": "Alternative to the feature inputs: features looked up in Feast.",
                },
                "threshold": service.threshold,
            },
        )

    @app.get("/v2/models/{name}/ready", tags=["v2"])
    def v2_model_ready(name: str) -> JSONResponse:
        model_or_404(name)
        cur = service.models.current
        return JSONResponse({"name": name, "ready": cur is not None}, 200 if cur else 503)

    @app.post(
        "/v2/models/{name}/infer",
        response_model=InferResponse,
        dependencies=predict_auth,
        responses=errors,
        tags=["v2"],
    )
    def v2_infer(name: str, body: InferRequest) -> InferResponse:
        """Named tensors: one per feature, or a single entity-id tensor (see metadata)."""
        model_or_404(name)
        wanted = oip.outputs_wanted([o.name for o in body.outputs] if body.outputs else None)
        ids, frame = oip.parse_inputs(config, body.inputs)
        service.check_batch(len(ids) if ids is not None else len(frame))  # type: ignore[arg-type]
        if ids is not None:
            rows = service.lookup(ids)
        else:
            assert frame is not None
            rows = service.frame_rows(frame)
        scored = service.score(rows, ids, "/v2/models/{name}/infer")
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
            id=body.id or scored.request_id,
            outputs=[tensors[w] for w in wanted],
        )

    # ---- operations -----------------------------------------------------------

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, bool]:
        """Alive: the process answers."""
        return {"alive": True}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        """Ready: a model is loaded and the online store answers (503 otherwise)."""
        ok, detail = ready()
        return JSONResponse(detail, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/admin/reload", dependencies=admin_auth, tags=["admin"])
    def admin_reload() -> JSONResponse:
        """Re-read the alias now: 200 swapped/unchanged, 404 no alias, 502 load failed."""
        result = service.models.reload()
        code = {"swapped": 200, "unchanged": 200, "no_alias": 404}.get(result.outcome, 502)
        return JSONResponse(
            {**result.to_dict(), "serving": service.models.status()}, status_code=code
        )

    return app


def _audit_denied(header: str, roles: set[str] | frozenset[str] | list[str]) -> None:
    from components.governance import access

    token = header.partition(" ")[2]
    with suppress(access.AccessDenied):
        access.require(
            "reload_model", "serve:/admin", principal=access.token_principal(token, roles)
        )
