"""Benchmark: loading Feast's embedded SQLite online store, Feast's writer against
Seamless' batched writer (components/features/sqlite_writer.py) and its column-wise load
(components/features/online_load.py), same views, same run.

Set-up (not timed): demo data with `--rows` label rows, ingest, and the features step
without the online store (`run_features(online=False)`), which publishes the views and
records the windows the pipeline's `materialize` step loads. Timed, each in a process of
its own on a fresh copy of that Feast repo (peak RSS of the process): `feast`, Feast's
`FeatureStore.materialize` per view as shipped; `batched`, the same with only the batched
writer swapped in (`use_batched_writer`, the step before the column-wise load);
`columnar`, `materialize_windows` (the step's code today). Variants alternate over
`--rounds`; the table has the median. The stores are compared row by row after each round.

Usage: python benchmarks/materialize.py [--rows 1000000] [--rounds 2] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One timed materialization; argv: repo, windows JSON, variant. Prints wall s and peak KiB:
# VmHWM, this process's own high-water mark (ru_maxrss would carry the parent's across exec).
CHILD = """
import json, re, sys, time
from components.features.sqlite_writer import use_batched_writer
from components.features.store import materialize_windows, open_store, windows_from_json
repo, windows, variant = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
store = open_store(__import__("pathlib").Path(repo))
t0 = time.perf_counter()
if variant == "columnar":
    materialize_windows(store, windows_from_json(windows))
else:
    if variant == "batched":
        assert use_batched_writer(store)
    for name, (start, end) in windows_from_json(windows).items():
        store.materialize(start_date=start, end_date=end, feature_views=[name])
wall = time.perf_counter() - t0
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
print(json.dumps({"wall_s": wall, "peak_kib": int(hwm.group(1))}))
"""


def set_up(work: Path, rows: int) -> tuple[Path, dict[str, list[str]]]:
    os.environ["SEAMLESS_WORKSPACE"] = str(work / "ws")
    for key in ("SEAMLESS_FEAST_REPO", "MLFLOW_TRACKING_URI"):
        os.environ.pop(key, None)
    from components.common.config import default_config_path, load_config
    from components.common.env import feast_repo_path
    from components.features.stage import run_features
    from components.ingest.stage import ingest_tables
    from pipelines.demo_data import generate

    config = load_config(default_config_path())
    generate(work / "data", n_rows=rows, seed=7)
    ingest_tables(config, work / "data", work / "ds")
    info = run_features(config, str(work / "ds"), str(work / "ts"), online=False)
    return feast_repo_path(), info["online_windows"]


def fresh_copy(repo: Path, to: Path) -> Path:
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(repo, to)
    yaml = to / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace(str(repo), str(to)))
    return to


def table_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        order = "ORDER BY entity_key, feature_name"
        return {n: conn.execute(f'SELECT * FROM "{n}" {order}').fetchall() for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="seamless-materialize-bench-"))
    try:
        repo, windows = set_up(work, args.rows)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
        runs: dict[str, list[dict[str, float]]] = {"feast": [], "batched": [], "columnar": []}
        values = 0
        for i in range(args.rounds):
            for variant in runs:
                copy = fresh_copy(repo, work / variant)
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, str(copy), json.dumps(windows), variant],
                    env=env, capture_output=True, text=True, check=False, cwd=work,
                )  # fmt: skip
                if done.returncode != 0:
                    raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
                runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(variant, i, runs[variant][-1], flush=True)
            theirs = table_rows(work / "feast" / "online_store.db")
            for variant in ("batched", "columnar"):
                if table_rows(work / variant / "online_store.db") != theirs:
                    raise SystemExit(f"the {variant} online store differs from Feast's")
            values = sum(len(r) for r in theirs.values())
        result = {
            "rows": args.rows,
            "values": values,
            "rounds": args.rounds,
            **{
                v: {
                    "wall_s": round(statistics.median(r["wall_s"] for r in rs), 1),
                    "peak_mib": round(max(r["peak_kib"] for r in rs) / 1024),
                }
                for v, rs in runs.items()
            },
        }
        for v in ("batched", "columnar"):
            result[v]["speedup"] = round(result["feast"]["wall_s"] / result[v]["wall_s"], 2)
        print(json.dumps(result))
        if args.out:
            record(args.out, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def record(path: Path, r: dict[str, Any]) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    names = {
        "feast": "Feast's (`SqliteOnlineStore`)",
        "batched": "batched writer (`BatchedSqliteOnlineStore`)",
        "columnar": "column-wise load (`ColumnarLocalComputeEngine` + batched writer)",
    }
    lines = [
        f"\n### Online store load: Feast's, batched, column-wise ({stamp})\n",
        f"{r['rows']:,} label rows, {r['values']:,} feature values written, median of "
        f"{r['rounds']} alternating rounds (`benchmarks/materialize.py`); the three stores "
        "are equal row by row.\n",
        "| load | wall s | peak RSS MiB | speed-up vs Feast |",
        "|---|---|---|---|",
    ]
    for v, name in names.items():
        speedup = f"x{r[v]['speedup']}" if "speedup" in r[v] else "-"
        lines.append(f"| {name} | {r[v]['wall_s']} | {r[v]['peak_mib']} | {speedup} |")
    lines.append("")
    with path.open("a") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
