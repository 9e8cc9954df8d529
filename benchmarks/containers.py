"""Benchmark: the DockerRunner pipeline next to the SubprocessRunner one, same data, same run.

Measures:
- the training pipeline's wall time and per-step times with each runner;
- the per-step container overhead: a no-op pipeline of 7 steps with each runner (the
  difference per step is what a container adds: create, start, mount, stop, remove);
- the project's image sizes (`docker image inspect`).
Both runs must reach the same champion decision and metrics.

Usage: python benchmarks/containers.py --rows 20000 [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_pipeline import BASELINE, ROOT, run, step_times

IMAGES = ("runtime", "serving", "mlflow", "feast")


def image_sizes() -> dict[str, float]:
    from components.common.image import image_ref

    sizes = {}
    for name in IMAGES:
        ref = image_ref(name)
        out = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", ref],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0:
            sizes[ref] = round(int(out.stdout.strip()) / 1e9, 3)
    return sizes


def pipeline(runner: str, data: Path, ws: Path, env: dict[str, str]) -> dict:
    seamless = str(Path(sys.executable).parent / "seamless")
    cmd = [seamless, "run", "training", "--data-dir", str(data), "--workspace", str(ws)]
    wall, out, _ = run([*cmd, "--runner", runner, "--json"], env)
    outcome = json.loads(out)
    return {
        "wall_s": round(wall, 1),
        "steps_s": step_times(Path(outcome["log_file"]).read_text()),
        "decision": outcome["decision"],
        "champion_metrics": outcome["champion_metrics"],
    }


def noop_steps(runner: str, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    script = tmp / "baseline.py"
    script.write_text(BASELINE)
    ws = tmp / f"noop-{runner}"
    _, out, _ = run(
        [sys.executable, str(script), str(ws), "7", runner], {**env, "PYTHONPATH": str(ROOT)}
    )
    return step_times(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    seamless = str(Path(sys.executable).parent / "seamless")
    with tempfile.TemporaryDirectory(prefix="seamless-bench-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o755)  # the image's user must reach the bind-mounted workspaces
        data = tmp / "data"
        run([seamless, "datasets", "generate", "--out", str(data), "--rows", str(args.rows)], env)
        sub = pipeline("subprocess", data, tmp / "ws-sub", env)
        dock = pipeline("docker", data, tmp / "ws-docker", env)
        noop_sub = noop_steps("subprocess", tmp, env)
        noop_dock = noop_steps("docker", tmp, env)
    per_sub = sum(noop_sub.values()) / len(noop_sub)
    per_dock = sum(noop_dock.values()) / len(noop_dock)
    result = {
        "rows": args.rows,
        "subprocess": sub,
        "docker": dock,
        "same_decision": sub["decision"] == dock["decision"]
        and sub["champion_metrics"] == dock["champion_metrics"],
        "noop_step_subprocess_s": round(per_sub, 2),
        "noop_step_docker_s": round(per_dock, 2),
        "container_overhead_per_step_s": round(per_dock - per_sub, 2),
        "image_sizes_gb": image_sizes(),
    }
    print(json.dumps(result, indent=2))
    record(args.out, result)


def record(path: Path, r: dict) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    sizes = ", ".join(f"{k} {v} GB" for k, v in r["image_sizes_gb"].items())
    lines = [
        f"\n### DockerRunner vs SubprocessRunner, {r['rows']:,} rows ({stamp})\n",
        f"- pipeline wall: subprocess **{r['subprocess']['wall_s']} s**, docker "
        f"**{r['docker']['wall_s']} s**; same decision and metrics: {r['same_decision']}",
        f"- per-step container overhead (7-step no-op pipeline, same run): **"
        f"{r['container_overhead_per_step_s']} s** (docker {r['noop_step_docker_s']} s vs "
        f"subprocess {r['noop_step_subprocess_s']} s per step; target < 3 s)",
        "- steps, subprocess (s): "
        + ", ".join(f"{k} {v}" for k, v in r["subprocess"]["steps_s"].items()),
        "- steps, docker (s): " + ", ".join(f"{k} {v}" for k, v in r["docker"]["steps_s"].items()),
        f"- image sizes: {sizes} (runtime target <= 1.2 GB)",
        "",
    ]
    with path.open("a") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
