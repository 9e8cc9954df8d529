"""The dashboard's FastAPI app: read-only pages over the stores, each with a JSON twin.

Every page needs a viewer (`auth.py`): a bearer token or a session cookie; the audit
trail also needs `audit_show`. Unknown names answer 404 with one sentence; a store
that cannot be read puts a sentence on the page. No page loads anything from another
host, and the Content-Security-Policy (`layout.CSP`) forbids scripts altogether.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from components.common.env import disable_telemetry
from components.dashboard import monitoring, pages
from components.dashboard.auth import COOKIE, Gate, Viewer, deny
from components.dashboard.data import Gatherer
from components.dashboard.layout import CSS, HEADERS, REPORT_CSP, message_page, page
from components.dashboard.lineage_view import lineage_graph
from components.dashboard.markup import Safe
from components.dashboard.settings import DashboardSettings
from components.dashboard.stores import Stores, Unavailable, first_line

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger(__name__)
MAX_FORM_BYTES = 16 * 1024


class Refusal(Exception):
    """An answer other than the page: 401/403/404 with one sentence."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence


T = TypeVar("T")


def found_or_404(found: T | None, sentence: str) -> T:
    """`found`, or a 404 saying `sentence` where nothing was found."""
    if found is None:
        raise Refusal(404, sentence)
    return found


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _local_path(value: str | None) -> str:
    """`value` if it is a path on this server, else `/` (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _cross_site(request: Request) -> bool:
    """A browser request from another site (login CSRF): refused on /login and /logout."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc != request.headers.get("host", "")
    return False


def create_app(settings: DashboardSettings | None = None) -> FastAPI:
    disable_telemetry()
    settings = settings or DashboardSettings.from_env()
    gate = Gate(settings)
    if gate.disabled:
        log.warning("Dashboard authentication is DISABLED (--no-auth): local development only.")
    stores = Stores()
    gather = Gatherer(stores, settings)
    # No /docs: FastAPI's Swagger page loads its scripts from a CDN.
    app = FastAPI(title="Seamless dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stores = stores

    def who(request: Request, action: str = "view") -> Viewer:
        viewer = gate.viewer(
            request.headers.get("authorization"), request.cookies.get(COOKIE), request.url.path
        )
        if viewer is None:
            raise Refusal(401, "Sign in: this page needs a valid token (missing or unknown).")
        if not viewer.may(action):
            raise Refusal(403, deny(viewer, action, request.url.path))
        return viewer

    def html(request: Request, title: str, body: Safe, active: str, viewer: Viewer) -> Response:
        signed_in = COOKIE in request.cookies and not request.headers.get("authorization")
        text = page(title, body, active=active, who=viewer, signed_in=signed_in)
        return HTMLResponse(text, headers=HEADERS)

    def api(data: Any, status: int = 200) -> Response:
        return JSONResponse(data, status_code=status, headers=HEADERS)

    def unavailable(sentence: str) -> Refusal:
        return Refusal(503, sentence)

    def guarded(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Unavailable as exc:
            raise unavailable(str(exc)) from None

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> Response:
        headers = dict(HEADERS)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if _is_api(request):
            return JSONResponse({"error": exc.sentence}, status_code=exc.status, headers=headers)
        if exc.status == 401:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            body = pages.login_page(here, exc.sentence)
            return HTMLResponse(page("Sign in", body), status_code=401, headers=headers)
        title = {403: "Not allowed", 404: "Not found", 503: "Unavailable"}.get(exc.status, "Error")
        return HTMLResponse(message_page(title, exc.sentence), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        sentence = {404: "There is no such page.", 405: "This page is read-only."}.get(
            exc.status_code, str(exc.detail)
        )
        return await refused(request, Refusal(exc.status_code, sentence))

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "the request"
        return await refused(request, Refusal(400, f"Parameter {where}: {first.get('msg')}."))

    # ------------------------------------------------------------- open routes

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return Response("ok", media_type="text/plain", headers=HEADERS)

    metrics_cache: dict[str, Any] = {"at": -1e9, "body": b""}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Open like serving's: each model's latest monitoring numbers, no data rows.
        Read from MLflow at most every `metrics_ttl_s`; 503 with the sentence when MLflow
        cannot be read (Prometheus then shows the target down)."""
        if time.monotonic() - metrics_cache["at"] > settings.metrics_ttl_s:
            body = guarded(
                lambda: stores.mlflow_call(
                    "monitoring runs", monitoring.latest_runs_as_prometheus, b""
                )
            )
            metrics_cache.update(at=time.monotonic(), body=body)
        return Response(metrics_cache["body"], media_type=PROMETHEUS_TEXT, headers=HEADERS)

    @app.get("/static/dashboard.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response(
            CSS, media_type="text/css", headers={**HEADERS, "Cache-Control": "max-age=300"}
        )

    def _signed_in(request: Request, token: str, next_path: str) -> Response:
        if _cross_site(request):
            raise Refusal(403, "Signing in from another site is refused (login CSRF).")
        viewer = gate.from_token(token, "/login") if token else None
        if viewer is None:
            body = pages.login_page(next_path, "That token is not valid.")
            headers = {**HEADERS, "WWW-Authenticate": "Bearer"}
            return HTMLResponse(page("Sign in", body), status_code=401, headers=headers)
        resp = RedirectResponse(next_path, status_code=303, headers=HEADERS)
        resp.set_cookie(
            COOKIE,
            gate.sessions.issue(viewer),
            max_age=max(1, int(viewer.expires - time.time())),
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        return resp

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/", token: str = "") -> Response:
        next_path = _local_path(next)
        if token:
            return _signed_in(request, token, next_path)
        return HTMLResponse(page("Sign in", pages.login_page(next_path, None)), headers=HEADERS)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        # The sign-in form's urlencoded body, read here (no multipart parser needed).
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Refusal(413, "The sign-in form is too large.")
        form = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
        token = (form.get("token") or [""])[0]
        return _signed_in(request, token, _local_path((form.get("next") or ["/"])[0]))

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        if _cross_site(request):
            raise Refusal(403, "Signing out from another site is refused.")
        resp = RedirectResponse("/login", status_code=303, headers=HEADERS)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # ------------------------------------------------------------- pages

    @app.get("/", include_in_schema=False)
    def overview(request: Request) -> Response:
        viewer = who(request)
        return html(request, "Overview", pages.overview(gather.overview()), "overview", viewer)

    @app.get("/api/overview")
    def overview_api(request: Request) -> Response:
        who(request)
        return api(gather.overview())

    @app.get("/runs", include_in_schema=False)
    def runs_page(request: Request, limit: int | None = None) -> Response:
        viewer = who(request)
        data = gather.runs(limit)
        body = pages.runs_page(data["runs"], data["limit"], data["errors"])
        return html(request, "Pipeline runs", body, "runs", viewer)

    @app.get("/api/runs")
    def runs_api(request: Request, limit: int | None = None) -> Response:
        who(request)
        return api(gather.runs(limit))

    @app.get("/runs/{run_id}/report/{task}", include_in_schema=False)
    def run_report(request: Request, run_id: str, task: str) -> Response:
        who(request)
        from components.dashboard.runs import RUN_REPORTS
        from components.dashboard.runs import run_report as find

        if task not in RUN_REPORTS:
            raise Refusal(404, f"Runs keep reports of {', '.join(RUN_REPORTS)} only, not {task!r}.")
        try:
            found = find(stores.kfp_root(), stores.logs_dir(), run_id, task)
        except KeyError:
            raise Refusal(404, f"Run {run_id} has no {task} report in this workspace.") from None
        return _report(found.read_bytes())

    @app.get("/data", include_in_schema=False)
    def data_page(request: Request) -> Response:
        viewer = who(request)
        data = gather.datasets()
        body = pages.data_list(data["datasets"], data["errors"])
        return html(request, "Data", body, "data", viewer)

    @app.get("/api/data")
    def data_api(request: Request) -> Response:
        who(request)
        return api(gather.datasets())

    def _dataset(sha: str) -> dict[str, Any]:
        return found_or_404(
            gather.dataset(sha), f"No dataset snapshot {sha[:64]} is recorded here."
        )

    @app.get("/data/{sha}", include_in_schema=False)
    def dataset_page(request: Request, sha: str) -> Response:
        viewer = who(request)
        found = _dataset(sha)
        body = pages.data_detail(found["dataset"], found["profile"], found["profile_problem"])
        return html(request, f"Dataset {sha[:12]}", body, "data", viewer)

    @app.get("/api/data/{sha}")
    def dataset_api(request: Request, sha: str) -> Response:
        who(request)
        return api(_dataset(sha))

    @app.get("/data/{sha}/reports/{name}", include_in_schema=False)
    def dataset_report(request: Request, sha: str, name: str) -> Response:
        who(request)
        from components.dashboard.datasets import report_file

        found = found_or_404(
            report_file(sha, name), f"Snapshot {sha[:12]} has no report named {name}."
        )
        return _report(found.read_bytes())

    @app.get("/models", include_in_schema=False)
    def models_page(request: Request) -> Response:
        viewer = who(request)
        data = gather.models()
        return html(
            request, "Models", pages.models_list(data["models"], data["errors"]), "models", viewer
        )

    @app.get("/api/models")
    def models_api(request: Request) -> Response:
        who(request)
        return api(gather.models())

    def _model(name: str) -> dict[str, Any]:
        return found_or_404(
            guarded(lambda: gather.model(name)), f"There is no registered model named {name!r}."
        )

    @app.get("/models/{name}", include_in_schema=False)
    def model_page(request: Request, name: str) -> Response:
        viewer = who(request)
        found = _model(name)
        return html(
            request, f"Model {name}", pages.model_page(found, found["errors"]), "models", viewer
        )

    @app.get("/api/models/{name}")
    def model_api(request: Request, name: str) -> Response:
        who(request)
        return api(_model(name))

    def _version(name: str, version: str) -> dict[str, Any]:
        return found_or_404(
            guarded(lambda: gather.version(name, version)),
            f"Model {name!r} has no version {version!r}.",
        )

    @app.get("/models/{name}/{version}", include_in_schema=False)
    def version_page(request: Request, name: str, version: str) -> Response:
        viewer = who(request)
        found = _version(name, version)
        return html(
            request, f"{name} version {version}", pages.version_page(found), "models", viewer
        )

    @app.get("/api/models/{name}/{version}")
    def version_api(request: Request, name: str, version: str) -> Response:
        who(request)
        return api(_version(name, version))

    def _monitoring(model: str | None) -> dict[str, Any]:
        return found_or_404(
            gather.monitoring(model), f"There is no registered model named {model!r} to monitor."
        )

    @app.get("/monitoring", include_in_schema=False)
    def monitoring_page(request: Request, model: str | None = None) -> Response:
        viewer = who(request)
        found = _monitoring(model)
        title = f"Monitoring of {found['model']}" if found.get("model") else "Monitoring"
        return html(request, title, pages.monitoring_page(found), "monitoring", viewer)

    @app.get("/api/monitoring")
    def monitoring_api(request: Request, model: str | None = None) -> Response:
        who(request)
        return api(_monitoring(model))

    @app.get("/monitoring/{run_id}/report", include_in_schema=False)
    def monitoring_report(request: Request, run_id: str) -> Response:
        who(request)
        from components.monitor.exporters import REPORT_ARTIFACT

        if not (len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)):
            raise Refusal(404, f"{run_id[:40]!r} is not an MLflow run id.")

        def fetch(client: Any) -> bytes | None:
            from mlflow.exceptions import MlflowException

            try:
                run = client.get_run(run_id)
            except MlflowException:
                return None
            if run.data.tags.get("seamless.stage") != "monitor":
                return None
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(run_id, REPORT_ARTIFACT, tmp)
                return Path(local).read_bytes()

        body = guarded(lambda: stores.mlflow_call(f"run {run_id}", fetch, None))
        return _report(found_or_404(body, f"No monitoring run {run_id} with a report is recorded."))

    @app.get("/lineage", include_in_schema=False)
    def lineage_index(request: Request) -> Response:
        viewer = who(request)
        wanted = request.query_params.get("request")
        if wanted:
            return RedirectResponse(
                "/lineage/request/" + quote(wanted, safe=""), status_code=303, headers=HEADERS
            )
        return html(request, "Lineage", pages.lineage_index([]), "lineage", viewer)

    def _chain_of_model(name: str, version: str) -> dict[str, Any]:
        from components.governance.lineage import model_lineage

        _version(name, version)  # 404 in our words before the chain is read
        try:
            return model_lineage(name, version, log=stores.audit_log())
        except Exception as exc:  # MLflow or the audit store failing mid-way
            raise unavailable(
                f"The lineage of {name} v{version} could not be read: {first_line(exc)}"
            ) from None

    def _chain_of_request(request_id: str) -> dict[str, Any]:
        from components.common.errors import SeamlessError
        from components.governance.lineage import request_lineage

        source = stores.predictions_source()
        try:
            return request_lineage(
                request_id,
                source if isinstance(source, Path) else None,
                log=stores.audit_log(),
            )
        except SeamlessError as exc:
            if "is not in the prediction log" in str(exc):
                raise Refusal(
                    404, f"Request id {request_id[:80]!r} is not in the prediction log."
                ) from None
            raise unavailable(first_line(exc)) from None

    @app.get("/lineage/model/{name}/{version}", include_in_schema=False)
    def model_lineage_page(request: Request, name: str, version: str) -> Response:
        viewer = who(request)
        chain = _chain_of_model(name, version)
        body = pages.lineage_page(chain, lineage_graph(chain))
        return html(request, f"Lineage of {name} v{version}", body, "lineage", viewer)

    @app.get("/api/lineage/model/{name}/{version}")
    def model_lineage_api(request: Request, name: str, version: str) -> Response:
        who(request)
        return api(json.loads(json.dumps(_chain_of_model(name, version), default=str)))

    @app.get("/lineage/request/{request_id}", include_in_schema=False)
    def request_lineage_page(request: Request, request_id: str) -> Response:
        viewer = who(request)
        chain = _chain_of_request(request_id)
        body = pages.lineage_page(chain, lineage_graph(chain))
        return html(request, f"Lineage of request {request_id}", body, "lineage", viewer)

    @app.get("/api/lineage/request/{request_id}")
    def request_lineage_api(request: Request, request_id: str) -> Response:
        who(request)
        return api(json.loads(json.dumps(_chain_of_request(request_id), default=str)))

    def _audit(page_no: int) -> dict[str, Any]:
        return found_or_404(
            guarded(lambda: gather.audit(page_no)), f"The audit trail has no page {page_no}."
        )

    @app.get("/audit", include_in_schema=False)
    def audit_page(request: Request, page: int = 1) -> Response:
        viewer = who(request, "audit_show")
        return html(request, "Audit trail", pages.audit_page(_audit(page)), "audit", viewer)

    @app.get("/api/audit")
    def audit_api(request: Request, page: int = 1) -> Response:
        who(request, "audit_show")
        return api(_audit(page))

    return app


def _report(body: bytes) -> Response:
    """A stored one-file HTML report, sandboxed: its own inline styles, never a script."""
    headers = {**HEADERS, "Content-Security-Policy": REPORT_CSP}
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)
