"""The bad-input corpus: every malformed input in cases/ fails with one clear sentence.

cases/cases.yaml lists the cases (see its header). For each one the test checks that the
entry point fails the way a user can act on: a `SeamlessError` (or an HTTP 4xx), one
line, matching the expected regex, no traceback, and nothing half-written. Known bugs
are strict xfails carrying the exact reason, so fixing one turns the case green.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig, load_config, parse_config
from components.common.errors import SeamlessError
from components.ingest.stage import ingest_tables
from tests.helpers.configs import config_for, table
from tests.helpers.serving_app import served_app_client  # noqa: F401 (fixture)
from tests.serving.conftest import built, serve_config  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit

CASES_DIR = Path(__file__).parent / "cases"
DATA_DIR = CASES_DIR / "data"
CONFIG_DIR = CASES_DIR / "config"
ROOT = Path(__file__).resolve().parents[2]
# A YAML bomb must fail within this bound (seconds, bytes) or it counts as a hang.
ISOLATE_TIMEOUT_S = 15
ISOLATE_MEMORY = 2 * 2**30
COLUMNS = {"id": "int", "ts": "timestamp", "amount": "float", "category": "string"}


def _load_cases() -> list[Any]:
    spec = yaml.safe_load((CASES_DIR / "cases.yaml").read_text(encoding="utf-8"))
    params = []
    for case in spec["cases"]:
        marks: list[Any] = []
        if case.get("xfail"):
            strict = case.get("xfail_strict", True)
            marks.append(pytest.mark.xfail(strict=strict, reason=case["xfail"]))
        if case["entry"] == "serve":
            marks += [pytest.mark.serving, pytest.mark.slow]
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


CASES = _load_cases()


def assert_clear(message: str, case: dict[str, Any]) -> None:
    """One line, no traceback, matches the case's regex, echoes nothing it must not."""
    assert message.strip(), "empty error message"
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message, message
    assert re.search(case["error"], message), f"{case['error']!r} not in {message!r}"
    if case.get("must_not_contain"):
        assert case["must_not_contain"] not in message, f"leaks: {message!r}"


# ---------------------------------------------------------------- entry points


def _ingest_config(case: dict[str, Any]) -> SeamlessConfig:
    uri = case.get("uri") or case["input"]
    source = {"kind": "file", "uri": uri}
    return config_for(
        {"t": table(source, entity_column="id", timestamp_column="ts", columns=COLUMNS)}
    )


def run_ingest(case: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    with pytest.raises(SeamlessError) as info:
        ingest_tables(_ingest_config(case), DATA_DIR, out)
    assert_clear(str(info.value), case)
    # All or nothing: neither the dataset folder nor a temporary sibling may remain.
    assert not out.exists(), "a failed ingest left its output folder"
    assert list(tmp_path.iterdir()) == [], f"leftovers: {list(tmp_path.iterdir())}"


_ISOLATED = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
from components.common.config import load_config
from components.common.errors import SeamlessError
try:
    load_config(sys.argv[1])
    print(json.dumps({{"type": None, "message": ""}}))
except SeamlessError as exc:
    print(json.dumps({{"type": "SeamlessError", "message": str(exc)}}))
except BaseException as exc:
    print(json.dumps({{"type": type(exc).__name__, "message": str(exc)}}))
"""


def run_config(case: dict[str, Any]) -> None:
    path = CONFIG_DIR / case["input"]
    if case.get("isolate"):
        # A bomb may hang or eat memory: bound it in a child process we can kill.
        code = _ISOLATED.format(mem=ISOLATE_MEMORY)
        try:
            done = subprocess.run(
                [sys.executable, "-c", code, str(path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=ISOLATE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"loading {path.name} did not fail within {ISOLATE_TIMEOUT_S} s")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["type"] == "SeamlessError", result
        assert_clear(result["message"], case)
        return
    with pytest.raises(SeamlessError) as info:
        load_config(path)
    assert_clear(str(info.value), case)


def _instance(client: TestClient, built: dict) -> dict[str, Any]:  # noqa: F811
    """A valid full feature row: the online features of a known entity."""
    from components.features.features import online_features

    config: SeamlessConfig = client.app.state.service.config  # type: ignore[attr-defined]
    frame = online_features(built["workspace"] / "feast", config, built["entities"][:1])
    row = frame.drop(columns=[config.entity_key()]).iloc[0].to_dict()
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def run_serve(case: dict[str, Any], client: TestClient, built: dict) -> None:  # noqa: F811
    headers = {"content-type": case.get("content_type", "application/json")}
    if "json" in case:
        body = json.dumps(case["json"]).encode()
    elif "json_ids_range" in case:
        body = json.dumps({"entity_ids": list(range(case["json_ids_range"]))}).encode()
    elif "body_nested" in case:
        depth = case["body_nested"]
        body = ('{"entity_ids": ' + "[" * depth + "1" + "]" * depth + "}").encode()
    elif "instance_override" in case:
        row = {**_instance(client, built), **case["instance_override"]}
        body = json.dumps({"instances": [row]}).encode()  # allow_nan: Infinity on purpose
    else:
        body = case["body"].encode("utf-8", "surrogateescape")
    r = client.post(case["path"], content=body, headers=headers)
    assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    assert r.status_code == case["status"], r.text[:300]
    assert "Traceback" not in r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    assert re.search(case["error"], r.text), f"{case['error']!r} not in {r.text[:300]!r}"


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def run_report(case: dict[str, Any], tmp_path: Path) -> None:
    from components.common.tables import read_dataset
    from components.validate.report import render_html
    from components.validate.validation import validate_tables

    config = parse_config(
        f"""
name: hostile
tables:
  t:
    source: {{kind: file, uri: {case["input"]}}}
    entity_column: id
    timestamp_column: ts
    columns: {{id: int, ts: timestamp, amount: float, category: string}}
labels: {{table: t, label_column: amount}}
features: {{service: s, views: [{{name: v, table: t, features: [category]}}]}}
model: {{name: m}}
validation:
  expectations:
    - {{table: t, type: expect_column_values_to_be_in_set,
       kwargs: {{column: category, value_set: [a, b]}}, severity: warning}}
"""
    )
    ingest_tables(config, DATA_DIR, tmp_path / "ds")
    result = validate_tables(config, read_dataset(tmp_path / "ds"))
    page = render_html(result, "corpus <b>report</b>", "0" * 64)
    parsed = _Markup()
    parsed.feed(page)
    parsed.close()
    # Only the report's own markup; the hostile values appear as text.
    assert parsed.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "span"} | {
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
        "br",
        # failures first (a list of sentences), passed checks folded, the column profile
        "h2",
        "section",
        "ol",
        "li",
        "details",
        "summary",
        "div",
        "svg",
        "rect",
        "text",
        "b",
        "small",
    }, parsed.tags
    assert not {a for a in parsed.attrs if a.startswith("on")}, parsed.attrs
    text = "".join(parsed.text)
    for hostile in case["hostile"]:
        assert hostile in text, f"{hostile!r} not shown as text"


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_clearly(
    case: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    os.environ.pop("SEAMLESS_CORPUS_UNSET_PASSWORD", None)
    entry = case["entry"]
    if entry == "ingest":
        run_ingest(case, tmp_path)
    elif entry == "config":
        run_config(case)
    elif entry == "serve":
        client = request.getfixturevalue("served_app_client")
        run_serve(case, client, request.getfixturevalue("built"))
    elif entry == "report":
        run_report(case, tmp_path)
    else:
        raise AssertionError(f"unknown entry {entry!r}")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    files = [p for p in DATA_DIR.iterdir()] + [p for p in CONFIG_DIR.iterdir()]
    assert len(files) >= 40
