"""The compliance policy (config `compliance:`): what must hold before a model is promoted.

The register step calls `check` once the new version exists, with the facts it
gathered: the validation verdict of the training data, the version's lineage
(`lineage.model_lineage`), whether the model card landed on the version's run, and the
evaluate step's per-segment measurements. The result is part of the gate's decision
(a failed policy turns `promote` into `reject`), of the version's tags, of the audit
entry and of the model card. Every failed check is one clause naming the config key or
the segment at fault; the clauses make the one-sentence reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from components.common.compliance_config import ComplianceConfig
from components.common.config import SeamlessConfig

TAG = "seamless.compliance"
"""Version tag: `pass`, `fail`, or `none` (no policy declared when it was registered)."""
REASON_TAG = "seamless.compliance_reason"
GroupStatus = Literal["within", "outside", "too_few_rows", "undefined"]
SHOWN_CLAUSES = 3
"""Failed checks named in the reason; the rest are counted (all are in the card)."""


@dataclass
class Check:
    name: str
    """validation, lineage, model_card, segment or segment_spread."""
    passed: bool
    sentence: str
    subject: str = ""
    """The segment group or segment a segment check is about."""


@dataclass
class ComplianceResult:
    declared: bool
    passed: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    segments: dict[str, Any] = field(default_factory=dict)
    """The evaluate step's segment report, each group with its `status` and `bound`."""
    counts: dict[str, int] = field(default_factory=dict)
    """Segment groups: declared, measured, outside the bound, too few rows, undefined."""

    @property
    def tag(self) -> str:
        return "none" if not self.declared else "pass" if self.passed else "fail"

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tag": self.tag}


def not_declared() -> ComplianceResult:
    return ComplianceResult(
        declared=False, passed=True, reason="no compliance policy is declared (config compliance)"
    )


def _validation(policy: ComplianceConfig, verdict: str | None) -> Check:
    allowed = ("pass",) if policy.validation == "pass" else ("pass", "warn")
    if not verdict:
        return Check("validation", False, "no validation verdict is recorded for the training data")
    if verdict not in allowed:
        return Check(
            "validation",
            False,
            f"the training data's validation verdict is '{verdict}' and compliance.validation "
            f"'{policy.validation}' allows only {' or '.join(allowed)}",
        )
    return Check("validation", True, f"the training data passed validation ({verdict})")


def _lineage(policy: ComplianceConfig, chain: dict[str, Any] | None, error: str | None) -> Check:
    if not policy.lineage:
        return Check("lineage", True, "lineage not required (compliance.lineage is false)")
    if chain is None:
        return Check("lineage", False, f"the lineage could not be read ({error or 'unknown'})")
    gaps = list(chain.get("gaps") or [])
    if not chain.get("sources"):
        gaps.append("no source is recorded")
    if gaps:
        return Check("lineage", False, f"the lineage has gaps: {', '.join(gaps)}")
    return Check("lineage", True, "the lineage is complete from the sources to the version")


def _card(policy: ComplianceConfig, logged: bool | None, where: str) -> Check:
    if not policy.model_card:
        return Check("model_card", True, "model card not required (compliance.model_card is false)")
    if not logged:
        return Check("model_card", False, f"the model card is not on {where}")
    return Check("model_card", True, f"the model card is logged on {where}")


def _num(x: float) -> str:
    return f"{x:.4f}"


def _segments(
    config: SeamlessConfig, policy: ComplianceConfig, report: dict[str, Any]
) -> tuple[list[Check], dict[str, Any], dict[str, int]]:
    """Judge each declared segment's groups against the bounds; returns the checks, the
    report annotated with each group's status and bound, and the counts."""
    counts = {"declared": 0, "measured": 0, "outside": 0, "too_few_rows": 0, "undefined": 0}
    if not policy.segments:
        return [], report, counts
    metric = policy.metric or config.promotion.metric
    measured = {s.get("index"): s for s in report.get("segments", [])}
    overall = report.get("overall")
    checks: list[Check] = []
    annotated = []
    for i, seg in enumerate(policy.segments):
        found = measured.get(i)
        if found is None or found.get("name") != seg.label or report.get("metric") != metric:
            checks.append(
                Check(
                    "segment",
                    False,
                    f"segment {seg.label} was not measured by the evaluate step "
                    f"(compliance.segments[{i}])",
                    seg.label,
                )
            )
            continue
        bound = seg.max_gap if seg.max_gap is not None else policy.max_gap
        bound_key = (
            f"compliance.segments[{i}].max_gap" if seg.max_gap is not None else "compliance.max_gap"
        )
        min_rows = seg.min_rows if seg.min_rows is not None else policy.min_rows
        rows_key = (
            f"compliance.segments[{i}].min_rows"
            if seg.min_rows is not None
            else "compliance.min_rows"
        )
        groups = []
        for g in found["groups"]:
            subject = f"{seg.label}={g['group']}"
            counts["declared"] += 1
            status: GroupStatus
            if g["rows"] < min_rows:
                status = "too_few_rows"
                sentence = (
                    f"segment {subject} has {g['rows']} holdout rows, fewer than "
                    f"{rows_key} {min_rows}"
                )
            elif g["value"] is None or overall is None:
                status = "undefined"
                sentence = f"segment {subject} cannot be measured: {g['undefined']}"
            elif abs(g["value"] - overall) > bound:
                status = "outside"
                side = "below" if g["value"] < overall else "above"
                sentence = (
                    f"segment {subject} {metric} {_num(g['value'])} is "
                    f"{_num(abs(g['value'] - overall))} {side} the overall {_num(overall)}, "
                    f"beyond {bound_key} {_num(bound)}"
                )
            else:
                status = "within"
                sentence = (
                    f"segment {subject} {metric} {_num(g['value'])} is within {_num(bound)} "
                    f"of the overall {_num(overall)}"
                )
            if status in ("within", "outside"):
                counts["measured"] += 1
            if status != "within":
                counts[status] += 1
            unmeasurable = status in ("too_few_rows", "undefined")
            passed = status == "within" or (unmeasurable and policy.unmeasurable == "report")
            if unmeasurable and passed:
                sentence += " (reported only: compliance.unmeasurable is report)"
            checks.append(Check("segment", passed, sentence, subject))
            groups.append({**g, "status": status, "bound": bound, "min_rows": min_rows})
        spread = found.get("spread")
        if policy.max_segment_gap is not None and spread is not None:
            ok = spread <= policy.max_segment_gap
            checks.append(
                Check(
                    "segment_spread",
                    ok,
                    f"segment {seg.label}'s groups differ by {_num(spread)} in {metric} (best "
                    f"vs worst), {'within' if ok else 'beyond'} compliance.max_segment_gap "
                    f"{_num(policy.max_segment_gap)}",
                    seg.label,
                )
            )
        annotated.append({**found, "groups": groups, "bound": bound})
    return checks, {**report, "segments": annotated}, counts


def check(
    config: SeamlessConfig,
    *,
    validation: str | None,
    lineage: dict[str, Any] | None,
    lineage_error: str | None = None,
    card_logged: bool | None,
    card_location: str = "the version's run",
    segments: dict[str, Any] | None = None,
) -> ComplianceResult:
    """Apply `config.compliance` to the facts of one registered version."""
    policy = config.compliance
    if policy is None:
        return not_declared()
    checks = [
        _validation(policy, validation),
        _lineage(policy, lineage, lineage_error),
        _card(policy, card_logged, card_location),
    ]
    segment_checks, annotated, counts = _segments(config, policy, segments or {})
    checks += segment_checks
    failed = [c for c in checks if not c.passed]
    if failed:
        clauses = [c.sentence for c in failed[:SHOWN_CLAUSES]]
        if len(failed) > SHOWN_CLAUSES:
            clauses.append(f"and {len(failed) - SHOWN_CLAUSES} more failed checks")
        reason = "compliance failed: " + "; ".join(clauses)
    else:
        applied = ["validation"] + ["lineage"] * policy.lineage + ["model card"] * policy.model_card
        reason = f"compliance passed: {', '.join(applied)}"
        if policy.segments:
            reason += f", {counts['measured']} segment groups within bounds"
            unmeasurable = counts["too_few_rows"] + counts["undefined"]
            if unmeasurable:
                reason += f" ({unmeasurable} unmeasurable, reported only)"
    return ComplianceResult(
        declared=True,
        passed=not failed,
        reason=reason,
        checks=checks,
        segments=annotated,
        counts=counts,
    )
