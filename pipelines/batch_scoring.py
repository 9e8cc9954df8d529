"""The batch scoring pipeline: a registered model version (the champion by default)
scores a table of entities with point-in-time features from the offline store.

Run it locally (`seamless run batch-scoring`), submit it (`seamless submit --pipeline
batch-scoring`) or schedule it as a recurring run (`--cron`); on a cluster the scores
go to object storage (`output_uri`) or to the run's artifact.
"""

# No `from __future__ import annotations` here: KFP reads the annotations as types.
from typing import Any

from kfp import dsl

from components.batch.component import batch_score
from pipelines.training import may_pseudonymize, size_step, use_feast_repo, wire_for_kubernetes

PIPELINE_NAME = "seamless-batch-scoring"


def build_batch_scoring_pipeline(retries: int = 2, cluster: bool = False):  # type: ignore[no-untyped-def]
    """Same knobs as the training pipeline (see `build_training_pipeline`)."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Score a table of entities with the champion and point-in-time features.",
    )
    def batch_scoring_pipeline(
        config_yaml: str,
        input_uri: str,
        as_of: str = "",
        timestamp_column: str = "",
        output_uri: str = "",
        model_version: str = "",
        without_features: str = "fail",
    ) -> str:
        """Returns the batch id (the request id of its prediction-log records)."""
        scored = batch_score(
            config_yaml=config_yaml,
            input_uri=input_uri,
            as_of=as_of,
            timestamp_column=timestamp_column,
            output_uri=output_uri,
            model_version=model_version,
            without_features=without_features,
            pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        ).set_display_name("batch-score")
        size_step(scored, retries)
        if cluster:
            wire_for_kubernetes(scored)
            use_feast_repo(scored)  # the SQL registry names the offline tables
            may_pseudonymize(scored)
        return scored.outputs["Output"]

    return batch_scoring_pipeline


_built: list[Any] = []


def __getattr__(name: str) -> Any:
    """`batch_scoring_pipeline`, as compiled for Kubeflow
    (pipelines/compiled/batch-scoring.yaml), built on first use."""
    if name != "batch_scoring_pipeline":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _built:
        _built.append(build_batch_scoring_pipeline(retries=2, cluster=True))
    return _built[0]
