"""The HTML of each page, from the dicts the data modules return (the JSON twins serve the
same dicts). Every value passes through `markup`, so it is text, never markup."""

from __future__ import annotations

from typing import Any

from components.dashboard import charts
from components.dashboard.graph import Graph, render
from components.dashboard.layout import badge, card, empty, table_card, table_or_empty
from components.dashboard.markup import Safe, compact_json, el, link, path, table, text
from components.dashboard.markup import facts as facts_table

PREFERRED_METRICS = ("roc_auc", "pr_auc", "f1", "brier", "log_loss", "ece")


def _errors(errors: list[str]) -> list[Safe]:
    return [el("p", e, class_="error") for e in errors]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _when(value: Any) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM:SS` (UTC)."""
    return str(value)[:19].replace("T", " ") if value else "—"


def _at(value: Any) -> Safe:
    """`_when` in a cell that does not wrap."""
    return el("span", _when(value), class_="when")


def _links(items: list[dict[str, str]]) -> list[Safe]:
    return [el("span", link(i["href"], i["label"]), " ") for i in items]


def _metrics(holdout: dict[str, Any]) -> str:
    keys = [k for k in PREFERRED_METRICS if k in holdout] + sorted(
        k for k in holdout if k not in PREFERRED_METRICS
    )
    return ", ".join(f"{k} {text(holdout[k])}" for k in keys[:4]) or "—"


def _events_card(title: str, events: list[dict[str, Any]], none: str, class_: str) -> Safe:
    """Audit events in a card: seq, time, actor, action and details, one row each."""
    rows = [
        [
            e.get("seq"),
            _at(e.get("time")),
            e.get("actor"),
            badge(e.get("action")),
            el("span", compact_json(e.get("details")), class_="mono"),
        ]
        for e in events
    ]
    return table_card(
        title, ["seq", "time (UTC)", "actor", "action", "details"], rows, none, class_=class_
    )


def _model_link(name: str, version: Any) -> Safe:
    return link(path("models", name, version), f"v{version}")


def _data_link(sha: str | None) -> Safe | str:
    return link(path("data", sha), sha[:12]) if sha else "—"


# ----------------------------------------------------------------- overview


def overview(data: dict[str, Any]) -> Safe:
    models = data.get("models") or []
    rows = [
        [
            link(path("models", m["name"]), m["name"]),
            _model_link(m["name"], m["aliases"]["champion"])
            if m["aliases"].get("champion")
            else "none",
            _metrics(m.get("champion_holdout") or {}),
            m["aliases"].get("challenger") or "—",
            m["aliases"].get("previous_champion") or "—",
            link(path("monitoring") + "?model=" + _q(m["name"]), "monitoring"),
        ]
        for m in models
    ]
    parts: list[Any] = [_errors(data.get("errors") or [])]
    parts.append(
        table_card(
            "Models",
            ["model", "champion", "holdout", "challenger", "previous", ""],
            rows,
            "No registered model yet: run the training pipeline first.",
            class_="models",
        )
    )
    parts.append(card(el("h2", "Latest pipeline runs"), _runs_table(data.get("runs") or [])))
    parts.append(card(el("h2", "Latest datasets"), _datasets_table(data.get("datasets") or [])))
    return el("div", parts)


def _q(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


# ----------------------------------------------------------------- runs


def _runs_table(runs: list[dict[str, Any]]) -> Safe:
    if not runs:
        return empty("No pipeline run recorded yet (the audit trail and the step logs are empty).")
    rows = [
        [
            link("/runs#run-" + _q(r["id"]), r["id"]),
            r["pipeline"] or "—",
            _at(r["started"]),
            _duration(r["seconds"]),
            badge(r["status"]),
            r["outcome"] or "—",
        ]
        for r in runs
    ]
    return table(
        ["run", "pipeline", "started (UTC)", "duration", "status", "outcome"], rows, class_="runs"
    )


def runs_page(runs: list[dict[str, Any]], limit: int, errors: list[str]) -> Safe:
    parts: list[Any] = [_errors(errors)]
    parts.append(
        card(
            el(
                "p",
                f"The newest {limit} runs; ",
                link(f"/runs?limit={limit * 2}", "show more"),
                ".",
            ),
            _runs_table(runs),
        )
    )
    for r in runs:
        steps = [
            [
                s["name"],
                _at(s["started"]) if s["started"] else "—",
                _duration(s["seconds"]),
                badge(s["status"]),
                s["summary"] or "—",
                _links(s["links"]) or "—",
            ]
            for s in r["steps"]
        ]
        timing = (
            "step times from the step log"
            if r["timing"] == "log"
            else "step times from the audit trail (time since the previous step's entry)"
        )
        parts.append(
            card(
                el(
                    "h3",
                    f"{r['pipeline'] or 'run'} {r['id']} ",
                    badge(r["status"]),
                    id="run-" + r["id"],
                ),
                el(
                    "p",
                    f"Started {_when(r['started'])} UTC, {_duration(r['seconds'])}; {timing}.",
                    f" Log: {r['log']}." if r.get("log") else "",
                ),
                table_or_empty(
                    ["step", "started (UTC)", "duration", "status", "what it did", "links"],
                    steps,
                    "No step recorded.",
                    class_="steps",
                ),
                el("p", "Artifacts: ", _links(r["artifacts"])) if r["artifacts"] else None,
                class_="run",
            )
        )
    return el("div", parts)


# ----------------------------------------------------------------- data


def _datasets_table(datasets: list[dict[str, Any]]) -> Safe:
    if not datasets:
        return empty("No dataset snapshot yet: ingest some data first.")
    rows = [
        [
            link(path("data", d["sha256"]), d["sha256"][:16], class_="mono"),
            _at(d["ingested_at"]),
            el("span", text(d["rows"]), class_="num"),
            ", ".join(f"{n} {text(r)}" for n, r in d["tables"].items()) or "—",
            badge(d["validation"]) if d["validation"] else "not validated",
        ]
        for d in datasets
    ]
    return table(
        ["snapshot", "ingested (UTC)", "rows", "tables", "validation"], rows, class_="datasets"
    )


def data_list(datasets: list[dict[str, Any]], errors: list[str]) -> Safe:
    return el("div", _errors(errors), card(_datasets_table(datasets)))


def _top(col: dict[str, Any]) -> str:
    top = col.get("top") or []
    return ", ".join(f"{t.get('value')} ({text(t.get('count'))})" for t in top[:5])


def _profile(profile: dict[str, Any] | None, problem: str | None) -> Safe:
    if problem:
        return el("p", problem, class_="error")
    if profile is None:
        return empty("The snapshot's tables are not stored here, so no profile can be shown.")
    out: list[Any] = []
    for name, t in profile["tables"].items():
        rows = []
        for c in t["columns"]:
            hist = (c.get("histogram") or {}).get("counts") or []
            rows.append(
                [
                    el("span", c["name"], class_="colname"),
                    c.get("kind"),
                    el("span", text(c.get("nulls")), class_="num"),
                    f"{text(c.get('null_percent'))} %",
                    text(c.get("distinct")),
                    text(c.get("min")) if "min" in c else "—",
                    text(c.get("max")) if "max" in c else "—",
                    text(c.get("mean")) if "mean" in c else "—",
                    charts.sparkbars([int(x) for x in hist]) if hist else _top(c) or "—",
                    c.get("error") or "",
                ]
            )
        out.append(el("h3", f"{name}: {text(t['rows'])} rows"))
        out.append(
            table(
                [
                    "column",
                    "kind",
                    "nulls",
                    "null %",
                    "distinct",
                    "min",
                    "max",
                    "mean",
                    "distribution / top values",
                    "",
                ],
                rows,
                class_="profile",
                data_table=name,
            )
        )
    return el("div", out)


def data_detail(d: dict[str, Any], profile: dict[str, Any] | None, problem: str | None) -> Safe:
    sha = d["sha256"]
    facts = [
        ["sha256", el("span", sha, class_="mono")],
        ["ingested (UTC)", _when(d["ingested_at"])],
        ["rows", text(d["rows"])],
        ["validation", badge(d["validation"]) if d["validation"] else "not validated"],
        ["stored here", d["stored"]],
        ["pipeline runs", ", ".join(d["pipeline_runs"]) or "—"],
    ]
    tables = [
        [
            n,
            text(r),
            el("span", str((d.get("table_hashes") or {}).get(n) or "—")[:16], class_="mono"),
            (d["sources"].get(n) or {}).get("source") or "—",
            (d["sources"].get(n) or {}).get("source_kind") or "—",
        ]
        for n, r in d["tables"].items()
    ]
    validations = [
        [
            _at(v["time"]),
            v["actor"],
            badge(v["decision"]),
            link(path("data", sha, "reports", v["report"]), "report")
            if v["report"] and v["report"] in d["reports"]
            else "—",
            v["pipeline_run_id"] or "—",
        ]
        for v in d["validations"]
    ]
    return el(
        "div",
        card(facts_table(facts, class_="facts")),
        card(
            el("h2", "Tables"),
            table(["table", "rows", "content sha256", "source", "kind"], tables, class_="tables"),
        ),
        table_card(
            "Validation",
            ["time (UTC)", "actor", "verdict", "report", "pipeline run"],
            validations,
            "No validation recorded for this snapshot.",
            class_="validations",
        ),
        card(el("h2", "Per-column profile"), _profile(profile, problem)),
    )


# ----------------------------------------------------------------- models


def models_list(models: list[dict[str, Any]], errors: list[str]) -> Safe:
    rows = [
        [
            link(path("models", m["name"]), m["name"]),
            ", ".join(f"{a}: v{v}" for a, v in m["aliases"].items()) or "—",
            m["latest_version"] or "—",
            _when(m["updated"]),
        ]
        for m in models
    ]
    body = table_or_empty(
        ["model", "aliases", "latest version", "updated (UTC)"],
        rows,
        "No registered model yet: run the training pipeline first.",
        class_="models",
    )
    return el("div", _errors(errors), card(body))


def _gate(gate: dict[str, Any] | None) -> Any:
    if gate is None:
        return "—"
    verdict = badge("promoted" if gate["promoted"] else "rejected")
    numbers: list[Any] = []
    if gate.get("metric") and gate.get("challenger") is not None:
        champ = (
            f"champion v{gate['champion_version']} {text(gate['champion'])}"
            if gate.get("champion") is not None
            else "no champion to beat"
        )
        numbers = [
            el(
                "span",
                f"{gate['metric']}: challenger {text(gate['challenger'])} vs {champ}",
                class_="gate-numbers",
                data_challenger=repr(gate["challenger"]),
                data_champion=repr(gate["champion"]) if gate.get("champion") is not None else None,
            )
        ]
    return el("div", verdict, " ", numbers, el("div", gate.get("reason") or "", class_="reason"))


def _moves_table(moves: list[dict[str, Any]]) -> Safe:
    if not moves:
        return empty("No promotion or rollback recorded in the audit trail.")
    rows = [
        [
            _at(m["time"]),
            m["actor"],
            badge(m["action"]),
            f"{'v' + str(m['from_version']) if m['from_version'] else 'none'} → v{m['to_version']}",
            el("span", m["reason"] or "—", class_="reason"),
        ]
        for m in moves
    ]
    return table(["time (UTC)", "who", "what", "champion", "why"], rows, class_="moves")


def model_page(m: dict[str, Any], errors: list[str]) -> Safe:
    name = m["name"]
    aliases = [
        el("li", f"{a}: ", _model_link(name, v) if v else "—", class_=f"alias alias-{a}")
        for a, v in m["aliases"].items()
    ]
    rows = [
        [
            _model_link(name, v["version"]),
            _at(v["created"]),
            ", ".join(v["aliases"]) or "—",
            _metrics(v["holdout"]),
            _gate(v["gate"]),
            badge(v["validation"]) if v["validation"] else "—",
            _data_link(v["data_sha256"]),
            link(path("lineage", "model", name, v["version"]), "lineage"),
        ]
        for v in m["versions"]
    ]
    return el(
        "div",
        _errors(errors),
        card(
            el("h2", "Aliases"),
            el("ul", aliases, class_="aliases"),
            el("p", link(path("monitoring") + "?model=" + _q(name), "Monitoring of this model")),
        ),
        table_card(
            "Versions (newest first)",
            [
                "version",
                "created (UTC)",
                "aliases",
                "holdout",
                "gate decision",
                "validation",
                "data",
                "",
            ],
            rows,
            "This model has no version.",
            class_="versions",
        ),
        card(el("h2", "Who moved the champion, and why"), _moves_table(m["moves"])),
    )


def version_page(v: dict[str, Any]) -> Safe:
    name, version = v["name"], v["version"]
    facts = [
        ["aliases", ", ".join(v["aliases"]) or "none"],
        ["created (UTC)", _when(v["created"])],
        ["holdout metrics", _metrics(v["holdout"])],
        ["gate decision", _gate(v["gate"])],
        ["validation of its data", badge(v["validation"]) if v["validation"] else "—"],
        ["data", _data_link(v["data_sha256"])],
        ["training run", el("span", v["train_run_id"] or "—", class_="mono")],
        [
            "pipeline run",
            link("/runs#run-" + _q(v["pipeline_run_id"]), v["pipeline_run_id"])
            if v["pipeline_run_id"]
            else "—",
        ],
        ["lineage", link(path("lineage", "model", name, version), "graph")],
    ]
    holdout = [[k, el("span", text(val), class_="num")] for k, val in sorted(v["holdout"].items())]
    return el(
        "div",
        card(facts_table(facts, class_="facts")),
        table_card(
            "Holdout metrics",
            ["metric", "value"],
            holdout,
            "No holdout metric recorded.",
            class_="holdout",
        ),
        card(el("h2", "Who moved the champion, and why"), _moves_table(v["moves"])),
        _events_card(
            "Audit events of this version",
            v["events"],
            "No audit event names this version.",
            class_="events",
        ),
    )


# ----------------------------------------------------------------- monitoring


def monitoring_page(data: dict[str, Any]) -> Safe:
    name = data.get("model")
    choices = [
        link(path("monitoring") + "?model=" + _q(n), n, class_="active" if n == name else None)
        for n in data.get("models") or []
    ]
    parts: list[Any] = [_errors(data.get("errors") or [])]
    if choices:
        parts.append(el("nav", "Model: ", choices, class_="pages"))
    if name is None:
        parts.append(card(empty("No registered model yet, so nothing is monitored.")))
        return el("div", parts)
    runs = data.get("runs") or []
    labels = [f"{_when(r['time'])[5:16]} v{r['version']}" for r in runs]
    report_links = [path("monitoring", r["run_id"], "report") for r in runs]
    if runs:
        features = data["features"]
        cells = {
            (f, j): charts.Cell(r["psi"].get(f), r["status"].get(f, "ok"))
            for j, r in enumerate(runs)
            for f in features
            if f in r["psi"]
        }
        heat = charts.heatmap(features, labels, cells, column_links=report_links)
        parts.append(
            card(
                el("h2", "Drift per feature (PSI) across monitoring runs"),
                el(
                    "p",
                    "Colour: the run's verdict for the feature (ok, warn, drift); click a "
                    "run for its report.",
                ),
                heat,
            )
        )
    else:
        parts.append(
            card(
                el("h2", "Drift per feature (PSI)"),
                empty(
                    f"No monitoring run of {name} yet: run `seamless monitor run` or the "
                    "monitoring pipeline."
                ),
            )
        )
    perf = data.get("performance") or {}
    if perf:
        blocks = []
        for metric, series in perf.items():
            chart = charts.line_chart(
                labels,
                [
                    charts.Series(
                        "live " + metric,
                        series["live"],
                        css_class="live",
                        notes=[f", v{r['version']}" for r in runs],
                    ),
                    charts.Series(
                        "holdout " + metric, series["holdout"], dashed=True, css_class="holdout"
                    ),
                ],
                y_label=metric,
                css_class=f"linechart metric-{metric}",
                x_links=report_links,
            )
            blocks.append(el("div", el("h3", metric), chart))
        parts.append(
            card(el("h2", "Live performance vs holdout"), el("div", blocks, class_="charts"))
        )
    elif runs:
        parts.append(
            card(
                el("h2", "Live performance vs holdout"),
                empty("No run had enough labelled predictions to measure live performance."),
            )
        )
    traffic = data.get("traffic")
    if traffic is not None and traffic["records"]:
        span, bars = volume_bars(traffic["per_hour"])
        volume = charts.bar_chart(
            list(bars),
            list(bars.values()),
            css_class=f"barchart volume per-{span}",
            unit=" predictions",
        )
        edges = traffic["bin_edges"]
        bins = [f"{edges[i]:.1f}–{edges[i + 1]:.1f}" for i in range(len(edges) - 1)]
        scores = charts.bar_chart(
            bins, traffic["score_bins"], css_class="barchart scores", unit=" predictions"
        )
        scope = (
            "all records"
            if traffic["complete"]
            else f"the newest {text(traffic['records'])} records"
        )
        versions = ", ".join(f"v{k}: {text(v)}" for k, v in traffic["per_version"].items())
        parts.append(
            card(
                el("h2", "Prediction volume and scores"),
                el(
                    "p",
                    f"{text(traffic['records'])} predictions of {name} ({scope}), "
                    f"{_when(traffic['first_ts'])} to {_when(traffic['last_ts'])} UTC; by "
                    f"version: {versions}.",
                ),
                el(
                    "div",
                    el("div", el("h3", f"Predictions per {span} (UTC)"), volume),
                    el("div", el("h3", "Score distribution"), scores),
                    class_="charts",
                ),
            )
        )
    elif traffic is not None:
        parts.append(
            card(
                el("h2", "Prediction volume and scores"),
                empty(f"No prediction of {name} in the prediction log yet."),
            )
        )
    if runs:
        rows = [
            [
                link(path("monitoring", r["run_id"], "report"), _when(r["time"])),
                _model_link(name, r["version"]) if r["version"] else "—",
                badge(r["decision"]),
                badge(r["drift_status"]),
                text(r["window_rows"]),
                text(r["live"].get("roc_auc")),
                r["reason"][:300],
            ]
            for r in reversed(runs)
        ]
        parts.append(
            card(
                el("h2", "Monitoring runs (newest first)"),
                table(
                    [
                        "run (report)",
                        "version",
                        "decision",
                        "drift",
                        "window rows",
                        "live roc_auc",
                        "reason",
                    ],
                    rows,
                    class_="monitoring-runs",
                ),
            )
        )
    return el("div", parts)


def volume_bars(per_hour: dict[str, int]) -> tuple[str, dict[str, int]]:
    """("hour" or "day", bucket -> count): hours over three days at most, empty hours
    included; else days, empty days included over 90 days at most."""
    from datetime import datetime, timedelta

    if not per_hour:
        return "hour", {}
    hours = {datetime.strptime(k, "%Y-%m-%dT%H"): n for k, n in per_hour.items()}
    first, last = min(hours), max(hours)
    if last - first <= timedelta(hours=72):
        out = {}
        t = first
        while t <= last:
            out[t.strftime("%Y-%m-%dT%H")] = hours.get(t, 0)
            t += timedelta(hours=1)
        return "hour", out
    days: dict[str, int] = {}
    for t, n in hours.items():
        days[t.strftime("%Y-%m-%d")] = days.get(t.strftime("%Y-%m-%d"), 0) + n
    if last - first <= timedelta(days=90):
        d = first.replace(hour=0)
        while d <= last:
            days.setdefault(d.strftime("%Y-%m-%d"), 0)
            d += timedelta(days=1)
    return "day", dict(sorted(days.items()))


# ----------------------------------------------------------------- lineage


def lineage_index(errors: list[str]) -> Safe:
    form = el(
        "form",
        el("label", "Request id ", el("input", type="text", name="request", required=True)),
        " ",
        el("button", "Show its lineage", type="submit"),
        method="get",
        action="/lineage",
    )
    return el(
        "div",
        _errors(errors),
        card(
            el(
                "p",
                "The lineage of a model version: open it from ",
                link("/models", "Models"),
                ". The lineage of one prediction:",
            ),
            form,
        ),
    )


def lineage_page(chain: dict[str, Any], graph: Graph) -> Safe:
    gaps = [el("li", g) for g in chain.get("gaps") or []]
    req = chain.get("request")
    answered = None
    if req:
        answered = card(
            el("h2", "What the request was answered"),
            table(
                ["entity", "score", "decision"],
                [
                    [e, text(s), d]
                    for e, s, d in zip(
                        req["entity_ids"], req["scores"], req["decisions"], strict=False
                    )
                ],
                class_="answered",
            ),
        )
    return el(
        "div",
        card(render(graph)),
        answered,
        card(el("h2", "Gaps"), el("ul", gaps)) if gaps else None,
        _events_card(
            "Decisions about this version",
            chain.get("decisions") or [],
            "None recorded.",
            class_="decisions",
        ),
    )


# ----------------------------------------------------------------- audit


def audit_page(data: dict[str, Any]) -> Safe:
    v = data["verify"]
    state = card(
        el("h2", "Verification ", badge(v["status"]), class_="verify"),
        el("p", v["message"], class_="verify-message", data_status=v["status"]),
    )
    rows = []
    for e in data["entries"]:
        subject = str(e.get("subject") or "")
        shown: Any = subject
        if subject.startswith("model:") and "/" in subject:
            name, _, version = subject.removeprefix("model:").rpartition("/")
            if version.isdigit():
                shown = link(path("models", name, version), subject)
        elif subject.startswith("dataset:"):
            shown = link(path("data", subject.removeprefix("dataset:")), subject[:20] + "…")
        rows.append(
            [
                e.get("seq"),
                _at(e.get("time")),
                e.get("actor"),
                badge(e.get("action")),
                shown,
                el("span", compact_json(e.get("details")), class_="mono"),
            ]
        )
    page, pages = data["page"], data["pages"]
    nav = el(
        "nav",
        link(f"/audit?page={page - 1}", "← newer") if page > 1 else None,
        f" page {page} of {pages} ({text(data['total'])} entries) ",
        link(f"/audit?page={page + 1}", "older →") if page < pages else None,
        class_="pages",
    )
    body = table_or_empty(
        ["seq", "time (UTC)", "actor", "action", "subject", "details"],
        rows,
        "The audit trail is empty.",
        class_="audit",
    )
    return el("div", state, card(nav, body))


def login_page(next_path: str, problem: str | None) -> Safe:
    form = el(
        "form",
        el("input", type="hidden", name="next", value=next_path),
        el(
            "label",
            "Token ",
            el("input", type="password", name="token", autocomplete="off", required=True),
        ),
        " ",
        el("button", "Sign in", type="submit"),
        method="post",
        action="/login",
    )
    return el(
        "div",
        el("p", problem, class_="error") if problem else None,
        card(
            el(
                "p",
                "Sign in with a serving token (role predict or admin) or an OIDC "
                "token; the browser then keeps a session cookie, not the token.",
            ),
            form,
        ),
    )
