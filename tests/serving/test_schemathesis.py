"""Property-based API test: schemathesis drives every operation of the served OpenAPI.

The real app (real MLflow champion, real Feast online store) runs in-process through
schemathesis' ASGI transport, with its lifespan, so the model is loaded and the logs are
open. Each operation gets a bounded number of generated requests (valid and invalid);
the only assertion is that none of them gets a 5xx answer.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip(
    "schemathesis",
    reason="schemathesis is a dev dependency: run `make venv` (pip install -e .[dev])",
)
from hypothesis import HealthCheck, given, settings  # noqa: E402 (after the importorskip)
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

from components.common.config import SeamlessConfig  # noqa: E402
from components.serve.app import create_app  # noqa: E402
from tests.serving.conftest import make_settings  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.slow]

# admin implies predict: every operation, /admin/reload included, is reachable.
ADMIN_TOKEN = "tok-schemathesis-admin-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture()
def api_schema(ws: Path, tmp_path: Path, serve_config: SeamlessConfig) -> Iterator[object]:
    settings_ = make_settings(
        tmp_path, auth_disabled=False, tokens_json=json.dumps({ADMIN_TOKEN: "admin"})
    )
    app = create_app(settings_, serve_config)
    # Hypothesis caches constants under ./.hypothesis even without a database: not in the repo.
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    # Loading the schema starts the app's lifespan (model load, log writers) ...
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    # ... which schemathesis otherwise keeps running until interpreter exit.
    asgi.shutdown_lifespans()
    set_hypothesis_home_dir(None)


# Not `schemathesis.pytest.from_fixture(...)` + `@schema.parametrize()`: schemathesis 4.32.5's
# lazy-schema plugin reads `request.node._nodeid`, which pytest 9.2 no longer has
# (AttributeError). Each operation gets its own Hypothesis test here instead.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def test_no_operation_answers_5xx(
    api_schema: schemathesis.BaseSchema, serve_config: SeamlessConfig
) -> None:
    model = serve_config.model.name
    failures: list[str] = []
    seen: Counter[str] = Counter()  # "<operation> <status>", printed for the record
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()  # raises on an operation the schema cannot describe
        operations += 1
        for mode in MODES:
            # A random {name} only ever meets the 404 guard: fix it to the served model so the
            # infer/metadata bodies are exercised too.
            fixed = {"name": model} if "{name}" in operation.path else None

            @given(case=operation.as_strategy(mode, path_parameters=fixed))
            @settings(
                max_examples=30,  # per operation and mode: bounded, keeps the test under 90 s
                deadline=None,  # first predictions pay for lazy imports; timing is not tested
                database=None,  # no .hypothesis/ folder in the repo
                derandomize=True,  # the same requests every run: a failure is reproducible
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error])
                seen[f"{case.operation.label} {response.status_code}"] += 1

            try:
                run()
            except Unsatisfiable:
                pass  # no input to break (e.g. GET /healthz, or a free-form path string)
            # schemathesis' FailureGroup is a BaseExceptionGroup, not an Exception
            except (Exception, BaseExceptionGroup) as exc:  # the request, with a curl to replay it
                failures.append(f"{operation.label} ({mode}):\n{exc}")
    print("\n".join(f"{n:5d}  {key}" for key, n in sorted(seen.items())))
    assert operations >= 10, f"only {operations} operations in /openapi.json"
    assert not failures, "\n\n".join(failures)
