"""The register stage as the component calls it.

1. Create the version (`challenger` moves to it; `champion` does not).
2. Read its lineage and apply the compliance policy (config `compliance:`) to it.
3. Write the model card (logged on the version's run, read back to be sure it is there).
4. Settle: `promote` only when the evaluate step's gate said so AND the policy passed;
   record the decision, its one-sentence reason and the policy's result on the version,
   in the audit trail and in the notifications.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.tracking import HOLDOUT_TAG_PREFIX, mlflow_client
from components.governance import access, compliance, hooks
from components.governance.compliance import ComplianceResult
from components.register import model_card
from components.register.registry import Registration, check_decision, create_version, settle


@dataclass
class RegisterOutcome:
    registration: Registration
    decision: str
    """`promote` or `reject`: the gate's decision, turned to `reject` by a failed policy."""
    reason: str
    """One sentence: why."""
    compliance: ComplianceResult
    card: dict[str, Any]
    card_markdown: str
    card_uri: str
    """`runs:/<run id>/model_card/v<version>`, or "" when the version has no run to log it on."""


def final_decision(gate: str, gate_reason: str, result: ComplianceResult) -> tuple[str, str]:
    """The gate's decision and reason, with the compliance policy's result folded in."""
    if gate == "promote" and not result.passed:
        return "reject", f"{result.reason} (the gate alone would promote: {gate_reason})"
    if not result.declared:
        return gate, gate_reason
    return gate, f"{gate_reason}; {result.reason}"


def _lineage(model_name: str, version: str) -> tuple[dict[str, Any] | None, str | None]:
    from components.governance.lineage import model_lineage

    try:
        return model_lineage(model_name, version), None
    except SeamlessError as exc:
        return None, str(exc)


def run_registration(
    config: SeamlessConfig,
    model_meta: dict[str, Any],
    evaluation_path: str,
    decision: str,
    validation_decision: str,
    feature_service: str,
    pipeline_run_id: str,
) -> RegisterOutcome:
    check_decision(decision)
    evaluation = json.loads(Path(evaluation_path).read_text())
    gate_reason = str(evaluation["reason"])
    train_run = str(model_meta.get("run_id", ""))
    tags = {
        "seamless.data_sha256": str(model_meta.get("data_sha256", "")),
        "seamless.validation": validation_decision,
        "seamless.feature_service": feature_service,
        "seamless.pipeline_run_id": pipeline_run_id,
        "seamless.train_run_id": train_run,
        "seamless.gate_decision": decision,
        "seamless.gate_reason": gate_reason[:5000],
    }
    for key, value in evaluation["challenger_metrics"].items():
        tags[f"{HOLDOUT_TAG_PREFIX}{key}"] = f"{value:.6g}"
    name = config.model.name
    subject = f"model:{name}"
    access.require("register", subject)
    if decision == "promote":
        access.require("promote", subject)
    client = mlflow_client()
    if train_run:
        # The training run itself records what validation said about its data.
        client.set_tag(train_run, "seamless.validation", validation_decision)
    version = create_version(name, str(model_meta["model_uri"]), tags)
    chain, chain_error = _lineage(name, version)
    run_id = train_run or str(((chain or {}).get("model_version") or {}).get("run_id") or "")
    where = f"training run {run_id}" if run_id else "a training run (the version names none)"

    def judge(card_logged: bool) -> tuple[ComplianceResult, str, str]:
        result = compliance.check(
            config,
            validation=validation_decision,
            lineage=chain,
            lineage_error=chain_error,
            card_logged=card_logged,
            card_location=where,
            segments=evaluation.get("segments"),
        )
        return (result, *final_decision(decision, gate_reason, result))

    # The card records the policy's result, and the policy requires the card: judge with
    # the card counted as present, log it, then read it back and judge again if it is not.
    result, final, reason = judge(card_logged=bool(run_id))
    trail = [
        model_card.approval(
            "registered", final, reason, gate_decision=decision, compliance=result.tag
        )
    ]
    card = model_card.build_card(
        config,
        version=version,
        model_uri=str(model_meta["model_uri"]),
        chain=chain,
        evaluation=evaluation,
        compliance=result.to_dict(),
        approvals=trail,
        validation=validation_decision,
    )
    markdown = model_card.render_markdown(card)
    card_uri = ""
    if run_id:
        markdown = model_card.log_card(card, run_id)
        card_uri = f"runs:/{run_id}/{model_card.card_dir(version)}"
        if not model_card.card_on_run(run_id, version):
            result, final, reason = judge(card_logged=False)
            card_uri = ""
    registration = settle(name, version, final)
    for key, value in {
        "seamless.decision_reason": reason[:5000],
        compliance.TAG: result.tag,
        compliance.REASON_TAG: result.reason[:5000],
        model_card.TAG: card_uri,
    }.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=f"{final}: {reason}")
    hooks.on_register(
        registration,
        pipeline_run_id,
        reason=reason,
        notifications=config.notifications,
        gate=evaluation,
        compliance=result.to_dict(),
    )
    return RegisterOutcome(registration, final, reason, result, card, markdown, card_uri)
