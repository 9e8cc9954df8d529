"""KFP component: hyperparameter search + refit, tracked in MLflow."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.image import seamless_component


@seamless_component
def train(
    config_yaml: str,
    training_set: Input[Dataset],
    pipeline_run_id: str,
    model: Output[Model],
    holdout: Output[Dataset],
    metrics: Output[Metrics],
):
    """Train on all but the holdout rows (the latest by label time, or a stratified random
    sample: `model.holdout_split`); the holdout is written out."""
    from components.common.stage import clean_errors, stage_config
    from components.governance import hooks
    from components.train.stage import run_training

    with clean_errors("train"):
        result = run_training(
            stage_config(config_yaml),
            training_set.path,
            dict(training_set.metadata),
            training_set.uri,
            pipeline_run_id,
            holdout.path,
        )
        model.metadata.update(result["model"])
        hooks.on_train(result["model"], pipeline_run_id)
        holdout.metadata.update(result["holdout"])
        for key, value in result["metrics"].items():
            metrics.log_metric(key, value)
