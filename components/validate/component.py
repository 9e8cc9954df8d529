"""KFP component: run the config's Great Expectations suite over the ingested tables."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.common.image import seamless_component


@seamless_component
def validate(
    config_yaml: str,
    dataset: Input[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
    pipeline_run_id: str = "",
) -> str:
    """Returns the decision: `pass`, `warn` (warnings failed) or `fail` (a critical failed)."""
    from components.common.stage import clean_errors, stage_config
    from components.governance import hooks
    from components.validate.stage import run_validation

    with clean_errors("validate"):
        config = stage_config(config_yaml)
        result = run_validation(config, dataset.path, report.path)
        counts = result.summary_metrics()
        for key, value in counts.items():
            metrics.log_metric(key, value)
        report.metadata["decision"] = result.decision
        hooks.on_validate(
            dataset.path,
            report.path,
            result.decision,
            pipeline_run_id,
            notifications=config.notifications,
            counts=counts,
        )
        return str(result.decision)
