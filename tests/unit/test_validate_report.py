"""The validation report: one self-contained HTML page with every value escaped."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pandas as pd
import pytest

from components.common.config import parse_config
from components.validate.profile import profile_tables
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
def hostile_run() -> tuple[ValidationResult, pd.DataFrame]:
    # GE runs for real: hostile strings reach the report through its results.
    people = pd.DataFrame({"id": [1, 2], "city": [HOSTILE, "Oslo"], HOSTILE: [HOSTILE, None]})
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
    result = validate_tables(config, {"people": people}, builtin=False)
    assert result.decision == "fail"
    return result, people


@pytest.fixture(scope="module")
def hostile_page(hostile_run: tuple[ValidationResult, pd.DataFrame]) -> str:
    return render_html(hostile_run[0], title=f"Validation {HOSTILE}", dataset_sha256="ab" * 32)


@pytest.fixture(scope="module")
def profiled_page(hostile_run: tuple[ValidationResult, pd.DataFrame]) -> str:
    """The same run with the column profile and ingest's coercions, hostile text in both."""
    result, people = hostile_run
    return render_html(
        result,
        title=f"Validation {HOSTILE}",
        dataset_sha256="ab" * 32,
        profile=profile_tables({"people": people}),
        coercions={"people": {"city": {"count": 2, "examples": [HOSTILE, " 12,5 "]}}},
    )


@pytest.fixture(params=["hostile_page", "profiled_page"])
def any_page(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def test_hostile_values_are_escaped(any_page: str) -> None:
    assert HOSTILE not in any_page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in any_page
    assert "&lt;img src=x onerror=alert(1)&gt;" in any_page
    tags = _parse(any_page)
    assert "script" not in tags.tags
    assert "img" not in tags.tags
    assert not [name for name, _ in tags.attrs if name.startswith("on")]


def test_report_is_one_file_without_external_references(any_page: str) -> None:
    tags = _parse(any_page)
    names = {name for name, _ in tags.attrs}
    assert not names & {"src", "href", "xlink:href", "srcset", "action", "data"}
    assert not set(tags.tags) & {"link", "script", "img", "image", "iframe", "object", "embed"}
    assert "url(" not in any_page and "@import" not in any_page


def test_header_shows_decision_counts_hash_and_version(hostile_page: str) -> None:
    assert ">fail</span>" in hostile_page
    assert "3 evaluated, 2 failed" in hostile_page
    assert "1 critical, 1 warning" in hostile_page
    assert "ab" * 32 in hostile_page
    assert "1.24.1" in hostile_page
    assert hostile_page.count('<tr class="failed-') == 2
    assert "Column profiles" not in hostile_page  # neither a profile nor coercions given


def test_profiled_page_names_every_column_once_escaped(profiled_page: str) -> None:
    section = profiled_page[profiled_page.index('id="profiles"') :]
    names = re.findall(r'<span class="colname">([^<]*)</span>', section)
    escaped_script = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    # The frame's columns, then the one an expectation names that the table lacks.
    assert names == ["id", "city", escaped_script, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"]
    assert "not in the table" in section
    assert "2 values</span>" in section and "&quot; 12,5 &quot;" in section


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


def _outcome(
    index: int, success: bool, severity: str = "critical", **kw: Any
) -> ExpectationOutcome:
    fields: dict[str, Any] = {
        "table": "t",
        "type": "expect_column_values_to_be_between",
        "column": "x",
        "kwargs": {"column": "x", "min_value": 0},
        "severity": severity,
        "success": success,
    }
    fields.update(kw)
    return ExpectationOutcome(index=index, **fields)


def _check_rows(page: str) -> list[str]:
    """The `#` cell of every checks-table row, in document order."""
    end = page.find('id="profiles"')
    checks = page[page.index('id="checks"') : end if end >= 0 else len(page)]
    return re.findall(r'<tr(?: class="[^"]*")?><td>([^<]*)</td>', checks)


def test_failures_come_first_with_their_sentence_at_the_top() -> None:
    outcomes = [
        _outcome(0, True),
        _outcome(1, False, "warning", unexpected_count=4, element_count=10),
        _outcome(
            2,
            False,
            column="city",
            type="expect_column_values_to_be_in_set",
            kwargs={"column": "city", "value_set": ["Oslo"]},
            unexpected_count=3,
            element_count=10,
            unexpected_percent=30.0,
            unexpected_examples=["Churned", " Oslo"],
        ),
        _outcome(3, True),
        _outcome(
            4,
            False,
            type="expect_column_mean_to_be_between",
            kwargs={"column": "x", "min_value": 0, "max_value": 1},
            observed_value=25.750666666666667,
        ),
        _outcome(5, False, "warning", exception="column 'x' does not exist"),
    ]
    result = ValidationResult(expectations=outcomes, ge_version="1.24.1", table_rows={"t": 10})
    page = render_html(result, "order", "00")
    # Failed critical, failed warning, passed; config order within each.
    assert _check_rows(page) == ["2", "4", "1", "5", "0", "3"]
    assert '<details class="passed"><summary>2 passed checks</summary>' in page
    # The sentences sit above everything but the title and the badge.
    start, end = page.index('<section class="failures">'), page.index("</section>")
    assert end < page.index('class="meta"') < page.index('id="checks"')
    box = page[start:end]
    assert "2 critical and 2 warning checks failed" in box
    items = re.findall(r"<li>(.*?)</li>", box)
    assert [re.findall(r"expectations\[(\d)\]", i) for i in items] == [["2"], ["4"], ["1"], ["5"]]
    assert (
        "validation.expectations[2] expect_column_values_to_be_in_set on t.city: 3 unexpected "
        "values of 10 rows (30 % of non-null values), e.g. &quot;Churned&quot;, &quot; Oslo&quot;"
    ) in items[0]
    expected = "expected {&quot;min_value&quot;: 0, &quot;max_value&quot;: 1}"
    assert f"on t.x: observed 25.7507, {expected}" in items[1]
    assert "could not be evaluated: column &#x27;x&#x27; does not exist" in items[3]


def test_all_passing_says_so_without_a_failures_box() -> None:
    result = ValidationResult(expectations=[_outcome(0, True)], ge_version="1.24.1")
    page = render_html(result, "ok", "00")
    assert "All 1 checks passed." in page and "<section" not in page


def _profile_rows(page: str) -> dict[str, str]:
    section = page[page.index('id="profiles"') :]
    rows = re.findall(r"<tr[ >].*?</tr>", section)
    named = [(re.search(r'class="colname">([^<]*)<', r), r) for r in rows]
    return {m.group(1): r for m, r in named if m}


def test_profile_rows_show_stats_checks_and_coercions() -> None:
    df = pd.DataFrame(
        {
            "age": pd.array([30, 41, None, 41], dtype="Int64"),
            "city": ["Oslo", "Rome", "Oslo", None],
            "seen": pd.to_datetime(["2025-01-01", "2025-02-01", None, "2025-03-01"], utc=True),
        }
    )
    outcomes = [
        _outcome(
            0, False, column="age", kwargs={"column": "age", "min_value": 35}, unexpected_count=1
        ),
        _outcome(
            1,
            True,
            type="expect_table_row_count_to_be_between",
            column=None,
            kwargs={"min_value": 1},
        ),
        _outcome(
            2, False, "warning", column="gone", kwargs={"column": "gone"}, exception="no column"
        ),
        _outcome(
            3,
            True,
            "warning",
            type="expect_column_values_to_be_in_set",
            column="city",
            kwargs={"column": "city", "value_set": ["Oslo", "Rome"]},
        ),
    ]
    result = ValidationResult(expectations=outcomes, ge_version="1.24.1", table_rows={"t": 4})
    profile = json.loads(json.dumps(profile_tables({"t": df})))  # as stored next to the report
    coercions = {"t": {"age": {"count": 7, "examples": ["12x", "1e99"]}}}
    page = render_html(result, "p", "00", profile=profile, coercions=coercions)
    section = page[page.index('id="profiles"') :]
    assert "Table <code>t</code> · 4 rows · 3 columns" in section
    assert "Table checks:" in section and "table_row_count_to_be_between" in section
    assert "<th>Coerced to null at ingest</th>" in section
    rows = _profile_rows(page)
    assert list(rows) == ["age", "city", "seen", "gone"]
    age = rows["age"]
    assert age.startswith('<tr class="failed-critical">')
    assert "integer<br><code>Int64</code>" in age
    assert '<div class="num">1</div><div class="num muted">25 %</div>' in age  # nulls
    assert "<svg" in age and "<rect" in age and "min <code>30</code>" in age
    assert "7 values</span>" in age and "&quot;12x&quot;, &quot;1e99&quot;" in age
    assert "values_to_be_between" in age and "1 unexpected" in age
    city = rows["city"]
    assert "<code>&quot;Oslo&quot;</code>" in city and '<span class="num">2</span>' in city
    assert "✓" in city and "values_to_be_in_set" in city and "<svg" not in city
    assert "2025-01-01 00:00:00 UTC" in rows["seen"] and "<svg" in rows["seen"]
    gone = rows["gone"]
    assert "not in the table" in gone and gone.startswith('<tr class="failed-warning">')


def test_coercions_alone_add_the_column_section() -> None:
    result = ValidationResult(expectations=[_outcome(0, True)], ge_version="1.24.1")
    page = render_html(result, "c", "00", coercions={"t": {"x": {"count": 2, "examples": ["?"]}}})
    assert "(not profiled)" in page and "2 values</span>" in page
    profiled = profile_tables({"t": pd.DataFrame({"x": [1]})})
    without = render_html(result, "c", "00", profile=profiled)
    assert "Coerced to null at ingest" not in without  # no column when ingest said nothing
