"""A one-file HTML report of a validation run, for KFP's `HTML` artifact viewer.

GE's Data Docs are a multi-file site; a KFP `HTML` artifact is a single file, so the
page is built here: inline CSS, no scripts, no links or images. Every value is
HTML-escaped because expectations, column names and offending values are user data.
"""

from __future__ import annotations

import html
import json
from typing import Any

from components.validate.results import ExpectationOutcome, ValidationResult

_COLORS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 8px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;
text-transform:uppercase;font-size:13px}
.meta{margin:12px 0 18px;border-collapse:collapse}
.meta td{padding:2px 12px 2px 0}
.meta td:first-child{color:#59636e}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
table.results{border-collapse:collapse;width:100%;font-size:13px}
.results th,.results td{border:1px solid #d1d9e0;padding:4px 8px;text-align:left;vertical-align:top}
.results th{background:#f6f8fa}
tr.failed-critical td{background:#ffebe9}
tr.failed-warning td{background:#fff8c5}
.ok{color:#1a7f37;font-weight:600}.ko{color:#cf222e;font-weight:600}
.err{color:#cf222e}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _value(value: Any) -> str:
    """A JSON-ish rendering of a value, escaped; strings show unquoted."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _e(value)
    return _e(json.dumps(value, ensure_ascii=False, default=str))


def _observed(e: ExpectationOutcome) -> str:
    parts = []
    if e.exception:
        parts.append(f'<span class="err">error: {_e(e.exception)}</span>')
    if e.observed_value is not None:
        parts.append(f"<code>{_value(e.observed_value)}</code>")
    if e.unexpected_count is not None:
        pct = "" if e.unexpected_percent is None else f" ({e.unexpected_percent:.3g} %)"
        total = "" if e.element_count is None else f" of {e.element_count:,}"
        parts.append(f"{e.unexpected_count:,} unexpected{_e(total)}{_e(pct)}")
    return "<br>".join(parts)


def _row(e: ExpectationOutcome) -> str:
    state = "" if e.success else f' class="failed-{_e(e.severity)}"'
    status = '<span class="ok">pass</span>' if e.success else '<span class="ko">fail</span>'
    args = {k: v for k, v in e.kwargs.items() if k != "column"}
    examples = ", ".join(_value(v) if v is not None else "null" for v in e.unexpected_examples)
    cells = [
        _e(e.index),
        _e(e.table),
        f"<code>{_e(e.type)}</code>" + (f"<br><code>{_value(args)}</code>" if args else ""),
        _e(e.column or ""),
        _e(e.severity),
        status,
        _observed(e),
        f"<code>{examples}</code>" if examples else "",
    ]
    return f"<tr{state}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_html(result: ValidationResult, title: str, dataset_sha256: str) -> str:
    """The whole report as one self-contained HTML document."""
    decision = result.decision
    rows = ", ".join(f"{_e(t)}: {n:,}" for t, n in result.table_rows.items())
    meta = [
        ("Expectations", f"{result.evaluated} evaluated, {result.failed} failed"),
        ("Failed", f"{result.failed_critical} critical, {result.failed_warning} warning"),
        ("Success", f"{result.success_percent:g} %"),
        ("Rows", rows),
        ("Dataset sha256", f"<code>{_e(dataset_sha256)}</code>"),
        ("Great Expectations", _e(result.ge_version)),
        ("Duration", f"{result.duration_s:.2f} s"),
    ]
    header_cells = [
        "#",
        "Table",
        "Expectation",
        "Column",
        "Severity",
        "Result",
        "Observed",
        "Unexpected examples",
    ]
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_e(title)}</h1>",
            f'<span class="badge" style="background:{_COLORS[decision]}">{_e(decision)}</span>',
            '<table class="meta">',
            *(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in meta),
            "</table>",
            '<table class="results"><thead><tr>',
            *(f"<th>{h}</th>" for h in header_cells),
            "</tr></thead><tbody>",
            *(_row(e) for e in result.expectations),
            "</tbody></table></body></html>\n",
        ]
    )
