"""Property-based API test: schemathesis drives every operation of the served OpenAPI, and
every answer must be what the document declares.

The real app (real MLflow champion, real Feast online store) runs in-process through
schemathesis' ASGI transport, with its lifespan, so the model is loaded and the logs are
open. Each operation gets a bounded number of generated requests (valid and invalid), and
a list of requests generated ones rarely make (unknown model or version, unknown entities,
missing token, wrong role, batch too large, concurrency limit, a binary answer). Every
answer is checked for conformance: no 5xx, a declared status, a declared content type, a
body and headers that match the declared schema.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.require import require_module

schemathesis = require_module(
    "schemathesis",
    reason="schemathesis is a dev dependency: run `make venv` (pip install -e .[dev])",
)
from fastapi import FastAPI  # noqa: E402 (after require_module)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import Case  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

from components.common.config import SeamlessConfig  # noqa: E402
from components.serve.api.app import create_app  # noqa: E402
from tests.serving.conftest import make_settings  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.slow]

# admin implies predict: every operation, /admin/reload included, is reachable.
ADMIN_TOKEN = "tok-schemathesis-admin-0123456789"
PREDICT_TOKEN = "tok-schemathesis-predict-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MAX_BODY = 100_000  # small enough to send a body past it
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Served:
    schema: Any  # schemathesis.BaseSchema
    app: FastAPI
    model: str
    version: str


@pytest.fixture()
def served(ws: Path, tmp_path: Path, serve_config: SeamlessConfig) -> Iterator[Served]:
    tokens = {ADMIN_TOKEN: "admin", PREDICT_TOKEN: "predict"}
    settings_ = make_settings(
        tmp_path, auth_disabled=False, tokens_json=json.dumps(tokens), max_body_bytes=MAX_BODY
    )
    app = create_app(settings_, serve_config)
    # Hypothesis caches constants under ./.hypothesis even without a database: not in the repo.
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    # Loading the schema starts the app's lifespan (model load, log writers) ...
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    current = app.state.service.models.current
    assert current is not None, "no champion loaded"
    yield Served(schema, app, serve_config.model.name, current.version)
    # ... which schemathesis otherwise keeps running until interpreter exit.
    asgi.shutdown_lifespans()
    set_hypothesis_home_dir(None)


# Not `schemathesis.pytest.from_fixture(...)` + `@schema.parametrize()`: schemathesis 4.32.5's
# lazy-schema plugin reads `request.node._nodeid`, which pytest 9.2 no longer has
# (AttributeError). Each operation gets its own Hypothesis test here instead.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@pytest.mark.timeout(600)  # ~90 s on an idle 2-core box
def test_every_generated_answer_conforms_to_the_openapi(served: Served) -> None:
    failures: list[str] = []
    seen: Counter[str] = Counter()  # "<operation> <status>", printed for the record
    operations = 0
    for result in served.schema.get_all_operations():
        operation = result.ok()  # raises on an operation the schema cannot describe
        operations += 1
        for mode in MODES:
            # A random {name} only ever meets the 404 guard: fix it to the served model so the
            # infer/metadata bodies are exercised too; valid requests name the served version.
            fixed: dict[str, str] = {}
            if "{name}" in operation.path:
                fixed["name"] = served.model
            if "{version}" in operation.path and mode is GenerationMode.POSITIVE:
                fixed["version"] = served.version

            @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
            @settings(
                max_examples=30,  # per operation and mode: bounded
                deadline=None,  # first predictions pay for lazy imports; timing is not tested
                database=None,  # no .hypothesis/ folder in the repo
                derandomize=True,  # the same requests every run: a failure is reproducible
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Case) -> None:
                response = case.call_and_validate(headers=AUTH, checks=CHECKS)
                seen[f"{case.operation.label} {response.status_code}"] += 1

            try:
                run()
            except Unsatisfiable:
                pass  # no input to break (e.g. GET /healthz, or a free-form path string)
            # schemathesis' FailureGroup is a BaseExceptionGroup, not an Exception
            except (Exception, BaseExceptionGroup) as exc:  # the request, with a curl to replay it
                failures.append(f"{operation.label} ({mode}):\n{str(exc)[:2000]}")
    print("\n".join(f"{n:5d}  {key}" for key, n in sorted(seen.items())))
    assert operations >= 13, f"only {operations} operations in /openapi.json"
    assert not failures, "\n\n".join(failures)


def _entity_tensor(ids: list[int]) -> dict[str, Any]:
    return {"name": "customer_id", "shape": [len(ids)], "datatype": "INT64", "data": ids}


def test_rare_answers_conform_to_the_openapi(served: Served, built: dict) -> None:
    """Answers generated requests seldom get, each checked as the generated ones are."""
    name, version = served.model, served.version
    known = built["entities"][:2]
    infer = {"inputs": [_entity_tensor(known)]}
    many = list(range(1001))  # above the default --max-batch (1000)
    bearer = {"predict": {"Authorization": f"Bearer {PREDICT_TOKEN}"}, "none": {}}
    m, mv = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    at, nope = {"name": name}, {"name": "nope"}
    right, wrong = {"name": name, "version": version}, {"name": name, "version": "0"}
    feedback = {"feedback": [{"request_id": "r" * 100, "label": 1}] * 2000}  # > MAX_BODY
    binary_answer = {**infer, "parameters": {"binary_data_output": True}}
    cases: list[tuple[str, dict[str, Any], Any, dict[str, str], int]] = [
        (f"GET {m}", nope, None, AUTH, 404),
        (f"GET {m}/ready", nope, None, AUTH, 404),
        (f"POST {m}/infer", nope, infer, AUTH, 404),
        (f"GET {mv}", wrong, None, AUTH, 404),
        (f"GET {mv}/ready", wrong, None, AUTH, 404),
        (f"POST {mv}/infer", wrong, infer, AUTH, 404),
        (f"GET {mv}", right, None, AUTH, 200),
        (f"POST {mv}/infer", right, infer, AUTH, 200),
        (f"POST {m}/infer", at, {"inputs": [_entity_tensor([7, 42])]}, AUTH, 404),
        ("POST /v1/predict", {}, {"entity_ids": [known[0], 42]}, AUTH, 404),
        ("POST /v1/predict", {}, {"entity_ids": known}, bearer["none"], 401),
        (f"POST {m}/infer", at, infer, bearer["none"], 401),
        ("POST /admin/reload", {}, None, bearer["predict"], 403),
        (f"POST {m}/infer", at, infer, bearer["predict"], 200),
        ("POST /v1/predict", {}, {"entity_ids": many}, AUTH, 413),  # batch
        (f"POST {m}/infer", at, {"inputs": [_entity_tensor(many)]}, AUTH, 413),
        (f"POST {m}/infer", at, {"inputs": [_entity_tensor([1] * 30_000)]}, AUTH, 413),  # body
        ("POST /v1/feedback", {}, feedback, AUTH, 413),
        (f"POST {m}/infer", at, binary_answer, AUTH, 200),  # octet-stream
        ("GET /metrics", {}, None, AUTH, 200),
    ]
    failures = []

    def check(label: str, path: dict[str, Any], body: Any, headers: dict[str, str]) -> int:
        operation = served.schema.find_operation_by_label(label)
        assert operation is not None, label
        kwargs: dict[str, Any] = {"path_parameters": path or None}
        if body is not None:
            kwargs["body"] = body
        case = operation.Case(**kwargs)
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{label} {path}:\n{str(exc)[:2000]}")
        return int(response.status_code)

    for label, path, body, headers, status in cases:
        got = check(label, path, body, headers)
        assert got == status, (label, path, got)

    # The concurrency limit: 429 with Retry-After on both prediction routes.
    limiter = served.app.state.service.limiter
    taken = 0
    while limiter.try_acquire():
        taken += 1
    try:
        assert check("POST /v1/predict", {}, {"entity_ids": known}, AUTH) == 429
        assert check("POST /v2/models/{name}/infer", {"name": name}, infer, AUTH) == 429
    finally:
        for _ in range(taken):
            limiter.release()
    assert not failures, "\n\n".join(failures)
