"""HTML built from escaped parts: every value is text unless it is already `Safe`.

Pages are assembled with `el(tag, *children, **attrs)`; children and attribute values
that are not `Safe` are escaped (quotes included), so data from the stores (model
names, reasons, actors, column values) can never become markup. Only this module and
the SVG helpers create `Safe` strings.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

# Elements without a closing tag.
_VOID = frozenset({"br", "hr", "img", "input", "link", "meta"})


class Safe(str):
    """Markup that was built here: inserted as is."""

    __slots__ = ()


def text(value: Any) -> str:
    """How a value reads on a page: numbers short, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


def esc(value: Any) -> Safe:
    """`value` as HTML text (already `Safe` markup passes through)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(text(value), quote=True))


def _attr(name: str, value: Any) -> str:
    key = name.rstrip("_").replace("_", "-")
    if value is True:
        return f" {key}"
    return f' {key}="{html.escape(str(value), quote=True)}"'


def el(tag: str, *children: Any, **attrs: Any) -> Safe:
    """`<tag attrs>children</tag>`; attrs `class_`, `data_x` become `class`, `data-x`;
    None and False attrs are left out; list children are joined."""
    parts = "".join(_attr(k, v) for k, v in attrs.items() if v is not None and v is not False)
    if tag in _VOID:
        return Safe(f"<{tag}{parts}>")
    return Safe(f"<{tag}{parts}>{join(children)}</{tag}>")


def svg(parts: list[Any], css_class: str, width: float, height: float) -> Safe:
    """An inline SVG image of `parts`, scaled by its viewBox."""
    return el(
        "svg",
        parts,
        class_=css_class,
        width=str(width),
        height=str(height),
        viewBox=f"0 0 {width} {height}",
        role="img",
    )


def join(children: Iterable[Any]) -> Safe:
    out = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, (list, tuple)):
            out.append(join(child))
        else:
            out.append(esc(child))
    return Safe("".join(out))


def link(href: str, *children: Any, **attrs: Any) -> Safe:
    return el("a", *children, href=href, **attrs)


def path(*segments: Any) -> str:
    """A local URL path from segments, each percent-encoded (a name with `/` or `?` stays
    one segment)."""
    return "/" + "/".join(quote(str(s), safe="") for s in segments)


def table(headers: list[Any], rows: Iterable[list[Any]], **attrs: Any) -> Safe:
    head = el("tr", [el("th", h) for h in headers])
    body = [el("tr", [el("td", c) for c in row]) for row in rows]
    return el("table", el("thead", head), el("tbody", body), **attrs)


def facts(rows: Iterable[list[Any]], **attrs: Any) -> Safe:
    """A two-column table of name -> value, names as row headers."""
    body = [el("tr", el("th", name, scope="row"), el("td", value)) for name, value in rows]
    return el("table", el("tbody", body), **attrs)


def compact_json(value: Any, limit: int = 400) -> str:
    """One line of JSON, cut at `limit` characters (shown escaped by the caller)."""
    out = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return out if len(out) <= limit else out[: limit - 1] + "…"
