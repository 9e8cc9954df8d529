"""Shared by the benchmarks that compare this tree with a baseline revision in one run:
a child interpreter that answers in JSON, and rounds that alternate the two trees."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scale import ROOT, worktree


def bench_parser(doc: str | None, rounds: int) -> argparse.ArgumentParser:
    """The arguments every such benchmark takes: `--rounds` and `--out` (a Markdown file
    the results table is appended to)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file")
    return parser


def json_child(code: str, *args: str, what: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter with `args`; its last line of output is JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} failed\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def against_base(
    base_rev: str, tmp: Path, rounds: int, run: Callable[[str, Path], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """`run(name, tree)` for the baseline (a worktree of `base_rev`) and for this tree,
    `rounds` times, the order alternating so neither always runs on a warmer machine."""
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "new": []}
    base = worktree(base_rev, tmp / "base")
    try:
        for r in range(rounds):
            order = [("baseline", base), ("new", ROOT)]
            for name, tree in order if r % 2 == 0 else order[::-1]:
                results[name].append(run(name, tree))
                print(f"round {r + 1} {name}: {results[name][-1]}", flush=True)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
            check=False,
            capture_output=True,
        )
    return results
