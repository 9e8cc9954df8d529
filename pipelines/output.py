"""What commands share: the --config option of a workspace, a Console on stdout whose
width suits the reader, and the entry point of a command run on its own.

On a terminal, rich uses the terminal's width. Piped or redirected, rich would assume 80
columns and fold or cut tables and trees (`seamless lineage | less`, logs in CI); there
is no terminal to fit, so the width is effectively unbounded and lines are as long as
their content. `COLUMNS`, when set, still wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

PIPED_WIDTH = 10_000
"""Columns assumed when stdout is not a terminal (rich's own default is 80)."""


def stdout_console() -> Console:
    """A Console for a command's output (tables, trees, summaries) on stdout."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return Console(soft_wrap=True)
    return Console(soft_wrap=True, width=PIPED_WIDTH)


def require_access(action: str) -> None:
    """Access check for a mutating command; the steps it starts act as the same principal."""
    from components.governance import access

    who = access.require(action)
    os.environ["SEAMLESS_ACTOR"] = who.actor
    os.environ["SEAMLESS_ROLE"] = who.role


WsConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Use-case YAML config (default: the one the workspace was trained with, else the "
        "bundled credit-risk demo); must match the workspace's.",
        show_default=False,
    ),
]
"""The --config option of every command that works on a trained workspace."""

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
"""The --json option of a command that prints one result."""

NoAuthOpt = Annotated[
    bool, typer.Option("--no-auth", help="Serve without tokens (local development only).")
]
"""The --no-auth option of the commands that serve over HTTP (serving, the dashboard)."""


def run_alone(command: Callable[..., Any]) -> None:
    """`python -m pipelines.<x>_cli`: the command without the `seamless` group; a
    SeamlessError is its one sentence on stderr and exit status 1."""
    from components.common.errors import SeamlessError

    try:
        typer.run(command)
    except SeamlessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None


def counted(count: int, noun: str) -> str:
    """'1 row', '3,000 rows': the count and its noun, plural unless one."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"
