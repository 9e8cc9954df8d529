"""KFP component: register the challenger in MLflow and move aliases on promote."""

from kfp.dsl import Artifact, Input, Model

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
) -> str:
    """Returns the new model version."""
    from components.common.stage import clean_errors, stage_config
    from components.register.stage import run_registration

    with clean_errors("register"):
        registration = run_registration(
            stage_config(config_yaml),
            dict(model.metadata),
            evaluation.path,
            decision,
            validation_decision,
            feature_service,
            pipeline_run_id,
        )
        print(f"register: {registration}")
        return registration.version
