"""The `seamless` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.common.config import default_config_path, load_config
from components.common.errors import SeamlessError
from pipelines.cli_options import OutcomeJsonOpt, RunnerOpt
from pipelines.output import WsConfigOpt, require_access, stdout_console

if TYPE_CHECKING:
    from pipelines.workspace import TrainingConfig

app = typer.Typer(
    help="Seamless: raw data to a monitored model, as Kubeflow Pipelines components.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Run a pipeline locally (embedded mode).", no_args_is_help=True)
datasets_app = typer.Typer(help="Demo data sets.", no_args_is_help=True)
features_app = typer.Typer(help="The Feast feature store.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(datasets_app, name="datasets")
app.add_typer(features_app, name="features")

console = Console(stderr=True, log_path=False, soft_wrap=True)
DEFAULT_CONFIG = default_config_path()
DEFAULT_WORKSPACE = Path(".seamless")
DEFAULT_DEMO_DATA = Path(".seamless/data/demo")
ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Use-case YAML config (default: bundled credit-risk)."),
]
PipelineRootOpt = Annotated[
    str | None,
    typer.Option(
        envvar="SEAMLESS_PIPELINE_ROOT",
        help="Where KFP keeps run artifacts, e.g. s3://bucket/pipelines (SEAMLESS_PIPELINE_ROOT): "
        "compile writes it into the specs as their default, submit uses it for this run "
        "(default: the cluster's).",
    ),
]
WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace folder for MLflow, Feast, KFP outputs.")
]


def _workspace_config(config: Path | None, workspace: Path) -> Path:
    """The config to run with against the workspace (pipelines/workspace.py)."""
    from pipelines.workspace import resolve_config

    return resolve_config(config, workspace)


def _training_config(config: Path | None, workspace: Path) -> TrainingConfig:
    """The config a training run uses, loaded (a bad one fails before any write); says so
    when it changes the workspace's."""
    from pipelines.workspace import resolve_training_config

    resolved = resolve_training_config(config, workspace)
    if resolved.changed:
        console.print(
            "The workspace's recorded config changes with this run "
            f"({', '.join(resolved.changed)})."
        )
    return resolved


@run_app.command("training")
def run_training_cmd(
    config: WsConfigOpt = None,
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir",
            "-d",
            help="Folder or object store prefix (s3://bucket/data) that relative file "
            "sources resolve against.",
        ),
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    runner: Annotated[
        str,
        typer.Option(
            help="kfp.local runner: subprocess (this environment) or docker (every step "
            "in the runtime image; build it with `make images`)."
        ),
    ] = "subprocess",
    as_json: OutcomeJsonOpt = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Stream every step's log too.")
    ] = False,
) -> None:
    """Run the training pipeline (ingest -> ... -> deploy) with kfp.local.

    Step logs are written to <workspace>/logs/. Exit status: 0 trained (promoted or
    not), 1 error, 2 a critical expectation failed (nothing trained or registered).

    Example: seamless run training --data-dir .seamless/data/demo [--runner docker]
    """
    from pipelines.local import run_training, use_workspace

    resolved = _training_config(config, workspace)
    use_workspace(workspace)
    _require("run_pipeline")
    steps = ["ingest", "validate", "features", "materialize", "train", "evaluate", "register"]
    steps.append("deploy")
    with console.status("Starting the training pipeline") as spinner:

        def on_step(name: str) -> None:
            n = steps.index(name) + 1 if name in steps else "?"
            console.log(f"step {n}/{len(steps)}: {name}")
            spinner.update(f"Running {name}")

        outcome = run_training(
            resolved.path,
            data_dir,
            workspace,
            runner=runner,
            on_step=on_step,
            verbose=verbose,
            config=resolved.config,
        )
    if as_json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        _print_outcome(outcome.to_dict(), workspace)
    if outcome.validation == "fail":
        failures = (outcome.data.get("validation") or {}).get("failures") or []
        console.print(
            "[red]A critical expectation failed: nothing was trained or registered.[/red]"
        )
        for sentence in failures:
            console.print(f"  {escape(sentence)}", soft_wrap=True)
        console.print(f"See the report: {outcome.reports.get('validation', '(not found)')}")
        raise typer.Exit(2)


@run_app.command("monitoring")
def run_monitoring_cmd(
    config: WsConfigOpt = None,
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir",
            "-d",
            help="Fresh data for a retrain, if one is triggered (a folder or s3://bucket/data).",
        ),
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    window_hours: Annotated[
        float,
        typer.Option(help="Traffic window in hours (0: the config's monitoring.window_hours)."),
    ] = 0.0,
    runner: RunnerOpt = "subprocess",
    as_json: OutcomeJsonOpt = False,
) -> None:
    """Run the monitoring pipeline: post-deploy check (automatic rollback), drift and live
    performance, and a retrain through the training pipeline on drift or a breach.

    Exit status: 0 ok / not enough data / retrained, 1 error.

    Example: seamless run monitoring --data-dir data/fresh --window-hours 24
    """
    from pipelines.local import run_monitoring, use_workspace

    config = _workspace_config(config, workspace)
    load_config(config)
    use_workspace(workspace)
    _require("run_pipeline")
    with console.status("Running the monitoring pipeline") as spinner:

        def on_step(name: str) -> None:
            console.log(f"step: {name}")
            spinner.update(f"Running {name}")

        outcome = run_monitoring(
            config, data_dir, workspace, runner, window_hours=window_hours, on_step=on_step
        )
    if as_json:
        print(json.dumps(outcome.to_dict(), indent=2, default=str))
        return
    out = stdout_console()
    out.print(f"monitoring decision: [bold]{outcome.decision}[/bold]")
    out.print(f"champion: v{outcome.champion_before} -> v{outcome.champion_after}")
    for event in outcome.events:
        if event["action"] in ("monitoring_decision", "rollback", "promotion", "deployment"):
            detail = event["details"].get("reason") or event["details"].get("decision") or ""
            out.print(f"  {event['action']:<20} {event['subject']:<28} {detail}")
    for name, path in outcome.reports.items():
        out.print(f"{name.capitalize()} report (HTML): {path}")
    _print_undelivered(outcome.to_dict())


@app.command("demo-loop")
def demo_loop_cmd(
    config: WsConfigOpt = None,
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="A workspace of its own for the loop.")
    ] = Path(".seamless-loop"),
    rows: Annotated[int, typer.Option(help="Label rows per generated period.")] = 20_000,
) -> None:
    """Run the closed loop locally: champion, serving, quiet and drifted traffic, retrain,
    a degraded promotion and its automatic rollback; ends with every decision.

    Example: seamless demo-loop --workspace .seamless-loop
    """
    from pipelines.demo_loop import run_demo_loop
    from pipelines.local import use_workspace

    resolved = _training_config(config, workspace)
    use_workspace(workspace)
    _require("run_pipeline")
    events = run_demo_loop(workspace, resolved.path, rows, say=lambda line: console.print(line))
    table = Table(title="Decisions (from the audit trail)")
    for column in ("time", "action", "subject", "reason / outcome"):
        table.add_column(column)
    for e in events:
        if e["action"] not in ("promotion", "rollback", "monitoring_decision", "deployment"):
            continue
        details = e.get("details") or {}
        why = details.get("reason") or details.get("decision") or details.get("model_uri") or ""
        table.add_row(e["time"][11:19], e["action"], e["subject"], str(why)[:160])
    stdout_console().print(table)


@app.command("promote")
def promote_cmd(
    version: Annotated[str, typer.Option("--version", help="Model version to make champion.")],
    reason: Annotated[
        str | None,
        typer.Option(
            help="Why (recorded in the audit trail); required with --override-compliance."
        ),
    ] = None,
    override_compliance: Annotated[
        bool,
        typer.Option(
            "--override-compliance",
            help="Promote a version that failed (or was never checked against) the config's "
            "compliance policy; admin role only, needs --reason, audited.",
        ),
    ] = False,
    config: WsConfigOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Make a model version the champion by hand (previous one kept for rollback).

    A version that failed the compliance policy is refused unless an admin gives
    --override-compliance with --reason; the override is audited and joins the model
    card's approval trail.

    Example: seamless promote --version 3 --reason "approved by risk committee"
    """
    from components.common.env import deployments_dir
    from components.register.operations import promote
    from pipelines.local import use_workspace

    if override_compliance and not (reason or "").strip():
        raise SeamlessError(
            "--override-compliance needs --reason saying why the policy is set aside."
        )
    cfg = load_config(_workspace_config(config, workspace))
    use_workspace(workspace)
    move = promote(
        cfg.model.name,
        version,
        reason or "manual",
        deployments_dir(),
        cfg.notifications,
        override_compliance=override_compliance,
        policy_declared=cfg.compliance is not None,
    )
    stdout_console().print(
        f"{move.model_name}: champion v{move.champion} (previous champion v{move.replaced})"
        + (", compliance policy overridden" if move.compliance_overridden else "")
    )


@app.command("rollback")
def rollback_cmd(
    to: Annotated[
        str | None, typer.Option("--to", help="Version to roll back to (default: previous).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "manual",
    config: WsConfigOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Move the champion back to the previous champion (or to --to).

    Example: seamless rollback --reason "complaints about declines"
    """
    from components.common.env import deployments_dir
    from components.register.operations import rollback
    from pipelines.local import use_workspace

    cfg = load_config(_workspace_config(config, workspace))
    use_workspace(workspace)
    move = rollback(cfg.model.name, to, reason, deployments_dir(), cfg.notifications)
    stdout_console().print(
        f"{move.model_name}: champion back to v{move.champion} (from v{move.replaced})"
    )


def _print_undelivered(outcome: dict) -> None:
    """Events no receiver took: the steps said so in their logs; the summary says it too."""
    missed = outcome.get("notifications_not_sent") or []
    if missed:
        out = stdout_console()
        out.print("Notifications not delivered (kept; `seamless notifications replay`):")
        for line in missed:
            out.print(f"  {escape(line)}", soft_wrap=True)


def _print_outcome(outcome: dict, workspace: Path) -> None:
    from pipelines.run_summary import data_lines

    table = Table(title="Seamless training run", show_header=False)
    table.add_row("validation", str(outcome["validation"]))
    table.add_row("new version", str(outcome.get("version") or "-"))
    decision = f"{outcome.get('decision') or '-'}: {outcome.get('reason') or ''}"
    table.add_row("decision", escape(decision))  # reasons quote config values
    if outcome.get("compliance"):
        table.add_row("compliance", str(outcome["compliance"]))
    if outcome.get("model_card"):
        table.add_row("model card", str(outcome["model_card"]))
    champ = outcome.get("champion_version")
    metrics = outcome.get("champion_metrics") or {}
    table.add_row("champion", f"{outcome['model_name']} v{champ}" if champ else "none")
    if "roc_auc" in metrics:
        table.add_row("champion ROC AUC", f"{metrics['roc_auc']:.4f}")
    table.add_row("wall time", f"{outcome.get('seconds', 0):.1f} s")
    table.add_row("step logs", str(outcome.get("log_file", "")))
    out = stdout_console()
    out.print(table)
    data = outcome.get("data") or {}
    changed = data_lines(data)
    if changed:
        out.print(
            "Data changed at ingest or left out of training "
            "(counted; details in the validation report):"
        )
        for line in changed:
            out.print(f"  {escape(line)}", soft_wrap=True)
    failures = (data.get("validation") or {}).get("failures") or []
    warnings = [f for f in failures if f.startswith("warning")]
    if warnings and outcome.get("validation") != "fail":
        out.print("Validation warnings:")
        for sentence in warnings:
            out.print(f"  {escape(sentence)}", soft_wrap=True)
    for name, path in (outcome.get("reports") or {}).items():
        out.print(f"{name.capitalize()} report (HTML): {path}")
    _print_undelivered(outcome)
    db = Path(workspace).resolve() / "mlflow" / "mlflow.db"
    # The mlflow beside this interpreter, so the hint works from any folder.
    mlflow = Path(sys.executable).parent / "mlflow"
    out.print(f"MLflow UI: {mlflow} ui --backend-store-uri sqlite:///{db}")


@app.command("compile")
def compile_cmd(
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default pipelines/compiled).")
    ] = None,
    image_prefix: Annotated[
        str | None,
        typer.Option(
            envvar="SEAMLESS_IMAGE_PREFIX",
            help="Registry prefix of every image, e.g. ghcr.io/acme/seamless "
            "(SEAMLESS_IMAGE_PREFIX; default: the config's image_prefix, else local names).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Use-case config whose image_prefix to use."),
    ] = None,
    image_digests: Annotated[
        Path | None,
        typer.Option(help="Pushed digests to pin to (default build/images/digests.json)."),
    ] = None,
    pipeline_root: PipelineRootOpt = None,
) -> None:
    """Compile every pipeline to a KFP v2 spec (YAML).

    With a registry prefix every image is <prefix>/<name>:<tag>, or <prefix>/<name>@sha256:...
    when `make push` recorded the digest of that tag.

    Example: seamless compile --out /tmp/specs --image-prefix ghcr.io/acme/seamless
    """
    from components.common.image import DIGESTS_FILE, check_prefix
    from pipelines.compile import COMPILED_DIR, compile_all

    if image_prefix:  # an empty SEAMLESS_IMAGE_PREFIX means unset
        check_prefix(image_prefix, "--image-prefix (or SEAMLESS_IMAGE_PREFIX)")
    elif config is not None:
        image_prefix = load_config(config).image_prefix
    if image_digests is not None and not image_digests.is_file():
        raise SeamlessError(f"--image-digests {image_digests} does not exist.")
    if image_digests is not None and not image_prefix:
        raise SeamlessError("--image-digests needs a registry prefix (--image-prefix).")
    if pipeline_root:  # checked before anything is written
        from pipelines.submit import check_pipeline_root, set_pipeline_root

        check_pipeline_root(pipeline_root)
    written = compile_all(out or COMPILED_DIR, image_prefix or None, image_digests or DIGESTS_FILE)
    for path in written:
        if pipeline_root:
            set_pipeline_root(path, pipeline_root, path)
        stdout_console().print(f"wrote {path}")


@datasets_app.command("generate")
def generate_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = DEFAULT_DEMO_DATA,
    rows: Annotated[int, typer.Option("--rows", "-n", help="Label rows.", min=100)] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    drift: Annotated[
        bool, typer.Option("--drift", help="Generate the drifted period that follows.")
    ] = False,
) -> None:
    """Generate the synthetic credit-risk tables (Parquet).

    Example: seamless datasets generate --out data/demo --rows 20000 --seed 1
    """
    from pipelines.demo_data import generate

    with console.status(f"Generating {rows:,} label rows"):
        paths = generate(out, n_rows=rows, seed=seed, drift=drift)
    for table, path in paths.items():
        stdout_console().print(f"{table}: {path}")


@app.command("submit")
def submit_cmd(
    host: Annotated[
        str, typer.Option(envvar="KFP_HOST", help="Kubeflow Pipelines API endpoint (KFP_HOST).")
    ],
    pipeline: Annotated[str, typer.Option(help="Compiled pipeline to submit.")] = "training",
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: Annotated[
        str,
        typer.Option(help="Data location as the cluster sees it (e.g. s3://... or a PVC path)."),
    ] = "",
    token: Annotated[
        str | None, typer.Option(envvar="KFP_TOKEN", help="Bearer token (KFP_TOKEN).")
    ] = None,
    namespace: Annotated[str, typer.Option(help="Kubeflow namespace.")] = "kubeflow",
    experiment: Annotated[str, typer.Option(help="KFP experiment name.")] = "seamless",
    cron: Annotated[
        str | None,
        typer.Option(help="Create a recurring run on this cron schedule instead of one run."),
    ] = None,
    pipeline_root: PipelineRootOpt = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="A pipeline parameter KEY=VALUE (repeatable), e.g. batch-scoring's "
            "input_uri=s3://bucket/new.parquet and as_of=2025-12-31T00:00:00Z.",
        ),
    ] = None,
) -> None:
    """Submit a compiled pipeline to Kubeflow Pipelines (compiling it first if missing).

    Example: seamless submit --host http://localhost:8080 --data-dir s3://bucket/credit
    Example: seamless submit --host $KFP_HOST --cron "0 3 * * *"
    Example: seamless submit --host $KFP_HOST --pipeline batch-scoring --param
    input_uri=s3://bucket/new.parquet --param as_of=2025-12-31T00:00:00Z
    --param output_uri=s3://bucket/scores/2025-12-31.parquet
    """
    from pipelines.submit import run_arguments, submit

    load_config(config)  # a bad config fails here, not inside the cluster
    _require("run_pipeline")
    arguments = run_arguments(
        pipeline, config.read_text(encoding="utf-8"), data_dir, list(param or [])
    )
    done = submit(
        host,
        pipeline,
        arguments,
        token=token,
        namespace=namespace,
        experiment=experiment,
        cron=cron,
        pipeline_root=pipeline_root or None,
    )
    stdout_console().print(f"submitted: run {done.run_id or done.recurring_run_id} ({done.url})")


def _register_subcommands() -> None:
    from pipelines.batch_cli import batch_scoring_cmd
    from pipelines.governance_cli import audit_app, lineage_cmd
    from pipelines.init_cli import init_cmd
    from pipelines.mlflow_cli import mlflow_app
    from pipelines.monitor_cli import monitor_app
    from pipelines.notify_cli import notifications_app
    from pipelines.serve_cli import serve_cmd
    from pipelines.stream_cli import stream_app
    from pipelines.ui_cli import ui_cmd

    run_app.command("batch-scoring")(batch_scoring_cmd)
    app.command("init")(init_cmd)
    app.command("serve")(serve_cmd)
    app.command("ui")(ui_cmd)
    app.add_typer(audit_app, name="audit")
    app.command("lineage")(lineage_cmd)
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(notifications_app, name="notifications")
    app.add_typer(stream_app, name="stream")
    app.add_typer(mlflow_app, name="mlflow")


_register_subcommands()


@features_app.command("materialize")
def materialize_cmd(
    config: WsConfigOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Load new feature values into the online store (what the cluster's CronJob runs).

    Example: seamless features materialize --workspace .seamless
    """
    from components.common.env import feast_repo_path
    from components.features.features import materialize_online
    from pipelines.local import use_workspace

    cfg = load_config(_workspace_config(config, workspace))
    use_workspace(workspace)
    _require("materialize")
    with console.status("Materializing"):
        done = materialize_online(feast_repo_path(), cfg)
    stdout_console().print(f"materialized {', '.join(done['views'])} up to {done['end']}")


@app.command("status")
def status_cmd(
    config: WsConfigOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show the champion: version, holdout metrics, data hash, the runs that produced it.

    Example: seamless status --json
    """
    from pipelines.local import use_workspace
    from pipelines.status import champion_status
    from pipelines.workspace import describe

    config = _workspace_config(config, workspace)
    cfg = load_config(config)
    use_workspace(workspace)
    status = champion_status(cfg)
    status["config"] = describe(workspace) or {"recorded": False, "path": str(config)}
    if as_json:
        print(json.dumps(status, indent=2, default=str))
        return
    champ = status["champion"]
    used = f"config: {status['config']['path']}"
    if champ is None:
        stdout_console().print(f"No champion for {status['model_name']} yet ({used}).")
        return
    table = Table(title=f"{status['model_name']} champion", show_header=False)
    table.add_row("version", champ["version"])
    for key, value in champ["holdout_metrics"].items():
        shown = f"{value:,.0f}" if key == "rows" else f"{value:.4f}"
        table.add_row(f"holdout {key}", shown)
    for key in ("validation", "feature_service", "train_run_id", "pipeline_run_id"):
        table.add_row(key, str(champ[key]))
    table.add_row("previous champion", str(status.get("previous_champion")))
    out = stdout_console()
    out.print(table)
    out.print(f"data sha256: {champ['data_sha256']}")
    out.print(used)


_require = require_access


def main() -> None:
    """Entry point: a SeamlessError is one red sentence and exit status 1."""
    try:
        app()
    except SeamlessError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
