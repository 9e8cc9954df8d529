"""The model card of a registered version: one JSON document, and Markdown rendered from it.

Built by the register step from what the pipeline knows (the version's lineage, the
evaluation record, the compliance result) and what only people know (config
`model_card:` intended use, limitations, owners). Logged on the version's training run
as `model_card/v<version>/model_card.json` and `.../model_card.md` (the version's tag
`seamless.model_card` points there) and written as the register step's KFP `Markdown`
output, which the KFP UI renders. A manual promotion appends to its approval trail.

The Markdown is rendered from the JSON, so the two cannot disagree. Every string that
comes from outside (config, data sources, reasons) is escaped for Markdown and HTML:
the KFP UI renders Markdown with inline HTML, and a config value must not become markup.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.labels import mapped_onto_positive

SCHEMA = "seamless.model_card/1"
ARTIFACT_DIR = "model_card"
JSON_FILE = "model_card.json"
MARKDOWN_FILE = "model_card.md"
TAG = "seamless.model_card"
"""Version tag: `runs:/<run id>/model_card/v<version>`, where both files are."""

# Markdown punctuation that can start emphasis, code, links, tables or strikethrough
# anywhere in a line; `<`, `>` and `&` are HTML-escaped instead.
_INLINE = re.compile(r"([\\`*_\[\]|~!])")
# What turns a line into a heading, list item or rule when it starts it (a quote's `>`
# is HTML-escaped already).
_ORDERED = re.compile(r"^(\d+)([.)])")
_BLOCK = re.compile(r"^([#+=-])")


def md(text: Any) -> str:
    """`text` as literal Markdown inline content: no markup, no HTML, one line. Not for
    code spans, where escapes are shown as typed."""
    one_line = " ".join(str(text).split())
    escaped = html.escape(_INLINE.sub(r"\\\1", one_line), quote=True)
    escaped = _ORDERED.sub(r"\1\\\2", escaped)
    return _BLOCK.sub(r"\\\1", escaped)


def md_paragraphs(text: str) -> str:
    """Multi-paragraph text (blank-line separated), each paragraph escaped like `md`."""
    parts = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "\n\n".join(md(p) for p in parts)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return md(value)


def _holdout_text(period: dict[str, Any]) -> str:
    if period.get("holdout_split") == "random":
        return "holdout a stratified random sample of the label rows"
    return f"holdout from {md(period.get('holdout_from') or '?')}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- the document


def build_card(
    config: SeamlessConfig,
    *,
    version: str,
    model_uri: str,
    chain: dict[str, Any] | None,
    evaluation: dict[str, Any],
    compliance: dict[str, Any],
    approvals: list[dict[str, Any]],
    validation: str,
) -> dict[str, Any]:
    """The card as a JSON-ready dict. `chain` is the version's lineage (None when it
    could not be read: the data section then says so rather than guessing)."""
    chain = chain or {}
    run = chain.get("training_run") or {}
    params = run.get("params") or {}
    metrics = run.get("metrics") or {}
    snapshot = chain.get("snapshot") or {}
    features = chain.get("features") or {}
    search = config.model.search
    holdout = evaluation.get("challenger_metrics") or {}
    period = evaluation.get("holdout_period") or {}
    segments = compliance.get("segments") or evaluation.get("segments") or {}
    return {
        "schema": SCHEMA,
        "generated_at": now(),
        "model": {
            "name": config.model.name,
            "version": str(version),
            "uri": model_uri,
            "use_case": config.name,
            "estimator": config.model.estimator,
            "training_run_id": run.get("run_id"),
            "pipeline_run_id": chain.get("pipeline_run_id"),
        },
        "intended_use": config.model_card.intended_use,
        "out_of_scope": list(config.model_card.out_of_scope),
        "limitations": list(config.model_card.limitations),
        "owners": list(config.model_card.owners),
        "data": {
            "data_sha256": chain.get("data_sha256"),
            "sources": [
                {k: s.get(k) for k in ("table", "kind", "source", "source_sha256")}
                for s in chain.get("sources") or []
            ],
            "snapshot": {
                "ingested_at": snapshot.get("ingested_at"),
                "tables": snapshot.get("tables") or {},
                "intact": snapshot.get("intact"),
            },
            "training_set_sha256": features.get("training_set_sha256"),
            "label_period": {
                "first": params.get("train_label_first"),
                "holdout_from": params.get("holdout_cutoff"),
                "holdout_split": params.get("holdout_split") or "time",
                "last": period.get("last") or params.get("train_label_last"),
            },
            "rows": {
                "training": _int(params.get("train_rows")),
                "holdout": _int(holdout.get("rows")),
            },
            "validation": validation or None,
            "validation_reports": (chain.get("validation") or {}).get("reports") or [],
        },
        "features": {
            "service": features.get("feature_service") or config.features.service,
            "views": features.get("feature_views") or [v.name for v in config.features.views],
            "columns": dict(config.feature_types()),
            "label": config.labels.label_column,
            "positive_class": str(config.labels.positive_class),
            "mapped_to_positive": mapped_onto_positive(
                config.labels.value_map, config.labels.positive_class
            ),
        },
        "training": {
            "estimator": config.model.estimator,
            "best_params": {
                k.removeprefix("best_"): v for k, v in params.items() if k.startswith("best_")
            },
            "fixed_params": {
                k.removeprefix("fixed_"): v for k, v in params.items() if k.startswith("fixed_")
            },
            "search": {
                "method": search.method,
                "n_iter": search.n_iter,
                "cv": search.cv,
                "scoring": search.scoring,
            },
            "cv_score": metrics.get(f"cv_{search.scoring}_mean"),
            "cv_std": metrics.get(f"cv_{search.scoring}_std"),
            "holdout_fraction": config.model.holdout_fraction,
            "threshold": config.model.threshold,
            "seed": config.model.seed,
        },
        "evaluation": {
            "metric": evaluation.get("metric"),
            "holdout": holdout,
            "champion_version": evaluation.get("champion_version"),
            "champion": evaluation.get("champion_metrics") or {},
            "gate": {"decision": evaluation.get("decision"), "reason": evaluation.get("reason")},
        },
        "segments": segments,
        "compliance": {
            k: compliance.get(k)
            for k in ("declared", "passed", "tag", "reason", "checks", "counts")
        },
        "approvals": approvals,
    }


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(float(value))
    except (TypeError, ValueError):
        return None


def approval(action: str, decision: str, reason: str, **extra: Any) -> dict[str, Any]:
    """One entry of the approval trail, by the acting principal, now."""
    from components.governance.audit import current_actor

    return {
        "time": now(),
        "actor": current_actor(),
        "action": action,
        "decision": decision,
        "reason": reason,
        **extra,
    }


# ---------------------------------------------------------------- Markdown


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def _bullets(items: list[Any], empty: str) -> list[str]:
    return [f"- {md(i)}" for i in items] + [""] if items else [f"_{empty}_", ""]


def render_markdown(card: dict[str, Any]) -> str:
    """The card for people (KFP UI, MLflow artifact view), rendered from the JSON."""
    m, data, feats, train = card["model"], card["data"], card["features"], card["training"]
    ev, comp = card["evaluation"], card["compliance"]
    verdict = {"pass": "passed", "fail": "FAILED", "none": "no policy declared"}.get(
        str(comp.get("tag")), "unknown"
    )
    out = [
        f"# Model card: {md(m['name'])} version {md(m['version'])}",
        "",
        f"Use case {md(m['use_case'])}; estimator {md(m['estimator'])}; model "
        f"{md(m['uri'])}; training run {md(m['training_run_id'] or 'unknown')}; card "
        f"generated {md(card['generated_at'])}.",
        "",
        f"**Compliance: {verdict}.** {md(comp.get('reason') or '')}",
        "",
        "## Intended use",
        "",
        md_paragraphs(card["intended_use"]) if card["intended_use"].strip() else "_Not stated._",
        "",
        "## Out of scope",
        "",
        *_bullets(card["out_of_scope"], "Not stated."),
        "## Owners",
        "",
        *_bullets(card["owners"], "Not stated."),
        "## Data",
        "",
        f"Snapshot sha256 {md(data['data_sha256'] or 'unknown')}, ingested "
        f"{md(data['snapshot'].get('ingested_at') or 'unknown')}; training set sha256 "
        f"{md(data['training_set_sha256'] or 'unknown')}; validation "
        f"{md(data['validation'] or 'unknown')}.",
        "",
        f"Label period {md(data['label_period'].get('first') or '?')} to "
        f"{md(data['label_period'].get('last') or '?')}, {_holdout_text(data['label_period'])}; "
        f"{_num(data['rows'].get('training'))} training rows, "
        f"{_num(data['rows'].get('holdout'))} holdout rows.",
        "",
        *_table(
            ["table", "source", "kind", "source sha256", "rows", "snapshot sha256"],
            [
                _source_row(s, data["snapshot"]["tables"].get(s["table"]) or {})
                for s in data["sources"]
            ],
        ),
        "## Features",
        "",
        f"Feature service {md(feats['service'])} (views {md(', '.join(feats['views']))}); "
        f"label {md(feats['label'])}, positive class {md(feats['positive_class'])}"
        + _also_positive(feats.get("mapped_to_positive") or [])
        + ".",
        "",
        *_table(["feature", "type"], [[md(k), md(v)] for k, v in feats["columns"].items()]),
        "## Training",
        "",
        f"{md(train['estimator'])}, {md(train['search']['method'])} search "
        f"({_num(train['search']['n_iter'])} candidates, {_num(train['search']['cv'])}-fold, "
        f"scoring {md(train['search']['scoring'])}): cross-validated "
        f"{_num(train['cv_score'])} ± {_num(train['cv_std'])}; holdout fraction "
        f"{_num(train['holdout_fraction'])}, threshold {_num(train['threshold'])}, seed "
        f"{_num(train['seed'])}.",
        "",
        *_table(
            ["parameter", "value", "from"],
            [[md(k), md(v), "search"] for k, v in train["best_params"].items()]
            + [[md(k), md(v), "config"] for k, v in train["fixed_params"].items()],
        ),
        "## Holdout metrics",
        "",
        f"Gate metric {md(ev['metric'])}; gate: {md(ev['gate']['decision'])}, "
        f"{md(ev['gate']['reason'] or '')}.",
        "",
        *_table(
            ["metric", "this version", f"champion v{md(ev['champion_version'] or '-')}"],
            [
                [md(k), *_metric_cells(k, v, (ev["champion"] or {}).get(k))]
                for k, v in ev["holdout"].items()
            ],
        ),
        *_segments_md(card["segments"]),
        "## Limitations",
        "",
        *_bullets(card["limitations"], "Not stated."),
        "## Compliance checks",
        "",
        *(
            _table(
                ["check", "result", "detail"],
                [
                    [md(c["name"]), "pass" if c["passed"] else "FAIL", md(c["sentence"])]
                    for c in comp.get("checks") or []
                ],
            )
            or ["_No compliance policy is declared (config `compliance`)._", ""]
        ),
        "## Approval trail",
        "",
        *_table(
            ["time", "actor", "action", "decision", "reason"],
            [
                [
                    md(a.get("time")),
                    md(a.get("actor")),
                    md(a.get("action"))
                    + (" (compliance overridden)" if a.get("override_compliance") else ""),
                    md(a.get("decision")),
                    md(a.get("reason")),
                ]
                for a in card["approvals"]
            ],
        ),
    ]
    return "\n".join(out).rstrip() + "\n"


def _metric_cells(key: str, *values: Any) -> list[str]:
    """Metric values as shown; `rows` is a count, not a score."""
    return [_num(_int(v) if key == "rows" else v) for v in values]


def _source_row(source: dict[str, Any], table: dict[str, Any]) -> list[str]:
    return [
        md(source["table"]),
        md(source["source"]),
        md(source["kind"]),
        md(str(source["source_sha256"])[:16]),
        _num(table.get("rows")),
        md(str(table.get("sha256"))[:16]),
    ]


def _segments_md(report: dict[str, Any]) -> list[str]:
    if not report or not report.get("segments"):
        none = "_No segments declared (config `compliance.segments`)._"
        return ["## Segment metrics", "", none, ""]
    out = [
        "## Segment metrics",
        "",
        f"{md(report['metric'])} per group against the overall {_num(report.get('overall'))} "
        f"({_num(report.get('rows'))} holdout rows).",
        "",
    ]
    for seg in report["segments"]:
        spread = seg.get("spread")
        out += [
            f"### {md(seg['name'])} (column {md(seg['column'])})",
            "",
            f"Gap between groups (best vs worst): {_num(spread)}; rows in no group: "
            f"{_num(seg.get('unassigned_rows'))}.",
            "",
            *_table(
                ["group", "rows", "positives", "value", "gap to overall", "status"],
                [
                    [
                        md(g["group"]),
                        _num(g["rows"]),
                        _num(g["positives"]),
                        _num(g["value"]),
                        _num(g["gap"]),
                        md(g.get("status") or g.get("undefined") or "measured"),
                    ]
                    for g in seg["groups"]
                ],
            ),
        ]
    return out


# ---------------------------------------------------------------- MLflow


def card_dir(version: str) -> str:
    """Where a version's card lives on its run: one folder per version, since one run can
    back several versions (a model registered again)."""
    return f"{ARTIFACT_DIR}/v{version}"


def log_card(card: dict[str, Any], run_id: str) -> str:
    """Write both files onto the run (replacing earlier ones); returns the Markdown."""
    from components.common.tracking import mlflow_client

    folder = card_dir(card["model"]["version"])
    text = render_markdown(card)
    client = mlflow_client()
    client.log_text(run_id, json.dumps(card, indent=2, default=str), f"{folder}/{JSON_FILE}")
    client.log_text(run_id, text, f"{folder}/{MARKDOWN_FILE}")
    return text


def card_on_run(run_id: str, version: str) -> bool:
    """Whether both card files are on the run, non-empty (read back, not assumed)."""
    from mlflow.exceptions import MlflowException

    from components.common.tracking import mlflow_client

    try:
        listed = mlflow_client().list_artifacts(run_id, card_dir(version))
    except MlflowException:
        return False  # no such run (a version registered from elsewhere)
    files = {Path(f.path).name: f.file_size for f in listed}
    return all((files.get(name) or 0) > 0 for name in (JSON_FILE, MARKDOWN_FILE))


def read_card(run_id: str, version: str) -> dict[str, Any] | None:
    """The version's card JSON logged on the run, or None when it has none."""
    from mlflow.exceptions import MlflowException

    from components.common.tracking import mlflow_client

    if not card_on_run(run_id, version):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow_client().download_artifacts(
                run_id, f"{card_dir(version)}/{JSON_FILE}", tmp
            )
        except MlflowException as exc:
            raise SeamlessError(f"The model card of run {run_id} cannot be read: {exc}") from None
        card: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return card


def record_approval(run_id: str, version: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    """Append `entry` to the approval trail of the version's card and log it again; None
    when it has no card (a version registered before cards existed)."""
    card = read_card(run_id, version)
    if card is None:
        return None
    card["approvals"] = [*card.get("approvals", []), entry]
    card["generated_at"] = now()
    log_card(card, run_id)
    return card


def _also_positive(mapped: list[str]) -> str:
    """Label values counted as the positive class through `labels.value_map`."""
    if not mapped:
        return ""
    return f" (also {md(', '.join(mapped))}, mapped onto it by labels.value_map)"
