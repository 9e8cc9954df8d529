"""The monitoring pipeline: post-deploy check -> monitor -> (drift or breach) retrain.

Retraining reuses the training pipeline as a sub-pipeline, so its gate decides whether
the retrained model is promoted. Schedule it as a recurring run (`seamless submit
--pipeline monitoring --cron ...`) or run it locally (`seamless run monitoring`).
"""

# No `from __future__ import annotations` here: KFP reads the annotations as types.
from typing import Any

from kfp import dsl

from components.monitor.component import monitor, post_deploy_check
from pipelines.training import (
    build_training_pipeline,
    may_notify,
    size_step,
    wire_for_kubernetes,
)

PIPELINE_NAME = "seamless-monitoring"


def build_monitoring_pipeline(retries: int = 2, cluster: bool = False):  # type: ignore[no-untyped-def]
    """Same knobs as the training pipeline (see `build_training_pipeline`)."""
    training = build_training_pipeline(retries=retries, cluster=cluster)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Roll back a regressing champion; retrain on drift or a performance breach.",
    )
    def monitoring_pipeline(
        config_yaml: str, data_dir: str = "", window_hours: float = 0.0, max_rows: int = 0
    ) -> str:
        """Returns the monitoring decision: retrain, ok, not_enough_data or retrain_skipped."""
        checked = post_deploy_check(config_yaml=config_yaml).set_display_name("post-deploy-check")
        watched = monitor(
            config_yaml=config_yaml,
            window_hours=window_hours,
            max_rows=max_rows,
            data_dir=data_dir,
        ).after(checked)
        watched.set_display_name("monitor")
        with dsl.If(watched.outputs["Output"] == "retrain", name="drift-or-breach"):
            training(config_yaml=config_yaml, data_dir=data_dir).set_display_name("retrain")
        for task in (checked, watched):
            size_step(task, retries, cpu="250m", memory=("512M", "2G"))
            if cluster:
                wire_for_kubernetes(task)
                may_notify(task)  # drift verdicts, and the post-deploy check's rollback
        return watched.outputs["Output"]

    return monitoring_pipeline


_built: list[Any] = []


def __getattr__(name: str) -> Any:
    """`monitoring_pipeline`, as compiled for Kubeflow (pipelines/compiled/monitoring.yaml),
    built on first use like the training pipeline's variants."""
    if name != "monitoring_pipeline":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _built:
        _built.append(build_monitoring_pipeline(retries=2, cluster=True))
    return _built[0]
