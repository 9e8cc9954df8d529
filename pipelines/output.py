"""Where command output goes: a rich Console on stdout whose width suits the reader.

On a terminal, rich uses the terminal's width. Piped or redirected, rich would assume 80
columns and fold or cut tables and trees (`seamless lineage | less`, logs in CI); there
is no terminal to fit, so the width is effectively unbounded and lines are as long as
their content. `COLUMNS`, when set, still wins.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPED_WIDTH = 10_000
"""Columns assumed when stdout is not a terminal (rich's own default is 80)."""


def stdout_console() -> Console:
    """A Console for a command's output (tables, trees, summaries) on stdout."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return Console(soft_wrap=True)
    return Console(soft_wrap=True, width=PIPED_WIDTH)
