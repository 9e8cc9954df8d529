"""KFP component: drift, data quality and live performance of the served model."""

from kfp.dsl import HTML, Metrics, Output

from components.common.image import seamless_component


@seamless_component
def monitor(
    config_yaml: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    model_alias: str = "champion",
    window_hours: float = 0.0,
    max_rows: int = 0,
    label_window_hours: float = 0.0,
    max_labels: int = 0,
    data_dir: str = "",
) -> str:
    """Returns the decision `retrain`, `ok`, `not_enough_data` or `retrain_skipped`
    (gate on `retrain` with dsl.If).

    Reads serving's prediction and feedback logs (`<workspace>/predictions/` and
    `feedback/`, or the PostgreSQL tables of SEAMLESS_SERVE_LOG_URL); window parameters left
    at 0 use the config's `monitoring:` values. `data_dir` is what the retrain would
    ingest: a second `retrain` for the same version on the same data (source hash) with no
    new signal is `retrain_skipped`. Gauges go to
    `<workspace>/monitoring/seamless_monitor.prom`; the run is logged to MLflow.
    """
    from components.common.env import workspace
    from components.common.stage import clean_errors, stage_config
    from components.monitor.stage import default_textfile, run_monitoring

    with clean_errors("monitor"):
        config = stage_config(config_yaml)
        result = run_monitoring(
            config,
            model_alias=model_alias,
            report_path=report.path,
            textfile_path=default_textfile(workspace()),
            window_hours=window_hours,
            max_rows=max_rows,
            label_window_hours=label_window_hours,
            max_labels=max_labels,
            data_dir=data_dir or None,
        )
        for key, value in result.summary_metrics().items():
            metrics.log_metric(key, value)
        report.metadata.update(
            {
                "decision": result.decision,
                "model_version": result.model_version,
                "mlflow_run_id": result.mlflow_run_id or "",
            }
        )
        print(f"monitor: {result.decision}: {result.reason}")
        return str(result.decision)


@seamless_component
def post_deploy_check(config_yaml: str) -> str:
    """Keep or roll back the champion on live metrics; returns keep, rollback,
    not_enough_data or no_previous (the reason is in the step log and the audit trail)."""
    from components.common.env import deployments_dir, workspace
    from components.common.stage import clean_errors, stage_config
    from components.monitor.postdeploy import check_and_act

    with clean_errors("post-deploy check"):
        result = check_and_act(stage_config(config_yaml), workspace(), deployments_dir())
        print(f"post-deploy check: {result.decision}: {result.reason}")
        return result.decision
