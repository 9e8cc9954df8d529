"""The validate stage as the component calls it: the report is written whatever the verdict."""

from __future__ import annotations

from pathlib import Path

from components.common.config import SeamlessConfig
from components.common.tables import read_dataset, read_manifest
from components.validate.report import render_html
from components.validate.results import ValidationResult
from components.validate.validation import validate_tables


def run_validation(config: SeamlessConfig, dataset_path: str, report_path: str) -> ValidationResult:
    tables = read_dataset(dataset_path)
    result = validate_tables(config, tables)
    sha = str(read_manifest(dataset_path)["sha256"])
    html = render_html(result, title=f"{config.name}: data validation", dataset_sha256=sha)
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(html, encoding="utf-8")
    if result.decision != "pass":
        print(f"validate: {result.decision}: {result.message()}")
    return result
