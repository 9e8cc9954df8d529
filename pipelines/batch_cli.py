"""`seamless run batch-scoring`; registered by pipelines/cli.py on the `run` group."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from components.common.errors import SeamlessError
from pipelines.cli_options import OutcomeJsonOpt, RunnerOpt
from pipelines.output import WsConfigOpt, counted, require_access, stdout_console


def _local_output(output: str | None, workspace: Path, runner: str) -> str:
    """Where the scores go: `output`, else `<workspace>/batch/scores-<time>.parquet`."""
    from components.common.storage import is_remote

    if output and is_remote(output):
        if runner != "subprocess":
            raise SeamlessError(
                f"--output {output} is in object storage, which the {runner} runner's "
                "containers cannot reach; use --runner subprocess."
            )
        return output
    ws = workspace.resolve()
    path = (
        Path(output).resolve()
        if output
        else ws / "batch" / f"scores-{time.strftime('%Y%m%d-%H%M%S')}.parquet"
    )
    if runner != "subprocess" and not path.is_relative_to(ws):
        raise SeamlessError(
            f"--output {path} is outside the workspace {ws}, which is all the {runner} "
            "runner's containers may write; put it under the workspace."
        )
    if path.exists() and not output:
        raise SeamlessError(f"{path} exists already; give --output.")
    if path.is_dir():
        raise SeamlessError(f"--output {path} is a folder; give a .parquet file name.")
    return str(path)


def batch_scoring_cmd(
    input_table: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            help="Entities to score: a .parquet or .csv file, or a Parquet folder (local or "
            "s3://...), with the config's entity key column.",
        ),
    ],
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="Score every row with the features known at this instant (ISO 8601, "
            "e.g. 2025-06-30T00:00:00Z; no zone means UTC).",
        ),
    ] = "",
    timestamp_column: Annotated[
        str,
        typer.Option(
            "--timestamp-column", help="Score each row at its own time, from this column."
        ),
    ] = "",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Parquet file for the scores (local or s3://...); default "
            "<workspace>/batch/scores-<time>.parquet.",
        ),
    ] = None,
    model_version: Annotated[
        str, typer.Option("--model-version", help="Version to score with (default: champion).")
    ] = "",
    without_features: Annotated[
        str,
        typer.Option(
            "--without-features",
            help="Rows no feature view has a value for at their instant: fail (refuse the "
            "input, as serving answers 404), skip (leave them out, counted) or impute (score "
            "them on imputed values, counted).",
        ),
    ] = "fail",
    config: WsConfigOpt = None,
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Workspace with MLflow and Feast.")
    ] = Path(".seamless"),
    runner: RunnerOpt = "subprocess",
    as_json: OutcomeJsonOpt = False,
) -> None:
    """Score a table with the champion (or --model-version) and point-in-time features
    from the offline store; write the scores as Parquet, log them to the prediction log
    (route `batch`) and record the run in the audit trail and lineage.

    Exit status: 0 scored, 1 error (nothing written).

    Example: seamless run batch-scoring --input new_applications.parquet --as-of 2025-12-31
    """
    from components.batch.scoring import read_entities
    from components.batch.stage import check_without_features
    from components.common.config import load_config
    from components.common.storage import is_remote
    from pipelines.local import run_batch_scoring, use_workspace
    from pipelines.workspace import resolve_config

    check_without_features(without_features)
    config_path = resolve_config(config, workspace)
    source = input_table if is_remote(input_table) else str(Path(input_table).resolve())
    # The arguments and the input's columns, before a step starts (the step checks the rows).
    read_entities(load_config(config_path), source, as_of, timestamp_column, rows=False)
    use_workspace(workspace)
    require_access("run_pipeline")
    target = _local_output(output, workspace, runner)
    arguments = {
        "input_uri": source,
        "as_of": as_of,
        "timestamp_column": timestamp_column,
        "output_uri": target,
        "model_version": model_version,
        "without_features": without_features,
    }
    with Console(stderr=True).status("Running the batch scoring pipeline"):
        result = run_batch_scoring(config_path, workspace, arguments, runner)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    print_result(result)


def print_result(result: dict[str, Any]) -> None:
    out = stdout_console()
    table = Table(title=f"Batch {result['batch_id']}", show_header=False)
    left_out = int(result.get("rows_left_out", 0))
    rows = [
        ("model", f"{result['model_name']} v{result['model_version']}"),
        ("input", f"{result['input']} ({counted(result['rows'] + left_out, 'row')})"),
        *((("rows scored", str(result["rows"])),) if left_out else ()),
        ("scored at", ", ".join(f"{k} {v}" for k, v in result["timing"].items())),
        ("positives", f"{result['positives']} (score >= {result['threshold']})"),
        ("rows with no feature at all", _without_line(result)),
        *(
            (f"rows without view {view}", str(n))
            for view, n in result["rows_without_features"].items()
        ),
        ("scores", f"{result['output']} (sha256 {result['output_sha256'][:12]})"),
        ("prediction log", result["prediction_log"]),
        ("seconds", f"{result['seconds']}"),
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    out.print(table)
    if result["rows_without_any_feature"]:
        what = (
            "left out of the scores"
            if result["without_features"] == "skip"
            else "scored on imputed values only"
        )
        out.print(
            f"[yellow]{counted(result['rows_without_any_feature'], 'input row')} without any "
            f"feature value at the instant scored: {what} (--without-features "
            f"{result['without_features']}).[/yellow]"
        )


def _without_line(result: dict[str, Any]) -> str:
    n = result["rows_without_any_feature"]
    if not n:
        return "0"
    return f"{n}, " + ("left out" if result["without_features"] == "skip" else "imputed")
