"""KFP component: score a table of entities with a registered model version."""

from kfp.dsl import Dataset, Output

from components.common.image import seamless_component


@seamless_component
def batch_score(
    config_yaml: str,
    input_uri: str,
    scores: Output[Dataset],
    as_of: str = "",
    timestamp_column: str = "",
    output_uri: str = "",
    model_version: str = "",
    without_features: str = "fail",
    pipeline_run_id: str = "",
) -> str:
    """Returns the batch id (the request id of its prediction-log records).

    `as_of` (one instant for every row) or `timestamp_column` (each row's own) says when
    each entity is scored; `model_version` empty means the champion. Rows no feature view
    has a value for refuse the input unless `without_features` is `skip` (left out) or
    `impute` (scored on imputed values). The scores go to
    `output_uri` (a Parquet file, local or object storage) when given, else to the
    `scores` artifact; its metadata holds the version, rows, hashes and timings.
    """
    from components.batch.stage import run_batch_scoring
    from components.common.stage import clean_errors, stage_config
    from components.governance import hooks

    with clean_errors("batch scoring"):
        result = run_batch_scoring(
            stage_config(config_yaml),
            input_uri,
            output_uri or scores.path,
            as_of=as_of,
            timestamp_column=timestamp_column,
            model_version=model_version,
            without_features=without_features,
        )
        info = result.to_dict()
        scores.metadata.update(info)
        hooks.on_batch_scoring(info, pipeline_run_id)
        print(
            f"batch scoring: {result.rows} rows scored by {result.model_name} "
            f"v{result.model_version} -> {result.output}"
        )
        return result.batch_id
