"""KFP component: register the challenger in MLflow, apply the compliance policy, write the
model card, and move aliases on promote."""

from kfp.dsl import Artifact, Input, Markdown, Model, Output, OutputPath

from components.common.image import seamless_component


@seamless_component
def register(
    config_yaml: str,
    model: Input[Model],
    evaluation: Input[Artifact],
    decision: str,
    validation_decision: str,
    feature_service: str,
    pipeline_run_id: str,
    model_card: Output[Markdown],
    version: OutputPath(str),  # type: ignore[valid-type]
) -> str:
    """Returns `promote` or `reject`: the evaluate step's gate, turned to `reject` when the
    compliance policy fails (the deploy step runs on `promote`). The new version number is
    the `version` output; `model_card` is the card the KFP UI shows."""
    from pathlib import Path

    from components.common.stage import clean_errors, stage_config
    from components.common.tables import write_text_atomic
    from components.register.stage import run_registration

    with clean_errors("register"):
        outcome = run_registration(
            stage_config(config_yaml),
            dict(model.metadata),
            evaluation.path,
            decision,
            validation_decision,
            feature_service,
            pipeline_run_id,
        )
        write_text_atomic(model_card.path, outcome.card_markdown)
        model_card.metadata.update(
            {
                "version": outcome.registration.version,
                "decision": outcome.decision,
                "reason": outcome.reason,
                "compliance": outcome.compliance.tag,
                "mlflow_uri": outcome.card_uri,
            }
        )
        Path(version).write_text(outcome.registration.version, encoding="utf-8")
        print(f"register: v{outcome.registration.version} {outcome.decision}: {outcome.reason}")
        return outcome.decision
