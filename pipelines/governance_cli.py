"""`seamless audit verify|show` and `seamless lineage`; registered by pipelines/cli.py:

from pipelines.governance_cli import audit_app, lineage_cmd
app.add_typer(audit_app, name="audit")
app.command("lineage")(lineage_cmd)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.output import JsonOpt, stdout_console

audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)

WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace folder (audit log, snapshots).")
]
DEFAULT_WORKSPACE = Path(".seamless")


def _use(workspace: Path) -> None:
    from pipelines.local import use_workspace

    use_workspace(workspace)


@audit_app.command("verify")
def audit_verify_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    expected_head: Annotated[
        str | None,
        typer.Option(
            help="Head hash published earlier, as `audit verify` prints it (or its first 12+ "
            "hex digits); the chain must still hold that entry (catches a cut-off end)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the audit chain. Exit status: 0 intact, 1 tampered (the first bad entry is
    named), 2 only a torn last line from a crashed writer (the next append repairs it).

    Example: seamless audit verify --workspace .seamless
    """
    from components.governance.access import require
    from components.governance.audit import audit_log

    _use(workspace)
    require("audit_verify", "audit")
    result = audit_log().verify(expected_head=expected_head)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        Console(soft_wrap=True, stderr=not result.ok).print(result.message(), markup=False)
    if result.status == "torn_tail":
        raise typer.Exit(2)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("show")
def audit_show_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Latest N entries.", min=1)] = 50,
    subject: Annotated[
        str | None, typer.Option(help="Only entries about this subject (e.g. model:NAME/3).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON entry per line.")] = False,
) -> None:
    """Show the latest audit entries (oldest first).

    Example: seamless audit show --limit 20 --subject model:credit-risk/3
    """
    from components.governance.access import require
    from components.governance.audit import audit_log

    _use(workspace)
    require("audit_show", "audit")
    entries = [e for e in audit_log().entries() if subject is None or e.get("subject") == subject]
    entries = entries[-limit:]
    if as_json:
        for e in entries:
            print(json.dumps(e, sort_keys=True))
        return
    table = Table(title=f"audit trail (last {len(entries)})")
    for col in ("seq", "time", "actor", "action", "subject", "details"):
        table.add_column(col, overflow="fold")
    for e in entries:
        details = json.dumps(e.get("details"), sort_keys=True)
        table.add_row(
            str(e.get("seq")),
            str(e.get("time")),
            str(e.get("actor")),
            str(e.get("action")),
            str(e.get("subject")),
            details if len(details) <= 120 else details[:117] + "...",
        )
    stdout_console().print(table)


def lineage_cmd(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Registered model (default: the model of the config)."),
    ] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="Its version.")] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", "-r", help="A prediction's request id.")
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Use-case YAML config naming the model (default: the one the workspace was "
            "trained with, else the bundled demo); must match the workspace's.",
            show_default=False,
        ),
    ] = None,
    predictions_dir: Annotated[
        Path | None,
        typer.Option(help="Prediction log folder (default <workspace>/predictions)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
    openlineage: Annotated[
        bool,
        typer.Option(
            "--openlineage",
            help="Also append the chain as OpenLineage events to "
            "<workspace>/lineage/openlineage.jsonl.",
        ),
    ] = False,
) -> None:
    """Where a model version (or one prediction) came from: sources, snapshot, validation,
    features, training run, version, deployments and the decisions that touched it.

    Example: seamless lineage --version 3            (the workspace's model)
    Example: seamless lineage --model credit_risk --version 3
    Example: seamless lineage --request-id 5f0c... --json
    """
    from components.common.config import load_config
    from components.common.errors import SeamlessError
    from components.governance.access import require
    from components.governance.lineage import (
        export_openlineage,
        model_lineage,
        render_tree,
        request_lineage,
    )
    from pipelines.workspace import resolve_config

    by_model = model is not None or version is not None
    if by_model == (request_id is not None) or (by_model and not version):
        raise SeamlessError("Give either [--model NAME] --version N, or --request-id ID.")
    if config is not None or (model is None and request_id is None):
        # The model comes from the config, or the config is checked against the workspace.
        config_path = resolve_config(config, workspace)
        if model is None and request_id is None:
            model = load_config(config_path).model.name
    _use(workspace)
    require("view", "lineage")
    if request_id is not None:
        chain = request_lineage(request_id, predictions_dir)
    else:
        assert model is not None and version is not None
        chain = model_lineage(model, version)
    written = export_openlineage(chain) if openlineage else None
    if as_json:
        print(json.dumps(chain, indent=2, default=str))
    else:
        out = stdout_console()
        out.print(render_tree(chain))
        if written:
            out.print(f"OpenLineage events appended to {written}")
