"""Charts as inline SVG, drawn on the server: a heat map, a line chart, a bar chart.

No script, no external font or stylesheet: colours are SVG presentation attributes
(allowed by the page's Content-Security-Policy, unlike inline `style`), every label
goes through `markup.esc`, and each mark carries its value in `data-*` attributes and a
`<title>` tooltip, so tests and people read the same numbers the chart shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from components.dashboard.markup import Safe, el, svg, text

# Status -> cell colour (drift.py's statuses); light enough for dark text on top.
STATUS_FILL = {
    "ok": "#cde8d4",
    "warn": "#f7dc8b",
    "drift": "#f2a09a",
    "not_enough_data": "#dfe3e8",
}
MISSING_FILL = "#ffffff"
SERIES_STROKE = ("#1f6feb", "#8250df", "#bf3989", "#1a7f37", "#9a6700")


def _short(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass
class Cell:
    value: float | None
    status: str = "ok"
    note: str = ""


def heatmap(
    rows: list[str],
    columns: list[str],
    cells: dict[tuple[str, int], Cell],
    *,
    column_links: Sequence[str | None] | None = None,
    css_class: str = "heatmap",
) -> Safe:
    """Rows x columns of coloured cells (colour: the cell's status), value written in it;
    `cells` is keyed by (row, column index): two columns may carry the same label."""
    label_w, cell_w, cell_h, head_h = 170, 58, 22, 96
    width = label_w + cell_w * len(columns) + 110  # room for the last slanted label
    height = head_h + cell_h * len(rows) + 10
    parts: list[Safe] = []
    for j, name in enumerate(columns):
        x = label_w + j * cell_w + cell_w / 2
        label = el(
            "text",
            _short(name, 18),
            el("title", name),
            x=f"{x:.1f}",
            y=str(head_h - 6),
            text_anchor="start",
            transform=f"rotate(-60 {x:.1f} {head_h - 6})",
            class_="col-label",
        )
        href = (column_links or [None] * len(columns))[j]
        parts.append(el("a", label, href=href) if href else label)
    for i, row in enumerate(rows):
        y = head_h + i * cell_h
        parts.append(
            el(
                "text",
                _short(row, 24),
                el("title", row),
                x=str(label_w - 6),
                y=f"{y + cell_h * 0.7:.1f}",
                text_anchor="end",
                class_="row-label",
            )
        )
        for j, col in enumerate(columns):
            cell = cells.get((row, j))
            x = label_w + j * cell_w
            if cell is None or cell.value is None:
                parts.append(
                    el(
                        "rect",
                        el("title", f"{row}, {col}: not measured"),
                        x=str(x),
                        y=str(y),
                        width=str(cell_w - 2),
                        height=str(cell_h - 2),
                        fill=MISSING_FILL,
                        stroke="#d0d7de",
                        class_="cell empty",
                    )
                )
                continue
            fill = STATUS_FILL.get(cell.status, STATUS_FILL["ok"])
            tip = f"{row}, {col}: PSI {text(cell.value)} ({cell.status}){cell.note}"
            parts.append(
                el(
                    "rect",
                    el("title", tip),
                    x=str(x),
                    y=str(y),
                    width=str(cell_w - 2),
                    height=str(cell_h - 2),
                    fill=fill,
                    class_=f"cell status-{cell.status}",
                    data_row=row,
                    data_column=col,
                    data_value=repr(float(cell.value)),
                    data_status=cell.status,
                )
            )
            parts.append(
                el(
                    "text",
                    f"{cell.value:.3f}",
                    x=f"{x + (cell_w - 2) / 2:.1f}",
                    y=f"{y + cell_h * 0.68:.1f}",
                    text_anchor="middle",
                    class_="cell-value",
                )
            )
    return svg(parts, css_class, width, height)


@dataclass
class Series:
    name: str
    values: list[float | None]
    dashed: bool = False
    points: bool = True
    css_class: str = ""
    notes: list[str] = field(default_factory=list)
    """Per point, added to its tooltip."""


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(low / step) * step
    out = []
    v = first
    while v <= high + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def line_chart(
    x_labels: list[str],
    series: list[Series],
    *,
    y_label: str = "",
    css_class: str = "linechart",
    x_links: Sequence[str | None] | None = None,
) -> Safe:
    """One line per series over the same x positions; a None value breaks the line."""
    width, height = 640, 260
    left, right, top, bottom = 56, 150, 14, 58
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not values or not x_labels:
        return el("p", "Nothing to draw yet.", class_="empty")
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 0.05
    low, high = low - pad, high + pad
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(x_labels)

    def px(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts: list[Safe] = []
    for tick in _ticks(low, high):
        y = py(tick)
        parts.append(
            el(
                "line",
                x1=str(left),
                x2=str(left + plot_w),
                y1=f"{y:.1f}",
                y2=f"{y:.1f}",
                stroke="#eaeef2",
                class_="grid",
            )
        )
        parts.append(
            el(
                "text",
                f"{tick:g}",
                x=str(left - 6),
                y=f"{y + 4:.1f}",
                text_anchor="end",
                class_="tick",
            )
        )
    step = max(1, math.ceil(n / 12))
    for i, label in enumerate(x_labels):
        if i % step:
            continue
        x = px(i)
        mark = el(
            "text",
            _short(label, 16),
            el("title", label),
            x=f"{x:.1f}",
            y=str(top + plot_h + 14),
            text_anchor="end",
            transform=f"rotate(-30 {x:.1f} {top + plot_h + 14})",
            class_="tick",
        )
        href = (x_links or [None] * n)[i]
        parts.append(el("a", mark, href=href) if href else mark)
    parts.append(
        el("line", x1=str(left), x2=str(left), y1=str(top), y2=str(top + plot_h), stroke="#57606a")
    )
    if y_label:
        parts.append(
            el(
                "text",
                y_label,
                x="12",
                y=str(top + plot_h / 2),
                text_anchor="middle",
                transform=f"rotate(-90 12 {top + plot_h / 2})",
                class_="axis-label",
            )
        )
    for k, s in enumerate(series):
        colour = SERIES_STROKE[k % len(SERIES_STROKE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v):
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{px(i):.1f},{py(v):.1f}")
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(
                el(
                    "polyline",
                    points=" ".join(seg),
                    fill="none",
                    stroke=colour,
                    stroke_width="2",
                    stroke_dasharray="6 4" if s.dashed else None,
                    class_=f"line {s.css_class}".strip(),
                )
            )
        if s.points:
            for i, v in enumerate(s.values):
                if v is None or not math.isfinite(v):
                    continue
                note = s.notes[i] if i < len(s.notes) else ""
                parts.append(
                    el(
                        "circle",
                        el("title", f"{s.name} at {x_labels[i]}: {text(v)}{note}"),
                        cx=f"{px(i):.1f}",
                        cy=f"{py(v):.1f}",
                        r="4",
                        fill=colour,
                        class_=f"point {s.css_class}".strip(),
                        data_series=s.name,
                        data_value=repr(float(v)),
                    )
                )
        ly = top + 14 + k * 18
        parts.append(
            el(
                "line",
                x1=str(width - right + 12),
                x2=str(width - right + 34),
                y1=str(ly - 4),
                y2=str(ly - 4),
                stroke=colour,
                stroke_width="2",
                stroke_dasharray="6 4" if s.dashed else None,
            )
        )
        parts.append(
            el("text", _short(s.name, 18), x=str(width - right + 40), y=str(ly), class_="legend")
        )
    return svg(parts, css_class, width, height)


def bar_chart(
    labels: list[str], counts: list[int], *, css_class: str = "barchart", unit: str = ""
) -> Safe:
    """Vertical bars, one per label, with the count on top."""
    if not labels:
        return el("p", "Nothing to draw yet.", class_="empty")
    width, height = 640, 220
    left, right, top, bottom = 48, 10, 18, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(counts) or 1
    bar_w = plot_w / len(labels)
    step = max(1, math.ceil(len(labels) / 16))
    parts: list[Safe] = [
        el(
            "line",
            x1=str(left),
            x2=str(left + plot_w),
            y1=str(top + plot_h),
            y2=str(top + plot_h),
            stroke="#57606a",
        )
    ]
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        h = plot_h * count / peak
        x = left + i * bar_w
        parts.append(
            el(
                "rect",
                el("title", f"{label}: {count}{unit}"),
                x=f"{x + 1:.1f}",
                y=f"{top + plot_h - h:.1f}",
                width=f"{max(bar_w - 2, 1):.1f}",
                height=f"{h:.1f}",
                fill="#54aeff",
                class_="bar",
                data_label=label,
                data_count=str(count),
            )
        )
        if len(labels) <= 24 and count:
            parts.append(
                el(
                    "text",
                    text(count),
                    x=f"{x + bar_w / 2:.1f}",
                    y=f"{top + plot_h - h - 4:.1f}",
                    text_anchor="middle",
                    class_="tick",
                )
            )
        if i % step == 0:
            lx = x + bar_w / 2
            parts.append(
                el(
                    "text",
                    _short(label, 16),
                    x=f"{lx:.1f}",
                    y=str(top + plot_h + 14),
                    text_anchor="end",
                    transform=f"rotate(-30 {lx:.1f} {top + plot_h + 14})",
                    class_="tick",
                )
            )
    return svg(parts, css_class, width, height)


def sparkbars(counts: list[int], *, width: int = 120, height: int = 26) -> Safe:
    """A tiny histogram for a table cell (a column's distribution)."""
    if not counts:
        return Safe("")
    peak = max(counts) or 1
    bar_w = width / len(counts)
    bars = [
        el(
            "rect",
            x=f"{i * bar_w:.1f}",
            y=f"{height - height * c / peak:.1f}",
            width=f"{max(bar_w - 0.5, 0.5):.1f}",
            height=f"{height * c / peak:.1f}",
            fill="#54aeff",
            class_="spark-bar",
        )
        for i, c in enumerate(counts)
    ]
    return svg(bars, "spark", width, height)
