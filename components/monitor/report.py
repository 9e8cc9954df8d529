"""A one-file HTML monitoring report for KFP's `HTML` viewer and the MLflow run.

Inline CSS, no scripts, links or images; every value is HTML-escaped (feature names,
categories and messages come from user data and configs).
"""

from __future__ import annotations

import html
from typing import Any

from components.monitor.drift import DRIFT, NOT_ENOUGH_DATA, OK, WARN
from components.monitor.results import RETRAIN, RETRAIN_SKIPPED, MonitoringResult

_COLORS = {
    OK: "#1a7f37",
    WARN: "#9a6700",
    DRIFT: "#cf222e",
    RETRAIN: "#cf222e",
    RETRAIN_SKIPPED: "#9a6700",
    "breach": "#cf222e",
    NOT_ENOUGH_DATA: "#59636e",
    "no_baseline": "#59636e",
}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:22px 0 6px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;
text-transform:uppercase;font-size:12px}
.meta{margin:12px 0 18px;border-collapse:collapse}
.meta td{padding:2px 12px 2px 0}.meta td:first-child{color:#59636e}
table.t{border-collapse:collapse;width:100%;font-size:13px}
.t th,.t td{border:1px solid #d1d9e0;padding:4px 8px;text-align:left;vertical-align:top}
.t th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#ffebe9}tr.warn td{background:#fff8c5}
"""


def _since(window: dict[str, Any]) -> str:
    """The time the run read the logs from (its longest window), when it had one."""
    since = window.get("read_since")
    return f" since {since}" if since else ""


def _unknown_values(join: dict[str, Any]) -> str:
    values = join.get("unknown_values") or {}
    if not values:
        return ""
    shown = ", ".join(f"{v!r} x{n}" for v, n in list(values.items())[:5])
    return f" ({shown})"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _badge(status: str) -> str:
    color = _COLORS.get(status, "#59636e")
    return f'<span class="badge" style="background:{color}">{_e(status)}</span>'


def _num(value: float | None, fmt: str = ".4f") -> str:
    return "–" if value is None else _e(format(value, fmt))


def render_html(result: MonitoringResult) -> str:
    d, p = result.drift, result.performance
    meta = [
        ("model", f"{result.model_name} v{result.model_version} (@{result.model_alias})"),
        ("checked at", result.checked_at),
        ("decision", result.reason),
        ("reference", str(result.reference.get("description", ""))),
        ("drift window", f"{d.rows} rows, {result.window.get('drift', '')}"),
        ("tests", f"{d.tests}, each at p < {d.corrected_pvalue:.2g} (Bonferroni)"),
        ("performance window", f"{p.labelled} labelled, {result.window.get('performance', '')}"),
    ]
    vs_training = result.reference.get("vs_training")
    if vs_training:
        meta.append(("same window vs training rows", str(vs_training.get("message", ""))))
    guarded = result.guard
    if guarded:
        sha = guarded.get("data_source_sha256") or "unknown"
        meta.append(
            (
                "retrain guard",
                f"data source {sha[:16]}; {guarded.get('reason') or 'first retrain decision'}",
            )
        )
    join = result.window.get("labels") or {}
    if join.get("feedback"):
        meta.append(
            (
                "feedback",
                f"{join['feedback']} records{_since(result.window)}: "
                f"{join.get('matched', 0)} matched predictions of "
                f"this version, {join.get('unmatched', 0)} matched none, "
                f"{join.get('without_label', 0)} without a label, "
                f"{join.get('unknown_label', 0)} with a label that is none of the classes"
                f"{_unknown_values(join)}, {join.get('replaced', 0)} replaced by a later label",
            )
        )
    skipped = result.window.get("skipped") or {}
    if any(skipped.values()):
        meta.append(("log lines skipped", ", ".join(f"{k}: {len(v)}" for k, v in skipped.items())))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{_e(result.model_name)}: monitoring</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(result.model_name)} v{_e(result.model_version)}: monitoring "
        f"{_badge(result.decision)}</h1>",
        '<table class="meta">',
        *(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in meta),
        "</table>",
        f"<h2>Drift and data quality {_badge(d.status)}</h2><p>{_e(d.message)}</p>",
    ]
    if d.features:
        parts.append(
            '<table class="t"><tr><th>feature</th><th>kind</th><th>status</th>'
            '<th class="num">PSI</th><th>test</th><th class="num">p-value</th>'
            '<th class="num">missing</th><th class="num">missing (train)</th>'
            '<th class="num">out of range / unseen</th><th class="num">mean</th>'
            '<th class="num">mean (train)</th><th>why</th></tr>'
        )
        for f in d.features:
            parts.append(
                f'<tr class="{_e(f.status)}"><td>{_e(f.feature)}</td><td>{_e(f.kind)}</td>'
                f"<td>{_badge(f.status)}</td><td class='num'>{_num(f.psi)}</td>"
                f"<td>{_e(f.test)}</td><td class='num'>{_num(f.pvalue, '.2g')}</td>"
                f"<td class='num'>{_num(f.missing_rate, '.2%')}</td>"
                f"<td class='num'>{_num(f.reference_missing_rate, '.2%')}</td>"
                f"<td class='num'>{_num(f.out_of_range_rate, '.2%')}</td>"
                f"<td class='num'>{_num(f.mean, '.4g')}</td>"
                f"<td class='num'>{_num(f.reference_mean, '.4g')}</td>"
                f"<td>{_e('; '.join(f.reasons))}</td></tr>"
            )
        parts.append("</table>")
    parts.append(f"<h2>Live performance {_badge(p.status)}</h2><p>{_e(p.message)}</p>")
    if p.metrics:
        parts.append(
            '<table class="t"><tr><th>metric</th><th class="num">live</th>'
            '<th class="num">holdout</th></tr>'
        )
        for key, value in p.metrics.items():
            fmt = ".0f" if key == "rows" else ".4f"
            parts.append(
                f"<tr><td>{_e(key)}</td><td class='num'>{_num(value, fmt)}</td>"
                f"<td class='num'>{_num(p.holdout.get(key), fmt)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
