"""Benchmark: `seamless run batch-scoring` against `mlflow models predict`, same model,
same rows, same run.

Set-up (not timed): demo data with `--label-rows` label rows, the training pipeline
(`seamless run training`) in a fresh workspace, so the champion is the real one; then
`--rows` entity rows sampled with replacement (seed 0) from the label rows, each with
its label's timestamp. `mlflow models predict` joins nothing, so it reads those rows'
point-in-time features as JSON (`dataframe_split`; the model's input, written once by
this script from the same offline store); Seamless reads only the entity ids and
timestamps. Not CSV: a CSV turns a missing category (None, its own value to the model,
as in training and serving) into NaN, which the model imputes instead.

Timed, each in its own process tree (peak RSS of the tree, sampled every 0.5 s):

- `seamless`: `seamless run batch-scoring --input rows.parquet --timestamp-column ...`:
  kfp.local, reading, the point-in-time join in Feast's offline store, loading the model,
  scoring, the Parquet output, one prediction-log record per row and the audit entry;
- `mlflow`: `mlflow models predict -m models:/<name>/<version> -t json --env-manager local`
  (pyfunc `predict_proba`, JSON output).

- `seamless-baseline` (with `--baseline-src DIR`): the same command run from another
  checkout of the project (`DIR` first on PYTHONPATH, e.g. `git archive` of an earlier
  commit), for a before/after in the same run.

Variants alternate over `--rounds`; the table has the median. Scores are compared row by
row (Seamless' `score` against pyfunc's positive-class column).

Usage: python benchmarks/batch.py [--rows 1000000] [--label-rows 100000] [--rounds 1]
       [--baseline-src DIR] [--out docs/batch-scoring.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from scale import run_guarded  # noqa: E402

BIN = Path(sys.executable).parent
GOAL_SPEEDUP = 10.0
GOAL_TOL = 1e-6


def sh(*cmd: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def set_up(work: Path, rows: int, label_rows: int, env: dict[str, str]) -> dict[str, Any]:
    data, ws = work / "data", work / "ws"
    sh(str(BIN / "seamless"), "datasets", "generate", "--out", str(data), "--rows",
       str(label_rows), env=env, cwd=work)  # fmt: skip
    sh(str(BIN / "seamless"), "run", "training", "--data-dir", str(data), "--workspace",
       str(ws), env=env, cwd=work)  # fmt: skip
    from components.batch.scoring import read_entities
    from components.batch.stage import join_features, resolve_version
    from components.common.config import load_config
    from components.common.model_input import model_input
    from pipelines.local import use_workspace

    use_workspace(ws)
    config = load_config(ws / "config.yaml")
    labels = pd.read_parquet(data / "labels.parquet")
    key, ts = config.entity_key(), config.timestamp_key(config.labels.table)
    pick = np.random.default_rng(0).integers(0, len(labels), rows)
    entities = pd.DataFrame({key: labels[key].to_numpy()[pick], ts: labels[ts].to_numpy()[pick]})
    entities.to_parquet(work / "rows.parquet", index=False)
    joined, _ = join_features(config, read_entities(config, str(work / "rows.parquet"), "", ts))
    features = model_input(config, joined)
    # JSON, not CSV: a CSV cannot tell a missing category (None, which the model encodes as
    # its own value, as in training and serving) from NaN (which it imputes).
    cells = features.astype(object).where(features.notna(), None).to_numpy().tolist()
    payload = {"dataframe_split": {"columns": list(features.columns), "data": cells}}
    (work / "features.json").write_text(json.dumps(payload))
    version = str(resolve_version(config, "").version)
    return {"ws": ws, "config": config, "ts": ts, "version": version}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--label-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file")
    parser.add_argument(
        "--baseline-src", type=Path, help="also time `seamless` from this checkout of the project"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="seamless-batch-bench-"))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    for k in ("MLFLOW_TRACKING_URI", "SEAMLESS_FEAST_REPO", "SEAMLESS_WORKSPACE"):
        env.pop(k, None)
    print(f"set-up in {work}: {args.label_rows} label rows, training, {args.rows} rows")
    setup = set_up(work, args.rows, args.label_rows, env)
    ws, config = setup["ws"], setup["config"]
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}"}
    cmds = {
        "seamless": (
            [str(BIN / "seamless"), "run", "batch-scoring", "--workspace", str(ws),
             "--input", str(work / "rows.parquet"), "--timestamp-column", setup["ts"],
             "--output", str(work / "seamless-{round}.parquet"), "--json"],
            env,
        ),
        "mlflow": (
            [str(BIN / "mlflow"), "models", "predict", "-m",
             f"models:/{config.model.name}/{setup['version']}", "-i", str(work / "features.json"),
             "-t", "json", "-o", str(work / "mlflow-{round}.json"), "--env-manager", "local"],
            mlflow_env,
        ),
    }  # fmt: skip
    if args.baseline_src:
        before = args.baseline_src.resolve()
        cmd = [c.replace("seamless-{round}", "baseline-{round}") for c in cmds["seamless"][0]]
        cmds["seamless-baseline"] = (cmd, {**env, "PYTHONPATH": str(before)})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cmds}
    for r in range(args.rounds):
        order = list(cmds) if r % 2 == 0 else list(reversed(cmds))
        for name in order:
            cmd, cmd_env = cmds[name]
            cmd = [c.replace("{round}", str(r)) for c in cmd]
            outcome, wall, peak, output = run_guarded(cmd, cmd_env, work, args.timeout, 16_384)
            if outcome != "ok":
                raise SystemExit(f"{name} round {r}: {outcome}\n{output[-3000:]}")
            runs[name].append({"wall": wall, "peak": peak, "output": output})
            print(f"round {r} {name}: {wall:.1f} s, {peak:.0f} MiB")

    results = {
        name: json.loads(rs[-1]["output"][rs[-1]["output"].index("{") :])
        for name, rs in runs.items()
        if name.startswith("seamless")
    }
    ours = pd.read_parquet(work / f"seamless-{args.rounds - 1}.parquet")["score"].to_numpy()
    theirs = np.asarray(
        json.loads((work / f"mlflow-{args.rounds - 1}.json").read_text())["predictions"]
    )[:, 1]
    diff = float(np.max(np.abs(ours - theirs)))
    report(args, runs, results, diff)


def report(
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, Any]]],
    results: dict[str, dict[str, Any]],
    diff: float,
) -> None:
    med = {n: statistics.median(r["wall"] for r in rs) for n, rs in runs.items()}
    peak = {n: max(r["peak"] for r in rs) for n, rs in runs.items()}
    rate = {n: args.rows / med[n] for n in runs}
    speedup = rate["seamless"] / rate["mlflow"]
    phases = results["seamless"]["timings_s"]
    scoring_rate = args.rows / (phases["load_model"] + phases["score"] + phases["write"])
    lines = [
        f"### Batch scoring, {args.rows:,} rows, 2 CPUs ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"`benchmarks/batch.py --rows {args.rows} --label-rows {args.label_rows} "
        f"--rounds {args.rounds}`; median wall time over rounds, peak RSS of the process tree.",
        "",
        "| variant | wall s | rows/s | peak RSS MiB |",
        "|---|---|---|---|",
        *(f"| {n} | {med[n]:.1f} | {rate[n]:,.0f} | {peak[n]:,.0f} |" for n in runs),
        "",
        *(
            f"`{name}` step, by phase (s): "
            + ", ".join(f"{k} {v}" for k, v in result["timings_s"].items())
            + f" (step total {result['seconds']} s).\n"
            for name, result in results.items()
        ),
        f"- rows/s, `seamless run batch-scoring` end to end vs `mlflow models predict`: "
        f"**{speedup:.2f}x** (goal >= {GOAL_SPEEDUP:.0f}x: "
        f"{'met' if speedup >= GOAL_SPEEDUP else 'not met'}).",
        f"- model load + scoring + Parquet write only: {scoring_rate:,.0f} rows/s, "
        f"{scoring_rate / rate['mlflow']:.2f}x mlflow's end-to-end rate.",
        f"- largest score difference: {diff:.2e} (goal <= {GOAL_TOL:g}: "
        f"{'met' if diff <= GOAL_TOL else 'not met'}).",
    ]
    if "seamless-baseline" in runs:
        lines.append(
            f"- `seamless` vs `seamless-baseline` ({args.baseline_src}): "
            f"{med['seamless-baseline'] / med['seamless']:.2f}x rows/s end to end."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
