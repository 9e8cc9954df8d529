"""The validation report as a browser shows it: headless Chromium renders the one-file page.

The demo data is ingested and validated for real (Great Expectations runs), with a
critical and a warning expectation that fail and a hostile value in a string column.
Chromium's own headless mode dumps the DOM it built and takes a screenshot, kept in
`$SEAMLESS_TEST_ARTIFACTS` (default `tests/artifacts/`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.common.config import default_config_path, parse_config
from components.ingest.stage import ingest_tables
from components.validate.results import ValidationResult
from components.validate.stage import profile_path, run_validation
from tests.helpers import chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = '<img src=x onerror="document.title=1">'
FAILING = [
    {
        "table": "credit_history",
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "credit_score", "min_value": 450, "max_value": 800},
        "severity": "critical",
    },
    {
        "table": "transactions",
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "txn_count_30d", "min_value": 100, "max_value": 200},
        "severity": "warning",
    },
]
# The bundled suite's warning `home_ownership` in {RENT, OWN, MORTGAGE, OTHER} fails too.


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ValidationResult]:
    from pipelines.demo_data import generate

    data = tmp_path_factory.mktemp("data")
    generate(data, n_rows=2000, seed=3)
    profiles = pd.read_parquet(data / "profiles.parquet")
    profiles.loc[profiles.index[:3], "home_ownership"] = HOSTILE
    profiles.to_parquet(data / "profiles.parquet", index=False)

    raw = yaml.safe_load(default_config_path().read_text())
    raw["validation"]["expectations"] += FAILING
    config = parse_config(yaml.safe_dump(raw, sort_keys=False), origin="browser-test.yaml")
    dataset = tmp_path_factory.mktemp("dataset")
    ingest_tables(config, data, dataset)
    page = tmp_path_factory.mktemp("report") / "report.html"
    result = run_validation(config, str(dataset), str(page))
    assert result.decision == "fail"
    return page, result


def test_profile_is_stored_next_to_the_report(report: tuple[Path, ValidationResult]) -> None:
    page, result = report
    stored = json.loads(profile_path(page).read_text())
    assert list(stored["tables"]) == list(result.table_rows)
    credit = {c["name"]: c for c in stored["tables"]["credit_history"]["columns"]}
    assert credit["credit_score"]["kind"] == "integer"
    assert credit["credit_score"]["histogram"]["counts"]


def test_chromium_renders_failures_first_and_every_column(
    report: tuple[Path, ValidationResult],
) -> None:
    page, result = report
    out = chromium.artifacts_dir()
    shutil.copyfile(page, out / "validation-report.html")
    screenshot = out / "validation-report.png"
    screenshot.unlink(missing_ok=True)
    browser_home = page.parent / "chromium"
    url = page.as_uri()
    dom_html = chromium.run(browser_home, "--dump-dom", url).stdout
    chromium.run(browser_home, f"--screenshot={screenshot}", "--window-size=1400,2000", url)
    assert screenshot.is_file() and screenshot.stat().st_size > 20_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    dom = chromium.Dom(dom_html)
    dom.close()
    tags = [t for t, _ in dom.elements]
    # The hostile value stayed text: the browser built no element from it.
    assert "img" not in tags and "script" not in tags
    assert HOSTILE in "".join(dom.text)

    # The failures box with the failing sentences comes before everything else.
    (box,) = dom.find("section", "failures")
    assert box < dom.find("table", "meta")[0] < dom.find("table", "results")[0]
    sentences = dom.text_of(box)
    assert "1 critical and 2 warning checks failed" in sentences
    # Critical first, each with its numbers and example values.
    assert sentences.index("credit_score") < sentences.index("home_ownership")
    assert "unexpected values of " in sentences
    assert "<img src=x" in sentences
    assert "txn_count_30d: observed" in sentences

    # Checks: failed critical, then failed warning, then passed (folded in a <details>).
    checks_start = dom.find("table", "results")[0]
    (profiles_h2,) = [i for i, (t, a) in enumerate(dom.elements) if a.get("id") == "profiles"]
    rows = [
        i
        for i in dom.find("tr")
        if checks_start < i < profiles_h2 and dom.elements[i + 1][0] == "td"
    ]
    order = [(dom.elements[i][1].get("class") or "passed") for i in rows]
    assert len(order) == result.evaluated
    assert dom.find("details", "passed")
    ranks = [{"failed-critical": 0, "failed-warning": 1, "passed": 2}[c] for c in order]
    assert ranks == sorted(ranks) and ranks[0] == 0 and 1 in ranks

    # A profile row for every column of every validated table, with histograms drawn.
    stored = json.loads(profile_path(page).read_text())
    names = [dom.text_of(i) for i in dom.find("span", "colname")]
    expected = [c["name"] for t in stored["tables"].values() for c in t["columns"]]
    assert names == expected
    assert len(dom.find("svg", "hist")) >= 10 and dom.find("rect")
    headings = " ".join(dom.text_of(i) for i in dom.find("h3"))
    for table in result.table_rows:
        assert table in headings
