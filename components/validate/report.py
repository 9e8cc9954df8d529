"""A one-file HTML report of a validation run, for KFP's `HTML` artifact viewer.

GE's Data Docs are a multi-file site; a KFP `HTML` artifact is a single file, so the
page is built here: inline CSS and inline SVG, no scripts, no links or images. Every
value is HTML-escaped because expectations, column names and offending values are
user data.

Page order: the decision and one sentence per failed check (critical, then warning),
the run's numbers, every check (failed critical, failed warning, passed), then a
profile of each table's columns with the checks on each column beside it.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from components.validate.results import ExpectationOutcome, ValidationResult, describe

_COLORS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}
# Failure sentences listed at the top; the checks table below has every one.
MAX_SENTENCES = 20
# Top values drawn per string/bool column (the profile may hold more).
MAX_TOP_SHOWN = 6
_HIST_W, _HIST_H = 180, 40

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 8px}
h2{font-size:17px;margin:26px 0 8px}
h3{font-size:15px;margin:20px 0 6px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;
text-transform:uppercase;font-size:13px}
.failures{margin:14px 0;padding:8px 14px;border:1px solid #ff8182;background:#ffebe9;
border-radius:6px}
.failures.warning-only{border-color:#d4a72c;background:#fff8c5}
.failures h2{margin:4px 0 6px;font-size:15px}
.failures ol{margin:0;padding-left:22px}
.failures li{margin:3px 0;font-size:13px}
.allpass{margin:14px 0;color:#1a7f37;font-weight:600}
.sev{font-weight:700;text-transform:uppercase;font-size:11px}
.sev-critical{color:#cf222e}.sev-warning{color:#9a6700}
.meta{margin:12px 0 18px;border-collapse:collapse}
.meta td{padding:2px 12px 2px 0}
.meta td:first-child{color:#59636e}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;overflow-wrap:anywhere}
table.results,table.profile{border-collapse:collapse;width:100%;font-size:13px}
.results th,.results td,.profile th,.profile td{border:1px solid #d1d9e0;padding:4px 8px;
text-align:left;vertical-align:top}
.results th,.profile th{background:#f6f8fa}
tr.failed-critical td{background:#ffebe9}
tr.failed-warning td{background:#fff8c5}
.ok{color:#1a7f37;font-weight:600}.ko{color:#cf222e;font-weight:600}
.err{color:#cf222e}
.muted{color:#59636e}
.num{text-align:right;white-space:nowrap}
.colname{font-weight:600;overflow-wrap:anywhere}
.profile td:first-child{min-width:12em}
details.passed summary{cursor:pointer;margin:10px 0 6px;font-weight:600}
.tv{display:grid;grid-template-columns:minmax(60px,160px) 90px auto;gap:0 6px;
align-items:center;font-size:12px}
.tv .v{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar{height:9px;background:#eaeef2;border-radius:2px}
.bar span{display:block;height:9px;background:#54aeff;border-radius:2px}
svg.hist{display:block}
svg.hist rect{fill:#54aeff}
svg.hist line{stroke:#8c959f;stroke-width:1}
.axis{display:flex;justify-content:space-between;width:180px;font-size:11px;color:#59636e}
.stats{font-size:12px;color:#59636e}
.chip{display:inline-block;margin:1px 0;padding:0 6px;border-radius:10px;font-size:12px;
border:1px solid #d1d9e0;background:#f6f8fa}
.chip.fail-critical{border-color:#ff8182;background:#ffebe9}
.chip.fail-warning{border-color:#d4a72c;background:#fff8c5}
.coerced{color:#9a6700;font-weight:600}
"""


def render_html(
    result: ValidationResult,
    title: str,
    dataset_sha256: str,
    *,
    profile: Mapping[str, Any] | None = None,
    coercions: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> str:
    """The whole report as one self-contained HTML document.

    `profile` is `profile.profile_tables(...)`'s output (or that JSON read back);
    `coercions` maps table -> column -> `{"count": int, "examples": [str, ...]}`, the
    values ingest turned into null. Either adds the per-column section; a column's
    coercions show in its row (and add a row for a column the profile lacks).
    """
    decision = result.decision
    checks = _checks(result)
    rows = ", ".join(f"{_e(t)}: {n:,}" for t, n in result.table_rows.items())
    meta = [
        ("Checks", f"{result.evaluated} evaluated, {result.failed} failed"),
        ("Failed", f"{result.failed_critical} critical, {result.failed_warning} warning"),
        ("Success", f"{result.success_percent:g} %"),
        ("Rows", rows),
        ("Dataset sha256", f"<code>{_e(dataset_sha256)}</code>"),
        ("Great Expectations", _e(result.ge_version)),
        ("Duration", f"{result.duration_s:.2f} s"),
    ]
    if profile is not None:
        meta.append(("Profile", f"{float(profile.get('duration_s') or 0.0):.2f} s"))
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
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<span class="badge" style="background:{_COLORS[decision]}">{_e(decision)}</span>',
        _failures_box(checks),
        '<table class="meta">',
        *(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in meta),
        "</table>",
        '<h2 id="checks">Checks</h2>',
        _checks_tables(checks, header_cells),
    ]
    if profile is not None or coercions:
        parts.append(_profiles(profile, coercions, checks))
    parts.append("</body></html>\n")
    return "".join(parts)


# ---------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _value(value: Any) -> str:
    """A JSON-ish rendering of a value, escaped; strings show unquoted."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _e(value)
    return _e(_json(value, limit=None))


def _json(value: Any, limit: int | None = 80) -> str:
    """A value as JSON (strings quoted, so blanks and case show), shortened; not escaped.

    A float shows 6 significant digits (an observed mean of 25.750666666666667 reads 25.7507).
    """
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _quoted(value: Any, limit: int = 80) -> str:
    """`_json`, escaped."""
    return _e(_json(value, limit))


def _checks(result: ValidationResult) -> list[ExpectationOutcome]:
    # Built-in checks (derived from the config) come first when the model has them.
    return list(getattr(result, "checks", result.expectations))


def _group(e: ExpectationOutcome) -> int:
    if e.success:
        return 2
    return 0 if e.severity == "critical" else 1


def _failures_first(checks: Iterable[ExpectationOutcome]) -> list[ExpectationOutcome]:
    """Failed critical, then failed warning, then passed; config order within each."""
    return sorted(checks, key=_group)


def _label(e: ExpectationOutcome) -> str:
    origin = getattr(e, "builtin", None)
    return f'built-in<br><span class="muted">{_e(origin)}</span>' if origin else _e(e.index)


# ---------------------------------------------------------------- failures at the top


def _failures_box(checks: list[ExpectationOutcome]) -> str:
    failed = [e for e in _failures_first(checks) if not e.success]
    if not failed:
        return f'<p class="allpass">All {len(checks)} checks passed.</p>'
    critical = sum(1 for e in failed if e.severity == "critical")
    items = [
        f'<li><span class="sev sev-{_e(e.severity)}">{_e(e.severity)}</span> '
        f"{_e(describe(e))}.</li>"
        for e in failed[:MAX_SENTENCES]
    ]
    more = len(failed) - MAX_SENTENCES
    if more > 0:
        items.append(f"<li>… and {more:,} more in the checks table below.</li>")
    head = f"{critical} critical and {len(failed) - critical} warning checks failed"
    css = "failures" if critical else "failures warning-only"
    return f'<section class="{css}"><h2>{head}</h2><ol>{"".join(items)}</ol></section>'


# ---------------------------------------------------------------- the checks table


def _checks_tables(checks: list[ExpectationOutcome], header_cells: list[str]) -> str:
    """Failed checks in a table (critical first); the passed ones folded below it."""
    head = "".join(f"<th>{h}</th>" for h in header_cells)
    ordered = _failures_first(checks)
    failed = [e for e in ordered if not e.success]
    passed = [e for e in ordered if e.success]
    parts = []
    if failed:
        parts.append(
            f'<table class="results"><thead><tr>{head}</tr></thead><tbody>'
            f"{''.join(_row(e) for e in failed)}</tbody></table>"
        )
    if passed:
        # <details> folds without a script; the per-column profile shows them as well.
        parts.append(
            f'<details class="passed"><summary>{len(passed):,} passed checks</summary>'
            f'<table class="results"><thead><tr>{head}</tr></thead><tbody>'
            f"{''.join(_row(e) for e in passed)}</tbody></table></details>"
        )
    return "".join(parts)


def _observed(e: ExpectationOutcome) -> str:
    parts = []
    if e.exception:
        parts.append(f'<span class="err">error: {_e(e.exception)}</span>')
    note = getattr(e, "note", None)
    if note:
        parts.append(_e(note))
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
        _label(e),
        _e(e.table),
        f"<code>{_e(e.type)}</code>" + (f"<br><code>{_value(args)}</code>" if args else ""),
        _e(e.column or ""),
        _e(e.severity),
        status,
        _observed(e),
        f"<code>{examples}</code>" if examples else "",
    ]
    return f"<tr{state}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


# ---------------------------------------------------------------- column profiles


def _columns_of(e: ExpectationOutcome) -> list[str]:
    """Every column an expectation checks (one, a pair or a list)."""
    kw = e.kwargs
    if isinstance(kw.get("column"), str):
        return [kw["column"]]
    names = [kw[k] for k in ("column_A", "column_B") if isinstance(kw.get(k), str)]
    if isinstance(kw.get("column_list"), list):
        names += [c for c in kw["column_list"] if isinstance(c, str)]
    if not names and e.column:
        names = [e.column]
    return names


def _profiles(
    profile: Mapping[str, Any] | None,
    coercions: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
    checks: list[ExpectationOutcome],
) -> str:
    tables: dict[str, Any] = dict((profile or {}).get("tables") or {})
    coerced = coercions or {}
    on_column: dict[tuple[str, str], list[ExpectationOutcome]] = defaultdict(list)
    on_table: dict[str, list[ExpectationOutcome]] = defaultdict(list)
    for e in checks:
        names = _columns_of(e)
        for name in names:
            on_column[(e.table, name)].append(e)
        if not names:
            on_table[e.table].append(e)
    names = list(tables)
    for extra in [*coerced, *(t for t, _ in on_column), *on_table]:
        if extra not in names:
            names.append(extra)
    parts = ['<h2 id="profiles">Column profiles</h2>']
    for table in names:
        parts.append(
            _table_profile(
                table, tables.get(table), coerced.get(table), on_column, on_table.get(table, [])
            )
        )
    return "".join(parts)


def _table_profile(
    table: str,
    prof: Mapping[str, Any] | None,
    coerced: Mapping[str, Mapping[str, Any]] | None,
    on_column: Mapping[tuple[str, str], list[ExpectationOutcome]],
    table_checks: list[ExpectationOutcome],
) -> str:
    columns: list[Mapping[str, Any]] = list((prof or {}).get("columns") or [])
    if prof is None:
        head = f'Table <code>{_e(table)}</code> <span class="muted">(not profiled)</span>'
    else:
        n_rows = int(prof.get("rows") or 0)
        head = f"Table <code>{_e(table)}</code> · {n_rows:,} rows · {len(columns):,} columns"
    # Columns the profile lacks but a check or a coercion names (e.g. a missing column).
    extra: list[str] = []
    seen = {str(c.get("name")) for c in columns}
    for name in [*(coerced or {}), *(c for t, c in on_column if t == table)]:
        if name not in seen:
            seen.add(name)
            extra.append(name)
    has_coercions = coerced is not None
    header = ["Column", "Type", "Nulls", "Distinct", "Values", "Checks"]
    if has_coercions:
        header.insert(5, "Coerced to null at ingest")
    rows = [
        _profile_row(table, c, coerced, on_column, has_coercions, rows=int(prof.get("rows") or 0))
        for c in columns
        if prof is not None
    ]
    rows += [
        _profile_row(
            table, {"name": n, "missing": prof is not None}, coerced, on_column, has_coercions, 0
        )
        for n in extra
    ]
    parts = [f"<h3>{head}</h3>"]
    if table_checks:
        chips = " ".join(_chip(e) for e in _failures_first(table_checks))
        parts.append(f'<p class="stats">Table checks: {chips}</p>')
    parts += [
        '<table class="profile"><thead><tr>',
        *(f"<th>{h}</th>" for h in header),
        "</tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    ]
    return "".join(parts)


def _profile_row(
    table: str,
    col: Mapping[str, Any],
    coerced: Mapping[str, Mapping[str, Any]] | None,
    on_column: Mapping[tuple[str, str], list[ExpectationOutcome]],
    has_coercions: bool,
    rows: int,
) -> str:
    name = str(col.get("name"))
    checks = _failures_first(on_column.get((table, name), []))
    failed = [e for e in checks if not e.success]
    state = f' class="failed-{_e(failed[0].severity)}"' if failed else ""
    if col.get("missing"):
        kind = '<span class="err">not in the table</span>'
    elif "kind" in col:
        kind = f"{_e(col['kind'])}<br><code>{_e(col.get('dtype', ''))}</code>"
    else:
        kind = '<span class="muted">not profiled</span>'
    cells = [f'<span class="colname">{_e(name)}</span>', kind, *_stats_cells(col, rows)]
    if has_coercions:
        cells.append(_coercion_cell((coerced or {}).get(name)))
    cells.append(" ".join(_chip(e) for e in checks))
    return f"<tr{state}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _stats_cells(col: Mapping[str, Any], rows: int) -> list[str]:
    """Nulls, distinct and values cells."""
    if "error" in col:
        return ["", "", f'<span class="err">not profiled: {_e(col["error"])}</span>']
    if "nulls" not in col:
        return ["", "", ""]
    nulls = int(col["nulls"])
    pct = float(col.get("null_percent") or 0.0)
    null_cell = f'<div class="num">{nulls:,}</div><div class="num muted">{pct:.3g} %</div>'
    distinct = int(col.get("distinct") or 0)
    present = rows - nulls
    unique = (
        " <span class='muted'>(all distinct)</span>" if distinct > 1 and distinct == present else ""
    )
    distinct_cell = f'<div class="num">{distinct:,}{unique}</div>'
    return [null_cell, distinct_cell, _values_cell(col)]


def _values_cell(col: Mapping[str, Any]) -> str:
    kind = col.get("kind")
    if "top" in col:
        return _top_values(col)
    if kind in {"integer", "float", "timestamp"}:
        if col.get("min") is None:
            return '<span class="muted">no values</span>'
        hist = col.get("histogram")
        svg = _histogram(hist, kind == "timestamp") if hist else ""
        stats = [
            f"min <code>{_scalar(col['min'])}</code>",
            f"max <code>{_scalar(col['max'])}</code>",
        ]
        if col.get("mean") is not None:
            stats.insert(1, f"mean <code>{_scalar(col['mean'])}</code>")
        if col.get("infinite"):
            stats.append(f'<span class="err">{int(col["infinite"]):,} infinite</span>')
        return svg + f'<div class="stats">{" · ".join(stats)}</div>'
    return ""


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _e(json.dumps(value))
    if isinstance(value, int):
        return _e(value)
    if isinstance(value, float):
        return _e(f"{value:.6g}")
    text = str(value)
    if len(text) >= 19 and text[4] == "-" and text[10] == "T":  # an ISO timestamp
        text = text.replace("T", " ", 1).removesuffix("+00:00") + (
            " UTC" if text.endswith("+00:00") else ""
        )
    return _e(text)


def _top_values(col: Mapping[str, Any]) -> str:
    top = list(col.get("top") or [])
    if not top:
        return '<span class="muted">no values</span>'
    shown = top[:MAX_TOP_SHOWN]
    total = sum(int(t["count"]) for t in top) + int(col.get("other_count") or 0)
    lines = []
    for t in shown:
        count = int(t["count"])
        width = 100.0 * count / total if total else 0.0
        lines.append(
            f'<span class="v" title="{_quoted(t["value"], 400)}">'
            f"<code>{_quoted(t['value'], 40)}</code></span>"
            f'<span class="bar"><span style="width:{width:.1f}%"></span></span>'
            f'<span class="num">{count:,}</span>'
        )
    rest_values = int(col.get("distinct") or 0) - len(shown)
    rest_rows = total - sum(int(t["count"]) for t in shown)
    more = (
        f'<div class="stats">+ {rest_values:,} more values in {rest_rows:,} rows</div>'
        if rest_values > 0
        else ""
    )
    return f'<div class="tv">{"".join(lines)}</div>{more}'


def _histogram(hist: Mapping[str, Any], timestamps: bool) -> str:
    counts = [int(c) for c in hist.get("counts") or []]
    edges = list(hist.get("edges") or [])
    if not counts or len(edges) != len(counts) + 1:
        return ""
    top = max(counts) or 1
    width = _HIST_W / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = 0.0 if count == 0 else max(1.0, (_HIST_H - 2) * count / top)
        lo, hi = edges[i], edges[i + 1]
        what = _scalar(lo) if hist.get("discrete") else f"{_scalar(lo)} to {_scalar(hi)}"
        bars.append(
            f'<rect x="{i * width + 0.5:.1f}" y="{_HIST_H - 1 - h:.1f}" '
            f'width="{max(width - 1, 0.5):.1f}" height="{h:.1f}">'
            f"<title>{what}: {count:,} rows</title></rect>"
        )
    axis_lo, axis_hi = (
        _scalar(edges[0]),
        _scalar(edges[-1] if not hist.get("discrete") else edges[-2]),
    )
    if timestamps:
        axis_lo, axis_hi = axis_lo[:10], axis_hi[:10]
    return (
        f'<svg class="hist" width="{_HIST_W}" height="{_HIST_H}" '
        f'viewBox="0 0 {_HIST_W} {_HIST_H}" role="img" aria-label="histogram">'
        f"{''.join(bars)}"
        f'<line x1="0" y1="{_HIST_H - 0.5}" x2="{_HIST_W}" y2="{_HIST_H - 0.5}"></line></svg>'
        f'<div class="axis"><span>{axis_lo}</span><span>{axis_hi}</span></div>'
    )


def _coercion_cell(info: Mapping[str, Any] | None) -> str:
    if not info:
        return ""
    count = int(info.get("count") or 0)
    if not count:
        return '<span class="muted">0</span>'
    examples = ", ".join(_quoted(v) for v in list(info.get("examples") or [])[:5])
    eg = f'<div class="stats">e.g. <code>{examples}</code></div>' if examples else ""
    return f'<span class="coerced">{count:,} values</span>{eg}'


def _chip(e: ExpectationOutcome) -> str:
    short = e.type.removeprefix("expect_column_").removeprefix("expect_")
    if e.success:
        css, mark = "chip", '<span class="ok">✓</span>'
    else:
        css, mark = f"chip fail-{_e(e.severity)}", '<span class="ko">✗</span>'
    detail = ""
    if not e.success:
        if e.unexpected_count is not None:
            detail = f": {e.unexpected_count:,} unexpected"
        elif e.exception:
            detail = ": error"
        elif e.observed_value is not None:
            detail = f": observed {_quoted(e.observed_value, 30)}"
    return (
        f'<span class="{css}" title="{_e(describe(e))}">{mark} {_e(short)} '
        f'<span class="muted">{_e(e.severity)}</span>{detail}</span>'
    )
