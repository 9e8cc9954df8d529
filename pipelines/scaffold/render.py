"""The YAML: the plan (`build_scaffold`, `choose_features`), its commented config text
(`render_config`) and writing it (`write_config`)."""

from __future__ import annotations

import functools
import json
import re
import textwrap
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from components.common.config import (
    CASE_BLIND,
    ColumnType,
    FileSource,
    SqlSource,
    case_clash,
    parse_config,
)
from components.common.durable import write_atomic
from components.common.errors import SeamlessError
from pipelines.scaffold.common import (
    BUDGET,
    MARGIN,
    MAX_CATEGORIES,
    MAX_SET,
    identifier,
    n,
    password_env,
    show,
)
from pipelines.scaffold.expectations import Expectation, starter_expectations
from pipelines.scaffold.keys import KeysPlan, plan_keys
from pipelines.scaffold.label import LabelPlan, plan_label
from pipelines.scaffold.profile import ColumnProfile, event_time_why, profile_table
from pipelines.scaffold.source import SourcePlan, plan_source, read_table, with_missing_markers

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _y(value: Any) -> str:
    """One YAML scalar or flow collection, read back as exactly `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    if isinstance(value, str):
        return _y_text(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_y(str(k))}: {_y(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_y(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to YAML")


@functools.lru_cache(maxsize=4096)
def _y_text(value: str) -> str:
    """A string plain where YAML reads it back as itself, else quoted (names repeat on
    every line of a wide table's config: each is parsed once)."""
    if _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str, indent: int = 0, width: int = 96) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(
        text, width=width, initial_indent=f"{pad}# ", subsequent_indent=f"{pad}# "
    ) or [f"{pad}#"]


@dataclass(frozen=True)
class Scaffold:
    """A written-out plan: the config text and what it was inferred from."""

    text: str
    name: str
    table: str
    rows: int
    source: SourcePlan
    profiles: dict[str, ColumnProfile]
    keys: KeysPlan
    label: LabelPlan
    features: list[str]
    left_out: dict[str, str]
    """Columns that are not features (neither keys nor label), and why."""
    expectations: list[Expectation]


def build_scaffold(
    from_: str,
    label: str,
    *,
    name: str,
    data_dir: Path,
    positive: str | None = None,
    entity: str | None = None,
    timestamp: str | None = None,
    query: str | None = None,
    table: str | None = None,
    cwd: Path | None = None,
    now: datetime | None = None,
    column_names: list[str] | None = None,
) -> Scaffold:
    """Read and profile the table, plan keys, label, features and checks, render the YAML."""
    source = plan_source(
        from_, data_dir, query=query, table=table, cwd=cwd, column_names=column_names
    )
    source, df = with_missing_markers(source, read_table(source))
    if label not in df.columns:
        plan_label(df, label, source.shown)  # raises the sentence naming the columns
    clash = case_clash([str(c) for c in df.columns])
    if clash:
        raise SeamlessError(
            f"--from {source.shown}: columns '{clash[0]}' and '{clash[1]}' differ only in "
            f"case, and {CASE_BLIND}; rename one in the source (from a database, select it "
            "under another name with --query)."
        )
    profiles = profile_table(df, timestamp)
    keys = plan_keys(df, profiles, label, source.shown, entity, timestamp)
    label_plan = plan_label(df, label, source.shown, positive)
    features, left_out = choose_features(profiles, (keys.entity, keys.timestamp, label))
    if not features:
        raise SeamlessError(
            f"--from {source.shown} has no column to learn from besides the label "
            f"'{label}' and the keys."
        )
    use_case = identifier(name, "use_case")
    expectations = starter_expectations(source.table, profiles, features, label_plan, len(df))
    plan = Scaffold(
        text="",
        name=use_case,
        table=source.table,
        rows=len(df),
        source=source,
        profiles=profiles,
        keys=keys,
        label=label_plan,
        features=features,
        left_out=left_out,
        expectations=expectations,
    )
    text = render_config(plan, now or datetime.now(UTC))
    # A bug here must not reach the user; the URL's password stands in for the variable.
    with password_env(source.password):
        parse_config(text, origin="the scaffolded config")
    return replace(plan, text=text)


def _ttl_days(keys: KeysPlan, now: datetime) -> int:
    if keys.oldest is None:
        return 365
    oldest = keys.oldest if keys.oldest.tzinfo else keys.oldest.replace(tzinfo=UTC)
    return max(365, (now - oldest).days + 30)


def choose_features(
    profiles: dict[str, ColumnProfile], keys_and_label: tuple[str | None, ...]
) -> tuple[list[str], dict[str, str]]:
    """Every column but the keys and the label, except timestamps (the model does not take
    them), text with more than MAX_CATEGORIES values (each value would become one
    one-hot input, dense: rows x values floats) and columns that never vary (all empty, or
    one value in every row: they tell the model nothing, yet every request must send them)."""
    features: list[str] = []
    left_out: dict[str, str] = {}
    for col, p in profiles.items():
        if col in keys_and_label:
            continue
        if p.present == 0:
            left_out[col] = "not a feature: with no value it tells the model nothing"
        elif p.distinct == 1 and p.parsed == p.rows:
            left_out[col] = (
                "not a feature: the same value in every row tells the model nothing; add it "
                "to the view's features to use it anyway"
            )
        elif p.kind == "timestamp":
            left_out[col] = "not a feature: the model takes numbers, text and booleans"
        elif p.kind == "string" and p.distinct > MAX_CATEGORIES:
            left_out[col] = (
                f"not a feature: {n(p.distinct)} distinct values, each one-hot encoded, cost "
                f"more than they tell (more than {MAX_CATEGORIES}); add it to the view's "
                "features to use it anyway"
            )
        else:
            features.append(col)
    return features, left_out


def small_table_leaf(rows: int) -> int | None:
    """The gradient-boosted trees' min_samples_leaf for a table under 1,000 rows (one leaf
    per 50 rows), else None for scikit-learn's 20."""
    return max(1, rows // 50) if rows < 1000 else None


def render_config(plan: Scaffold, now: datetime) -> str:
    """The config as commented YAML (see `build_scaffold`)."""
    t, src, keys, label = plan.table, plan.source, plan.keys, plan.label
    lines: list[str] = []
    add = lines.append
    ncols = len(plan.profiles)
    lines += _comment(
        f"Seamless use case '{plan.name}', written by `seamless init` on "
        f"{now.strftime('%Y-%m-%d')} from {src.shown} ({n(plan.rows)} rows x {ncols} columns). "
        "Every inferred choice is explained in a comment: check them, then edit freely."
    )
    add("name: " + _y(plan.name))
    add("")
    lines += _comment(
        "tables: where the data comes from and the type of every column. The one table "
        "holds both the features and the labels. A relative file path resolves against the "
        "--data-dir of `seamless run training`; values of a typed column that do not parse "
        f"become null, up to max_invalid_fraction ({BUDGET:.0%}) of the rows, and are listed "
        "in the run summary."
    )
    add("tables:")
    add(f"  {_y(t)}:")
    for note in src.notes:
        lines += _comment(note, 4)
    add(f"    source: {_y(_source_dict(src.config))}")
    for note in keys.notes:
        lines += _comment(note, 4)
    if keys.entity:
        add(f"    entity_column: {_y(keys.entity)}")
    if keys.timestamp:
        add(f"    timestamp_column: {_y(keys.timestamp)}")
    add("    columns:")
    for col, p in plan.profiles.items():
        kind: ColumnType = p.kind
        why = p.why
        if col == keys.entity and keys.entity_kind:
            kind, why = keys.entity_kind, f"entity key, {keys.entity_kind}"
        elif col == keys.timestamp:
            kind, why = "timestamp", event_time_why(p)
        elif col == label.column:
            kind, why = label.kind, f"label, {label.kind}"
        elif col in plan.left_out:
            why += f"; {plan.left_out[col]}"
        lines += _comment(why, 6)
        written = (
            p.fmt.model_dump(exclude_none=True, exclude_defaults=True)
            if p.fmt and kind == p.kind
            else {}
        )
        add(f"      {_y(col)}: {_y({'type': kind, **written}) if written else kind}")
    add("")
    lines += _comment(
        "labels: the column to predict and its classes. A value that is none of the classes "
        "stops the run with a sentence naming it (value_map renames values first)."
    )
    add("labels:")
    add(f"  table: {_y(t)}")
    add(f"  label_column: {_y(label.column)}")
    for note in label.notes:
        lines += _comment(note, 2)
    add(f"  positive_class: {_y(label.positive)}")
    add(f"  negative_classes: {_y(list(label.negatives))}")
    if label.value_map:
        add(f"  value_map: {_y(label.value_map)}")
    if label.missing:
        add("  unknown_values: drop")
    add("")
    lines += _comment(
        "validation: a starter suite from the profile. Built-in checks run anyway (every "
        "declared column present and typed, keys never empty, label classes, the invalid-value "
        "budget). Ranges are the observed ones widened by "
        f"{MARGIN:.0%}, allowed sets are the values seen in columns with at most {MAX_SET}, "
        "null budgets (`mostly`) allow the observed share plus slack. Only what training needs "
        "is critical; warnings are reported and never stop a run."
    )
    add("validation:")
    add("  expectations:")
    for exp in plan.expectations:
        lines += _comment(exp.comment, 4)
        add(f"    - {_y(exp.spec)}")
    add("")
    lines += _comment(
        "features: the Feast feature view (every column but the keys and the label) and the "
        "feature service the model is trained and served on."
    )
    if plan.left_out:
        lines += _comment(f"Left out (see their columns): {show(list(plan.left_out), 10)}.")
    add("features:")
    add(f"  project: {_y(plan.name)}")
    add(f"  entity: {_y(identifier(keys.entity or 'row', 'row'))}")
    add(f"  service: {_y(plan.name + '_v1')}")
    add("  views:")
    add(f"    - name: {_y(t + '_features')}")
    add(f"      table: {_y(t)}")
    add(f"      features: {_y(plan.features)}")
    ttl = _ttl_days(keys, now)
    lines += _comment(
        "How far back a point-in-time join looks for a value"
        + (f" (covers the data since {keys.oldest:%Y-%m-%d})." if keys.oldest else "."),
        6,
    )
    add(f"      ttl_days: {ttl}")
    add("")
    lines += _comment(
        "model: gradient-boosted trees (missing values and one-hot text handled by the "
        "pipeline) with a small random search; max_train_rows bounds the search's cost, the "
        "final refit uses every training row. The holdout is "
        + (
            "the latest 20% of label rows by event time."
            if keys.timestamp
            else "a random 20% of the rows, stratified by class (no event time orders them; "
            "holdout_split: auto)."
        )
    )
    add("model:")
    add(f"  name: {_y(plan.name)}")
    add(f"  experiment: {_y(plan.name)}")
    add("  estimator: hist_gradient_boosting")
    leaf = small_table_leaf(plan.rows)
    if leaf is None:
        add("  params: {early_stopping: false}")
    else:
        fold = int(plan.rows * 0.8 * 2 / 3)
        lines.extend(
            _comment(
                f"min_samples_leaf {leaf} instead of scikit-learn's 20: a cross-validation "
                f"fold trains on about {n(fold)} of the {n(plan.rows)} rows, too few for "
                "leaves of 20 (the model would learn nothing).",
                2,
            )
        )
        add(f"  params: {{early_stopping: false, min_samples_leaf: {leaf}}}")
    add("  search:")
    add("    method: random")
    add("    n_iter: 4")
    add("    cv: 3")
    add("    scoring: roc_auc")
    add("    space:")
    add("      learning_rate: [0.05, 0.1]")
    add("      max_depth: [3, null]")
    add("      max_iter: [100, 200]")
    add("  holdout_fraction: 0.2")
    add("  max_train_rows: 50000")
    add("  threshold: 0.5")
    add("  seed: 42")
    add("")
    lines += _comment(
        "promotion: a new model becomes champion when it beats the current one on the "
        "holdout by min_improvement. min_value is a floor for every model, the first "
        "included: 0.5 keeps a model that ranks worse than chance (ROC AUC below 0.5) from "
        "ever serving; raise it to the level the use case needs (e.g. 0.7). Monitoring "
        "thresholds take their defaults (add a monitoring: section to change them)."
    )
    add("promotion:")
    add("  metric: roc_auc")
    add("  min_improvement: 0.002")
    add("  min_value: 0.5")
    return "\n".join(lines) + "\n"


def _source_dict(src: FileSource | SqlSource) -> dict[str, Any]:
    if isinstance(src, SqlSource):
        return {"kind": "sql", "url": src.url, "query": src.query}
    out: dict[str, Any] = {"kind": "file", "uri": src.uri}
    if src.delimiter != ",":
        out["delimiter"] = src.delimiter
    if src.column_names:
        out["column_names"] = list(src.column_names)
    if src.missing_values:
        out["missing_values"] = list(src.missing_values)
    if src.encoding != "utf-8":
        out["encoding"] = src.encoding
    return out


def write_config(path: Path, text: str, force: bool = False) -> None:
    """Write the config atomically; an existing file is kept unless `force`."""
    if path.exists() and not force:
        raise SeamlessError(f"--out {path} already exists; pass --force to replace it.")
    if path.exists() and not path.is_file():
        raise SeamlessError(f"--out {path} is not a file.")
    write_atomic(path, text.encode("utf-8"), mode=0o600)
