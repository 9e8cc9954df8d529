"""`seamless notifications test|replay`; registered by pipelines/cli.py:

from pipelines.notify_cli import notifications_app
app.add_typer(notifications_app, name="notifications")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from components.common.notifications_config import NotificationsConfig
from pipelines.output import JsonOpt, WsConfigOpt, stdout_console

notifications_app = typer.Typer(
    help="Webhooks for promotions, rejections, rollbacks, drift and failed validations.",
    no_args_is_help=True,
)
WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace (holds the dead-letter file).")
]


def _notifications(config: Path | None, workspace: Path) -> NotificationsConfig:
    from components.common.config import load_config
    from components.common.errors import SeamlessError
    from pipelines.local import use_workspace
    from pipelines.workspace import resolve_config

    cfg = load_config(resolve_config(config, workspace))
    use_workspace(workspace)
    if not cfg.notifications.receivers:
        raise SeamlessError(
            f"The config of {cfg.name} has no `notifications.receivers`: nothing to send to."
        )
    return cfg.notifications


@notifications_app.command("test")
def test_cmd(config: WsConfigOpt = None, workspace: WorkspaceOpt = Path(".seamless")) -> None:
    """Send a test event to every receiver. Exit status 1 if any did not take it.

    Example: SEAMLESS_WEBHOOK_OPS=https://hooks.example.com/... seamless notifications test
    """
    from components.governance.notify import send_test

    results = send_test(_notifications(config, workspace))
    out = stdout_console()
    for name, error in results.items():
        out.print(f"{name}: {'ok' if error is None else error}", markup=False)
    if any(error is not None for error in results.values()):
        raise typer.Exit(1)


@notifications_app.command("replay")
def replay_cmd(
    config: WsConfigOpt = None,
    workspace: WorkspaceOpt = Path(".seamless"),
    dead_letter: Annotated[
        Path | None,
        typer.Option(
            help="Dead-letter file (default: the config's `notifications.dead_letter`, "
            "else <workspace>/notifications/dead-letter.jsonl)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send the dead-lettered events again; those that fail again stay. Exit status 1
    if any stayed.

    Example: seamless notifications replay --workspace .seamless
    """
    from dataclasses import asdict

    from components.governance.notify import replay

    result = replay(_notifications(config, workspace), dead_letter)
    if as_json:
        print(json.dumps(asdict(result), indent=2))
    else:
        out = stdout_console()
        out.print(f"sent {result.sent}, kept {result.kept}", markup=False)
        for error in result.errors:
            out.print(f"  {error}", markup=False)
        for name in result.unknown_receivers:
            out.print(
                f"  receiver {name!r} is not in the config: its events were kept", markup=False
            )
    if result.kept:
        raise typer.Exit(1)
