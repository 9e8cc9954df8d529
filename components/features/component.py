"""KFP component: apply the Feast repo, materialize, and build the point-in-time training set."""

from kfp.dsl import Dataset, Input, Output

from components.common.image import seamless_component


@seamless_component
def features(
    config_yaml: str,
    dataset: Input[Dataset],
    training_set: Output[Dataset],
    pipeline_run_id: str = "",
) -> str:
    """Returns the feature service name the training set was built from."""
    from components.common.stage import clean_errors, stage_config
    from components.features.stage import run_features
    from components.governance import hooks

    with clean_errors("features"):
        info = run_features(stage_config(config_yaml), dataset.path, training_set.path)
        training_set.metadata.update(info)
        hooks.on_features(info, pipeline_run_id)
        return str(info["feature_service"])
