"""Benchmark: the training pipeline as the data grows, per step, for two code versions.

For each size (label rows; the generator scales the other tables with them) the same
generated data goes through `seamless run training` once per variant, in this run on this
machine: a baseline revision (today's path, checked out into a git worktree) and the
working tree. Every Python process the runs start records its own wall time and peak
resident set at exit (a `sitecustomize` on PYTHONPATH, so the baseline needs no
instrumentation of its own); a step is the kfp.local process that ran its function. A run
past `--timeout` or past `--mem-cap-gb` of resident memory (all its processes together,
sampled every 0.5 s) is stopped and recorded as such.

Usage:
    python benchmarks/scale.py --rows 100000,1000000 --base <rev> \\
        [--variants baseline,new,spark] [--stop-after features] \\
        [--out docs/benchmarks.md] [--plot docs/scale.png]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The steps with a column of their own (materialize was part of features before 51caf6d).
TABLE_STEPS = ("ingest", "validate", "features", "materialize", "train", "evaluate")
STEP_ORDER = (
    "ingest", "validate", "features", "train", "evaluate", "register", "deploy", "materialize",
)  # fmt: skip

# Runs at the start of every Python process that sees this folder on PYTHONPATH; writes
# one JSON line at exit. `--function_to_execute <name>` is how kfp.local names a step.
SITECUSTOMIZE = """
import atexit, json, os, resource, sys, threading, time
_t0 = time.perf_counter()
_tree_peak = [0.0]

def _sample_tree():
    # A step's children count too: Spark's JVM and its Python workers.
    import psutil
    me = psutil.Process()
    while True:
        try:
            procs = [me, *me.children(recursive=True)]
            total = sum(p.memory_info().rss for p in procs) / 2**20
            _tree_peak[0] = max(_tree_peak[0], total)
        except psutil.Error:
            pass
        time.sleep(0.25)

if "--function_to_execute" in sys.argv:
    threading.Thread(target=_sample_tree, daemon=True).start()

def _record():
    argv = sys.argv
    step = argv[argv.index("--function_to_execute") + 1] if "--function_to_execute" in argv else ""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = {"step": step, "pid": os.getpid(), "seconds": round(time.perf_counter() - _t0, 3),
            "peak_rss_mib": round(max(own, _tree_peak[0]), 1)}
    with open(os.environ["SEAMLESS_BENCH_STATS"], "a") as fh:
        fh.write(json.dumps(line) + "\\n")

atexit.register(_record)

# Packages the variant's own install would not have (--base-lacks): absent to imports.
_absent = {m for m in os.environ.get("SEAMLESS_BENCH_ABSENT", "").split(",") if m}
if _absent:
    import importlib.abc, importlib.util

    class _Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in _absent:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Absent())
    _find_spec = importlib.util.find_spec

    def _find_spec_absent(name, package=None):
        return None if name.split(".")[0] in _absent else _find_spec(name, package)

    importlib.util.find_spec = _find_spec_absent
"""


class MemoryCgroup:
    """A memory cgroup of its own for one run (`--cgroup`), limited to the cap: every
    process of the run sees that limit where a pod would see its own, so Seamless sizes
    itself (Spark's heap, components/common/memory_limit.py) as it would in such a pod,
    and the kernel stops the run past it. Needs root and a v2 or v1 memory hierarchy."""

    def __init__(self, name: str, limit_bytes: int) -> None:
        v2 = CGROUP_ROOT / "cgroup.controllers"
        if v2.exists() and "memory" in v2.read_text().split():
            self.dir, self.limit_file, self.events = (
                CGROUP_ROOT / name, "memory.max", "memory.events",
            )  # fmt: skip
        else:
            self.dir, self.limit_file, self.events = (
                CGROUP_ROOT / "memory" / name, "memory.limit_in_bytes", "memory.oom_control",
            )  # fmt: skip
        self.dir.mkdir()
        (self.dir / self.limit_file).write_text(str(limit_bytes))

    def enter(self) -> None:
        """Run in the child before exec: it and all it starts belong to the cgroup."""
        (self.dir / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        for line in (self.dir / self.events).read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def run_guarded(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    mem_cap_mib: float,
    finished: Callable[[], bool] = lambda: False,
    cgroup: MemoryCgroup | None = None,
) -> tuple[str, float, float, str]:
    """(outcome, wall s, peak total RSS MiB of the process tree, output); outcome is
    `ok`, `failed`, `timeout`, `memory` or `stopped` (`finished()` became true: the part
    being measured is done, the rest of the run is not wanted)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=cgroup.enter if cgroup else None,
    )
    peak, verdict = 0.0, ""
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            total = sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20
        except psutil.Error:
            total = 0.0
        peak = max(peak, total)
        if total > mem_cap_mib:
            verdict = "memory"
        elif time.perf_counter() - t0 > timeout:
            verdict = "timeout"
        elif finished():
            verdict = "stopped"
        if verdict:
            for p in reversed([root, *root.children(recursive=True)]):
                with contextlib.suppress(psutil.Error):
                    p.kill()
            break
        time.sleep(0.5)
    proc.wait()
    reader.join(timeout=10)
    wall = time.perf_counter() - t0
    if not verdict and cgroup is not None and cgroup.oom_kills():
        verdict = "memory"  # the kernel stopped a process at the cgroup's limit
    outcome = verdict or ("ok" if proc.returncode == 0 else "failed")
    return outcome, wall, peak, "".join(output)


def steps_from(stats_file: Path) -> dict[str, dict[str, float]]:
    """step -> {seconds, peak_rss_mib} from the processes that ran a step function."""
    out: dict[str, dict[str, float]] = {}
    if not stats_file.exists():
        return out
    for line in stats_file.read_text().splitlines():
        rec = json.loads(line)
        name = rec["step"].replace("_kubernetes", "")
        if name:
            out[name] = {"seconds": rec["seconds"], "peak_rss_mib": rec["peak_rss_mib"]}
    return dict(sorted(out.items(), key=lambda kv: STEP_ORDER.index(kv[0])))


def run_variant(
    code: Path,
    data: Path,
    work: Path,
    args: argparse.Namespace,
    absent: str = "",
    engine: str = "local",
) -> dict[str, Any]:
    """One `seamless run training` of the code in `code` on `data` (run from `code`, so
    every process, the steps included, imports that code first); `engine` goes to the
    demo config through SEAMLESS_ENGINE."""
    hook = work / "hook"
    hook.mkdir(parents=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    stats = work / "stats.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(code), str(hook)]),
        "SEAMLESS_BENCH_STATS": str(stats),
        "SEAMLESS_BENCH_ABSENT": absent,
        "SEAMLESS_ENGINE": engine,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    cli = [sys.executable, "-c", "from pipelines.cli import main; main()"]
    cmd = [*cli, "run", "training", "--data-dir", str(data), "--workspace", str(work / "ws")]
    last = args.stop_after

    def finished() -> bool:
        return bool(last) and last in steps_from(stats)

    cap_mib = args.mem_cap_gb * 1024
    cgroup = (
        MemoryCgroup(f"seamless-scale-{os.getpid()}-{work.name}", int(cap_mib * 2**20))
        if args.cgroup
        else None
    )
    try:
        outcome, wall, peak, output = run_guarded(
            [*cmd, "--json"], env, code, args.timeout, cap_mib, finished, cgroup
        )
    finally:
        if cgroup is not None:
            cgroup.remove()
    if outcome == "stopped":
        outcome = f"through {last}"
    result: dict[str, Any] = {
        "outcome": outcome,
        "wall_s": round(wall, 1),
        "peak_tree_rss_mib": round(peak),
        "steps": steps_from(stats),
    }
    if outcome == "ok":
        try:
            summary = json.loads(output[output.index("{") : output.rindex("}") + 1])
            result["roc_auc"] = (summary.get("champion_metrics") or {}).get("roc_auc")
        except ValueError:
            pass
    elif not outcome.startswith("through"):
        result["tail"] = output[-600:]
    return result


def worktree(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev],
        check=True,
        capture_output=True,
    )
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument(
        "--base", default="", help="git revision of the baseline path (baseline variant)"
    )
    parser.add_argument(
        "--base-lacks",
        default="",
        help="comma-separated packages the baseline's install lacks (e.g. duckdb,ibis), "
        "hidden from its processes since both variants share this venv",
    )
    parser.add_argument(
        "--variants",
        default="baseline,new,spark",
        help="baseline (the --base revision), new (this tree, local engine), "
        "spark (this tree, engine: spark in local mode)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--mem-cap-gb", type=float, default=8)
    parser.add_argument(
        "--stop-after",
        default="",
        choices=["", *STEP_ORDER],
        help="stop each run once this step has finished (e.g. features: the training set "
        "is written); its wall time is then the time up to that step's end",
    )
    parser.add_argument(
        "--cgroup",
        action="store_true",
        help="run each variant in a memory cgroup limited to --mem-cap-gb, as a pod with "
        "that limit (Seamless sizes Spark's heap by it); needs root",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]
    if "baseline" in args.variants.split(",") and not args.base:
        parser.error("the baseline variant needs --base REV")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seamless-scale-") as tmp_name:
        tmp = Path(tmp_name)
        chosen = args.variants.split(",")
        variants = {
            name: (worktree(args.base, tmp / "base") if name == "baseline" else ROOT)
            for name in chosen
        }
        try:
            for rows in sizes:
                data = tmp / f"data-{rows}"
                gen = subprocess.run(
                    [sys.executable, "-c", "from pipelines.cli import main; main()",
                     "datasets", "generate", "--out", str(data), "--rows", str(rows),
                     "--seed", str(args.seed)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if gen.returncode != 0:
                    sys.exit(f"generating {rows} rows failed: {gen.stderr[-1000:]}")
                for name, code in variants.items():
                    work = tmp / f"{name}-{rows}"
                    absent = args.base_lacks if name == "baseline" else ""
                    engine = "spark" if name == "spark" else "local"
                    res = run_variant(code, data, work, args, absent, engine)
                    res.update(rows=rows, variant=name)
                    print(json.dumps(res), flush=True)
                    results.append(res)
                    shutil.rmtree(work, ignore_errors=True)
                shutil.rmtree(data, ignore_errors=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "base")],
                check=False,
                capture_output=True,
            )
    ratios = growth(results)
    for line in ratios:
        print(line)
    if args.out:
        record(
            args.out,
            results,
            args.base,
            args.base_lacks,
            ratios,
            args.stop_after,
            args.mem_cap_gb if args.cgroup else None,
        )
    if args.plot:
        plot(args.plot, results)


def completed(result: dict[str, Any]) -> bool:
    """The run did what was asked: the whole pipeline, or up to `--stop-after`."""
    return result["outcome"] == "ok" or result["outcome"].startswith("through")


def growth(results: list[dict[str, Any]]) -> list[str]:
    """Cost growth between consecutive sizes per variant: wall-time ratio vs rows ratio."""
    lines = []
    for variant in dict.fromkeys(r["variant"] for r in results):
        runs = sorted(
            (r for r in results if r["variant"] == variant and completed(r)),
            key=lambda r: r["rows"],
        )
        for small, large in itertools.pairwise(runs):
            rows, wall = large["rows"] / small["rows"], large["wall_s"] / small["wall_s"]
            verdict = "at most linear" if wall <= rows else "more than linear"
            lines.append(
                f"{variant}: {small['rows']:,} -> {large['rows']:,} rows (x{rows:.0f}): "
                f"wall time x{wall:.2f} ({verdict})"
            )
    return lines


def record(
    path: Path,
    results: list[dict[str, Any]],
    base: str,
    lacks: str,
    ratios: list[str] | None = None,
    stop_after: str = "",
    cgroup_gb: float | None = None,
) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    meaning = {
        "baseline": f"baseline = revision `{base}`" + (f" (without {lacks})" if lacks else ""),
        "new": "new = this tree on the local engine",
        "spark": "spark = this tree with `engine: spark` (local mode)",
    }
    ran = [meaning[v] for v in meaning if any(r["variant"] == v for r in results)]
    lines = [
        f"\n### Scale: training pipeline by rows, {os.cpu_count()} CPUs ({stamp})\n",
        f"{', '.join(ran)[:1].upper()}{', '.join(ran)[1:]}; same data, "
        "same run (`benchmarks/scale.py`). Step cells: wall s / peak RSS MiB of the step's "
        "processes (Spark's JVM and Python workers included)."
        + (
            f" Each run was stopped once its `{stop_after}` step had finished; its wall "
            "time is the time up to then."
            if stop_after
            else ""
        )
        + (
            f" Each run had a memory cgroup of its own limited to {cgroup_gb:g} GB, as a pod "
            "with that limit (`--cgroup`)."
            if cgroup_gb
            else ""
        )
        + "\n",
        "| rows | variant | outcome | wall s | largest step MiB | all processes MiB | "
        + " | ".join(TABLE_STEPS)
        + " | ROC AUC |",
        "|---|---|---|---|---|---|" + "---|" * len(TABLE_STEPS) + "---|",
    ]
    for r in results:
        cells = [
            f"{r['steps'][s]['seconds']:.0f} / {r['steps'][s]['peak_rss_mib']:.0f}"
            if s in r["steps"]
            else "-"
            for s in TABLE_STEPS
        ]
        largest = max((s["peak_rss_mib"] for s in r["steps"].values()), default=0)
        auc = r.get("roc_auc")
        lines.append(
            f"| {r['rows']:,} | {r['variant']} | {r['outcome']} | {r['wall_s']} | "
            f"{largest:.0f} | {r['peak_tree_rss_mib']} | "
            + " | ".join(cells)
            + f" | {auc if auc else '-'} |"
        )
    if ratios:
        lines += ["", *[f"- {line}" for line in ratios]]
    with path.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(path: Path, results: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (wall_ax, mem_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for variant in sorted({r["variant"] for r in results}):
        rows = [r for r in results if r["variant"] == variant and completed(r)]
        xs = [r["rows"] for r in rows]
        wall_ax.plot(xs, [r["wall_s"] for r in rows], marker="o", label=variant)
        peak_step = [max((s["peak_rss_mib"] for s in r["steps"].values()), default=0) for r in rows]
        mem_ax.plot(xs, peak_step, marker="o", label=variant)
    for ax, title, unit in (
        (wall_ax, "pipeline wall time", "s"),
        (mem_ax, "peak RSS of the largest step", "MiB"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("label rows")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
