"""The validation report: one self-contained HTML page with every value escaped."""

from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd
import pytest

from components.common.config import parse_config
from components.validate.report import render_html
from components.validate.results import ExpectationOutcome, ValidationResult
from components.validate.validation import validate_tables

pytestmark = pytest.mark.unit

HOSTILE = "<script>alert('x')</script>"
HOSTILE_COLUMN = '"><img src=x onerror=alert(1)>'


class _Tags(HTMLParser):
    """Collects the tags and attributes a browser would actually see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def hostile_page() -> str:
    # GE runs for real: hostile strings reach the report through its results.
    people = pd.DataFrame({"id": [1, 2], "city": [HOSTILE, "Oslo"]})
    in_set = "{table: people, type: expect_column_values_to_be_in_set, kwargs: {column: city, value_set: [Oslo, Rome, Lima]}, severity: critical}"  # noqa: E501
    gone = f"{{table: people, type: expect_column_values_to_not_be_null, kwargs: {{column: '{HOSTILE_COLUMN}'}}, severity: warning}}"  # noqa: E501
    rows = "{table: people, type: expect_table_row_count_to_be_between, kwargs: {min_value: 1}}"
    config = parse_config(
        f"""
name: hostile
tables:
  people:
    source: {{kind: file, uri: people.parquet}}
    entity_column: id
    columns: {{id: int, city: string}}
labels: {{table: people, label_column: id}}
features: {{service: s, views: [{{name: v, table: people, features: [city]}}]}}
model: {{name: m}}
validation:
  expectations: [{in_set}, {gone}, {rows}]
"""
    )
    result = validate_tables(config, {"people": people})
    assert result.decision == "fail"
    return render_html(result, title=f"Validation {HOSTILE}", dataset_sha256="ab" * 32)


def test_hostile_values_are_escaped(hostile_page: str) -> None:
    assert HOSTILE not in hostile_page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in hostile_page
    assert "&lt;img src=x onerror=alert(1)&gt;" in hostile_page
    tags = _parse(hostile_page)
    assert "script" not in tags.tags
    assert "img" not in tags.tags
    assert not [name for name, _ in tags.attrs if name.startswith("on")]


def test_report_is_one_file_without_external_references(hostile_page: str) -> None:
    tags = _parse(hostile_page)
    names = {name for name, _ in tags.attrs}
    assert not names & {"src", "href", "srcset", "action", "data"}
    assert not set(tags.tags) & {"link", "script", "img", "iframe", "object", "embed"}
    assert "url(" not in hostile_page and "@import" not in hostile_page


def test_header_shows_decision_counts_hash_and_version(hostile_page: str) -> None:
    assert ">fail</span>" in hostile_page
    assert "3 evaluated, 2 failed" in hostile_page
    assert "1 critical, 1 warning" in hostile_page
    assert "ab" * 32 in hostile_page
    assert "1.24.1" in hostile_page
    assert hostile_page.count('<tr class="failed-') == 2


def test_renders_a_stored_result_without_great_expectations() -> None:
    # The component can redraw a report from `to_dict()` metadata alone.
    outcome = ExpectationOutcome(
        index=0,
        table="t",
        type="expect_column_mean_to_be_between",
        column="x",
        kwargs={"column": "x", "min_value": 0, "max_value": 1},
        severity="warning",
        success=True,
        observed_value=0.5,
    )
    result = ValidationResult(expectations=[outcome], ge_version="1.24.1", table_rows={"t": 10})
    page = render_html(ValidationResult.from_dict(result.to_dict()), "ok", "00")
    assert ">pass</span>" in page
    assert "expect_column_mean_to_be_between" in page
    assert "<code>0.5</code>" in page
