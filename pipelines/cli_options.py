"""Options that commands in more than one CLI module declare the same (flag, type, help),
so each is written once. The defaults stay at each command. Kept apart from
pipelines/cli.py, which imports the other *_cli modules, so they can import these
without a cycle."""

from __future__ import annotations

from typing import Annotated

import typer

RunnerOpt = Annotated[str, typer.Option("--runner", help="kfp.local runner: subprocess or docker.")]
"""The --runner option of the `run` commands that start a pipeline with kfp.local."""

OutcomeJsonOpt = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")]
"""The --json option of the `run` commands, which print a pipeline run's outcome."""

LogLevelOpt = Annotated[str, typer.Option("--log-level", help="Log level.")]
"""The --log-level option of the commands that serve under uvicorn (serving, the
dashboard)."""
