"""What a local training run did to the data, read back from its step outputs.

The console summary and `--json` show it, so nothing ingest coerced, mapped or dropped
and no failed check is only in a log: per table its rows, the values that became null
(count and examples of the source text), the `missing_values` markers read as
missing, the generated columns, the columns pseudonymized or dropped for their `pii`
tag (with the key's fingerprint) and the label values mapped or left out of training; and one
sentence per failed validation check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.common.tables import MANIFEST
from components.validate.stage import coercions_from_manifest, result_path


def _first(run_dir: Path, pattern: str) -> Path | None:
    hits = sorted(run_dir.rglob(pattern))
    return hits[0] if hits else None


def _read(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def data_summary(run_dir: Path | None) -> dict[str, Any]:
    """`{"tables": {name: {...}}, "validation": {...}}` of a run folder (empty if unknown)."""
    if run_dir is None or not run_dir.is_dir():
        return {}
    manifest = _read(_first(run_dir, f"ingest/*/{MANIFEST}"))
    coerced = coercions_from_manifest(manifest)
    tables: dict[str, Any] = {}
    for name, entry in (manifest.get("tables") or {}).items():
        item: dict[str, Any] = {"rows": entry.get("rows")}
        if coerced.get(name):
            item["coerced_to_null"] = coerced[name]
        if entry.get("missing_markers"):
            item["missing_markers"] = entry["missing_markers"]
        if entry.get("generated_columns"):
            item["generated_columns"] = list(entry["generated_columns"])
        if entry.get("pii"):
            item["pii"] = entry["pii"]
        labels = entry.get("labels") or {}
        if labels.get("mapped") or labels.get("left_out"):
            item["labels"] = {
                "mapped": labels.get("mapped") or {},
                "left_out": int(labels.get("left_out") or 0),
                "left_out_values": labels.get("left_out_values") or {},
            }
        tables[name] = item
    out: dict[str, Any] = {"tables": tables} if tables else {}
    report = _first(run_dir, "validate/report")
    result = _read(result_path(report)) if report else {}
    if result:
        out["validation"] = {
            "decision": result.get("decision"),
            "checks": result.get("evaluated"),
            "failed_critical": result.get("failed_critical"),
            "failed_warning": result.get("failed_warning"),
            "failures": list(result.get("failures") or []),
        }
    return out


def data_lines(summary: dict[str, Any]) -> list[str]:
    """The summary as short console lines (nothing when nothing was changed or failed)."""
    lines: list[str] = []
    for name, item in (summary.get("tables") or {}).items():
        for col, c in (item.get("coerced_to_null") or {}).items():
            shown = ", ".join(repr(e) for e in c.get("examples", [])[:3])
            n = c["count"]
            lines.append(
                f"{name}.{col}: {n} value{'s' if n != 1 else ''} not parseable as the "
                f"declared type became null (e.g. {shown})"
            )
        for col, found in (item.get("missing_markers") or {}).items():
            shown = ", ".join(f"{m!r} x{n}" for m, n in found.items())
            lines.append(f"{name}.{col}: {shown} read as missing (missing_values)")
        pii = item.get("pii") or {}
        for col, done in (pii.get("pseudonymized") or {}).items():
            lines.append(
                f"{name}.{col}: {done['values']} values ({done['distinct']} distinct) "
                f"pseudonymized (pii; key fingerprint {pii.get('key_fingerprint')})"
            )
        for col in pii.get("dropped") or []:
            lines.append(f"{name}.{col}: dropped (pii)")
        labels = item.get("labels") or {}
        for src, n in (labels.get("mapped") or {}).items():
            lines.append(f"{name}: {n} label value{'s' if n != 1 else ''} {src!r} mapped")
        if labels.get("left_out"):
            values = ", ".join(f"{v!r} x{n}" for v, n in labels["left_out_values"].items())
            lines.append(
                f"{name}: {labels['left_out']} rows left out of training, label not a class "
                f"({values}); the table keeps them (labels.unknown_values: drop)"
            )
    return lines
