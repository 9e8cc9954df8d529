"""KFP components: publish the features to Feast and build the point-in-time training set;
then, beside training, load the online store from what was published."""

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
        # The online store is loaded by `materialize`, which runs beside training.
        info = run_features(
            stage_config(config_yaml), dataset.path, training_set.path, online=False
        )
        training_set.metadata.update(info)
        hooks.on_features(info, pipeline_run_id)
        return str(info["feature_service"])


@seamless_component
def materialize(config_yaml: str, training_set: Input[Dataset]) -> str:
    """Load the online store with the views' values over the windows the features step
    published (its training set's `online_windows`); returns the views, comma-separated."""
    from components.common.stage import clean_errors, stage_config
    from components.features.stage import run_materialize

    with clean_errors("materialize"):
        done = run_materialize(stage_config(config_yaml), training_set.metadata["online_windows"])
        return ",".join(done["views"])
