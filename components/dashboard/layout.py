"""The page shell: header, navigation, the stylesheet (served as `/static/dashboard.css`,
so the Content-Security-Policy needs no inline styles), and the response headers."""

from __future__ import annotations

from typing import Any

from components.dashboard.markup import Safe, el, esc, link, table

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""Pages: no script at all, styles from this server only, nothing from elsewhere."""
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
"""Stored reports (our one-file HTML with its own <style>): sandboxed, never scripted."""
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

NAV = (
    ("overview", "/", "Overview"),
    ("runs", "/runs", "Pipeline runs"),
    ("data", "/data", "Data"),
    ("models", "/models", "Models"),
    ("monitoring", "/monitoring", "Monitoring"),
    ("lineage", "/lineage", "Lineage"),
    ("audit", "/audit", "Audit trail"),
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
header{background:#24292f;color:#fff;padding:8px 20px;display:flex;gap:18px;align-items:center;
flex-wrap:wrap}
header .brand{font-weight:600;margin-right:12px}
header a{color:#d0d7de;text-decoration:none}
header a.active,header a:hover{color:#fff;text-decoration:underline}
header form{margin-left:auto}
header .who{color:#8c959f;font-size:12px}
main{padding:16px 20px;max-width:1400px}
h1{font-size:22px;margin:4px 0 12px}
h2{font-size:17px;margin:22px 0 8px}
h3{font-size:15px;margin:16px 0 6px}
section.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;
margin:12px 0;overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.empty{color:#57606a;font-style:italic}
.error{color:#cf222e}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;
border:1px solid #d0d7de;background:#f6f8fa}
.ok,.pass,.succeeded,.promoted{background:#dafbe1;border-color:#4ac26b}
.warn,.warning{background:#fff8c5;border-color:#d4a72c}
.fail,.failed,.drift,.tampered,.torn_tail,.anchor_mismatch,.rejected,.retrain{
background:#ffebe9;border-color:#ff8182}
.running,.unfinished{background:#ddf4ff;border-color:#54aeff}
.steps{margin:4px 0 0 0}
nav.pages a{margin-right:10px}
svg text{font:11px system-ui,sans-serif;fill:#1f2328}
svg .cell-value{font-size:10px}
svg .node-title{font-weight:600;font-size:12px}
svg .legend{font-size:12px}
svg a text{fill:#0969da}
.charts{display:flex;flex-wrap:wrap;gap:16px}
form.inline{display:inline}
.when{white-space:nowrap}
svg.lineage{max-width:100%;height:auto}
table.facts th{text-align:left;min-width:10em}
input[type=text],input[type=password]{font:inherit;padding:4px 6px;width:28em}
button{font:inherit;padding:3px 10px}
""".strip()


def badge(value: Any) -> Safe:
    return el("span", value, class_=f"badge {str(value or '').lower()}")


def card(*children: Any, class_: str = "", **attrs: Any) -> Safe:
    return el("section", *children, class_=f"card {class_}".strip(), **attrs)


def empty(sentence: str) -> Safe:
    return el("p", sentence, class_="empty")


def table_or_empty(headers: list[Any], rows: list[list[Any]], none: str, **attrs: Any) -> Safe:
    """A table of `rows`, or the sentence `none` where there is no row."""
    return table(headers, rows, **attrs) if rows else empty(none)


def table_card(
    title: str, headers: list[Any], rows: list[list[Any]], none: str, **attrs: Any
) -> Safe:
    """A card headed `title` holding `table_or_empty(headers, rows, none, **attrs)`."""
    return card(el("h2", title), table_or_empty(headers, rows, none, **attrs))


def page(
    title: str, body: Any, *, active: str = "", who: Any = None, signed_in: bool = False
) -> str:
    nav = [
        link(href, label, class_="active" if key == active else None) for key, href, label in NAV
    ]
    right: list[Any] = []
    if who is not None:
        right.append(el("span", f"{who.actor} ({who.role})", class_="who"))
    if signed_in:
        right.append(
            el(
                "form",
                el("button", "Sign out", type="submit"),
                method="post",
                action="/logout",
                class_="inline",
            )
        )
    head = el(
        "head",
        el("meta", charset="utf-8"),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", f"{title} · Seamless"),
        el("link", rel="stylesheet", href="/static/dashboard.css"),
    )
    header = el("header", el("span", "Seamless", class_="brand"), nav, right)
    return "<!doctype html>\n" + el(
        "html", head, el("body", header, el("main", el("h1", title), body)), lang="en"
    )


def message_page(title: str, sentence: str, *extra: Any) -> str:
    return page(title, card(el("p", esc(sentence)), *extra))
