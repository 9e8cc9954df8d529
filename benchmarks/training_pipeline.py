"""Benchmark: the full local training pipeline on the demo data.

Measures, in one run on this machine:
- the pipeline's wall time and each step's time (from kfp.local's task log lines);
- the runner's overhead per step, from a baseline pipeline of the same length whose
  steps do nothing but start in the runtime environment (same runner, same run);
- the peak resident memory of any step (RUSAGE_CHILDREN of the pipeline process).

Usage: python benchmarks/training_pipeline.py --rows 100000 [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d+) - \w+ - (?:Executing task|Task) '?\x1b\[96m'?([\w-]+)'?\x1b\[0m'?"
    r"(?: finished with status)?"
)

BASELINE = """
import sys
from pathlib import Path
from kfp import dsl, local
from components.common.image import seamless_component
from pipelines.local import use_workspace
from pipelines.runners import make_runner

@seamless_component
def noop(x: str) -> str:
    from components.common.stage import clean_errors
    with clean_errors("noop"):
        return x

@dsl.pipeline(name="baseline")
def baseline():
    prev = noop(x="0")
    for _ in range(int(sys.argv[2]) - 1):
        prev = noop(x=prev.output)

ws = Path(sys.argv[1])
settings = use_workspace(ws)
(ws / "kfp").mkdir(parents=True, exist_ok=True)  # before the docker runner hands ws over
runner = make_runner(sys.argv[3] if len(sys.argv) > 3 else "subprocess", ws, None, settings)
local.init(runner=runner, pipeline_root=str(ws / "kfp"))
baseline()
"""


def step_times(log: str) -> dict[str, float]:
    """Seconds between each task's 'Executing task' and its 'finished' log line."""
    starts: dict[str, float] = {}
    times: dict[str, float] = {}
    for raw in log.splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%H:%M:%S.%f")
        secs = t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6
        name = m.group(2)
        if "Executing task" in raw:
            starts[name] = secs
        elif "finished with status" in raw and name in starts:
            times[name] = round(secs - starts[name], 2)
    return times


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str, float]:
    """Wall seconds, stdout, and peak RSS (MiB) of any process the command ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return wall, proc.stdout, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

    with tempfile.TemporaryDirectory(prefix="seamless-bench-") as tmp:
        data, ws = Path(tmp) / "data", Path(tmp) / "ws"
        gen_wall, _, _ = run(
            [
                str(bin_dir / "seamless"),
                "datasets",
                "generate",
                "--out",
                str(data),
                "--rows",
                str(args.rows),
                "--seed",
                str(args.seed),
            ],
            env,
        )
        wall, log, peak = run(
            [
                str(bin_dir / "seamless"),
                "run",
                "training",
                "--data-dir",
                str(data),
                "--workspace",
                str(ws),
                "--json",
            ],
            env,
        )
        log = Path(json.loads(log)["log_file"]).read_text()
        status = subprocess.run(
            [str(bin_dir / "seamless"), "status", "--workspace", str(ws), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        champion = json.loads(status.stdout)["champion"] or {}
        steps = step_times(log)
        base_script = Path(tmp) / "baseline.py"
        base_script.write_text(BASELINE)
        base_wall, base_log, _ = run(
            [sys.executable, str(base_script), str(Path(tmp) / "kfp-base"), str(len(steps))],
            {**env, "PYTHONPATH": str(ROOT)},
        )
        base_steps = step_times(base_log)

    overhead = sum(base_steps.values()) / max(1, len(base_steps))
    result = {
        "rows": args.rows,
        "cpus": os.cpu_count(),
        "generate_s": round(gen_wall, 1),
        "pipeline_wall_s": round(wall, 1),
        "steps_s": steps,
        "runner_overhead_per_step_s": round(overhead, 2),
        "baseline_steps_s": base_steps,
        "baseline_wall_s": round(base_wall, 1),
        "peak_step_rss_mib": round(peak),
        "champion_version": champion.get("version"),
        "champion_roc_auc": champion.get("holdout_metrics", {}).get("roc_auc"),
    }
    print(json.dumps(result, indent=2))
    record(args.out, result)


def record(path: Path, result: dict) -> None:
    """Append this run to the benchmark record in docs/."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"\n### Training pipeline, {result['rows']:,} rows, {result['cpus']} CPUs ({stamp})\n",
        f"- pipeline wall time: **{result['pipeline_wall_s']} s** (target <= 90 s)",
        f"- runner overhead per step (no-op baseline, same run): **"
        f"{result['runner_overhead_per_step_s']} s** (target < 1.5 s)",
        f"- peak RSS of any step: **{result['peak_step_rss_mib']} MiB** (target <= 2048 MiB)",
        f"- champion v{result['champion_version']}, holdout ROC AUC {result['champion_roc_auc']}",
        "- per step (s): " + ", ".join(f"{k} {v}" for k, v in result["steps_s"].items()),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("# Benchmarks\n\nRecorded by the scripts in `benchmarks/`.\n")
    with path.open("a") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
