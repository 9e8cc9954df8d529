"""The training pipeline: ingest -> validate -> features -> train -> evaluate -> register -> deploy.

Nothing past validation runs when a critical expectation fails; deploy runs only when
the evaluation gate says `promote`. Gates compare a component's single `str` return
(`outputs["Output"]`): kfp.local cannot evaluate conditions on NamedTuple outputs.
"""

# No `from __future__ import annotations` here: KFP reads the annotations as types.
from kfp import dsl

from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.features.component import features
from components.ingest.component import ingest
from components.register.component import register
from components.train.component import train
from components.validate.component import validate

PIPELINE_NAME = "seamless-training"


def build_training_pipeline(retries: int = 2):  # type: ignore[no-untyped-def]
    """The pipeline, with `retries` per step (for transient failures on a cluster).

    Local runs build it with no retries: there a failure is bad input or a bug, and
    kfp.local would otherwise repeat it with backoff before saying so.
    """

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Raw data to a registered, gated, deployed champion model.",
    )
    def training_pipeline(config_yaml: str, data_dir: str = "") -> str:
        """Returns the validation decision (`pass`, `warn` or `fail`)."""
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        ingested = ingest(config_yaml=config_yaml, data_dir=data_dir).set_display_name("ingest")
        checked = validate(config_yaml=config_yaml, dataset=ingested.outputs["dataset"])
        checked.set_display_name("validate")
        with dsl.If(checked.outputs["Output"] != "fail", name="data-is-valid"):
            feats = features(config_yaml=config_yaml, dataset=ingested.outputs["dataset"])
            trained = train(
                config_yaml=config_yaml,
                training_set=feats.outputs["training_set"],
                pipeline_run_id=run_id,
            )
            judged = evaluate(
                config_yaml=config_yaml,
                model=trained.outputs["model"],
                holdout=trained.outputs["holdout"],
            )
            registered = register(
                config_yaml=config_yaml,
                model=trained.outputs["model"],
                evaluation=judged.outputs["decision"],
                decision=judged.outputs["Output"],
                validation_decision=checked.outputs["Output"],
                feature_service=feats.outputs["Output"],
                pipeline_run_id=run_id,
            )
            with dsl.If(judged.outputs["Output"] == "promote", name="challenger-wins"):
                deploy(config_yaml=config_yaml, version=registered.output, pipeline_run_id=run_id)
        for task in (ingested, checked, feats, trained, judged, registered):
            if retries:
                task.set_retry(num_retries=retries, backoff_duration="30s")
            task.set_cpu_limit("2").set_memory_limit("4G")
        return checked.outputs["Output"]

    return training_pipeline


training_pipeline = build_training_pipeline(retries=2)
"""The pipeline as compiled for Kubeflow (pipelines/compiled/training.yaml)."""
