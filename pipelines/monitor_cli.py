"""`seamless monitor run`: one monitoring check of the served model, in this process.

Register in pipelines/cli.py with
`from pipelines.monitor_cli import monitor_app; app.add_typer(monitor_app, name="monitor")`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipelines.output import JsonOpt, WsConfigOpt

monitor_app = typer.Typer(
    help="Drift, data quality and live performance of the served model.", no_args_is_help=True
)
EXIT_RETRAIN = 3
"""Exit status when the decision is `retrain` (0: ok, not_enough_data or retrain_skipped;
1: error)."""


@monitor_app.command("run")
def monitor_run_cmd(
    config: WsConfigOpt = None,
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Workspace with predictions/ and feedback/.")
    ] = Path(".seamless"),
    model: Annotated[
        str, typer.Option("--model", "-m", help="Alias or version number to monitor.")
    ] = "champion",
    window_hours: Annotated[
        float | None, typer.Option(help="Drift window: last N hours (default: config).")
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option(help="Drift window: latest N predictions at most.")
    ] = None,
    label_window_hours: Annotated[
        float | None, typer.Option(help="Performance window: last N hours of predictions.")
    ] = None,
    max_labels: Annotated[
        int | None, typer.Option(help="Performance window: latest N labelled predictions.")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(help="Compare with the 'served' baseline or the 'training' rows."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The data a retrain would ingest (for the retrain guard)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="HTML report path (default <workspace>/monitoring/report.html)."),
    ] = None,
    textfile: Annotated[
        Path | None,
        typer.Option(help="Prometheus textfile (default <workspace>/monitoring/*.prom)."),
    ] = None,
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Do not log an MLflow run.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare served traffic with the model's training profile and its live labels.

    Exit status: 0 ok, not enough data or retrain skipped (drift that already had its
    retrain on the same data), 3 retrain, 1 error.

    Example: seamless monitor run --workspace .seamless --window-hours 24
    """
    from components.common.config import load_config
    from components.monitor.stage import default_textfile, run_monitoring
    from pipelines.local import use_workspace
    from pipelines.output import stdout_console
    from pipelines.workspace import resolve_config

    cfg = load_config(resolve_config(config, workspace))
    use_workspace(workspace)
    ws = workspace.resolve()
    report_path = report or ws / "monitoring" / "report.html"
    result = run_monitoring(
        cfg,
        model_alias=model,
        workspace=ws,
        report_path=report_path,
        textfile_path=textfile or default_textfile(ws),
        log_to_mlflow=not no_mlflow,
        window_hours=window_hours,
        max_rows=max_rows,
        label_window_hours=label_window_hours,
        max_labels=max_labels,
        reference=reference,
        data_dir=data_dir,
    )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        out = stdout_console()
        out.print(f"{result.model_name} v{result.model_version}: [bold]{result.decision}[/bold]")
        out.print(result.reason)
        out.print(f"Report (HTML): {report_path}")
    if result.decision == "retrain":
        raise typer.Exit(EXIT_RETRAIN)
