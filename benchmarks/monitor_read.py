"""Benchmark: what one monitoring run reads from a long-lived prediction log, same log,
same run.

The log holds `--days` days of one model's served traffic (`--rows` predictions of 20
features, evenly spread, a third of them labelled) and, as a live log does, a newer
version's: the last day is version 2. It is written once as segment files and once
into a PostgreSQL table (the tests' throwaway server: `tests/helpers/postgres.py`).
Each variant reads it in a process of its own, alternately over `--rounds`:

- `whole-log` (how monitoring read before): `read_traffic(workspace)`, every record
  of both logs, and version 2's served baseline picked from all of them;
- `windows`: `read_traffic(workspace, model_name=..., since=...)` from the start of
  the longer default window (7 days of labels), and `read_first_served` for the
  500-prediction baseline;
- `post-deploy`: what the post-deployment check reads, every prediction of the model
  without its features (`features=False`), and all feedback.

Reported per backend and variant: wall time (median over rounds) and the process'
peak RSS (VmHWM, the interpreter and imports included). Both variants must find the
same baseline and the same rows in the 24-hour drift window.

Usage: python benchmarks/monitor_read.py [--rows 600000] [--days 60] [--rounds 2]
       [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MODEL = "bench_model"
FEATURES = 20
BASELINE_ROWS = 500
WINDOW_HOURS, LABEL_WINDOW_HOURS = 24.0, 24.0 * 7

CHILD = r"""
import json, sys, time
from datetime import datetime
from pathlib import Path
import pandas as pd
from components.monitor.stage import read_since, without
from components.monitor.traffic import read_first_served, read_traffic, window
from components.common.monitoring_config import MonitoringConfig

variant, workspace, url, now, model = sys.argv[1:6]
now = pd.Timestamp(datetime.fromisoformat(now))
cfg = MonitoringConfig()
start = time.perf_counter()
if variant == "whole-log":
    traffic = read_traffic(Path(workspace), url or None)
    preds = traffic.predictions[traffic.predictions["model_name"] == model]
    mine = preds[(preds["model_version"] == "2") & preds["ts"].notna()]
    base = mine.sort_values("ts", kind="stable").head(cfg.baseline_rows)
    candidates = preds.drop(index=base.index)
elif variant == "post-deploy":
    traffic = read_traffic(Path(workspace), url or None, model_name=model, features=False)
    base = candidates = traffic.predictions.iloc[0:0]
else:
    since = read_since(now, cfg)
    traffic = read_traffic(Path(workspace), url or None, model_name=model, since=since)
    preds = traffic.predictions
    base = read_first_served(Path(workspace), model, "2", cfg.baseline_rows, url or None)
    candidates = without(preds, base)
served = window(candidates, now, cfg.window_hours, cfg.max_rows)
seconds = time.perf_counter() - start
hwm = next(
    int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")
)
print(json.dumps({
    "seconds": seconds,
    "peak_mib": hwm / 1024,
    "predictions_read": len(traffic.predictions),
    "feedback_read": len(traffic.feedback),
    "window": sorted(served["request_id"]),
    "baseline": list(base["request_id"]),
}))
"""


def records(rows: int, days: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(predictions, feedback) in time order: evenly over `days` up to NOW."""
    import numpy as np

    rng = np.random.default_rng(5)
    span = timedelta(days=days).total_seconds()
    values = rng.standard_normal((rows, FEATURES))
    preds, labels = [], []
    for i in range(rows):
        at = NOW - timedelta(seconds=span * (1 - i / rows))
        ts = at.isoformat()
        version = "2" if at > NOW - timedelta(days=1) else "1"
        rid = f"r{i}"
        preds.append(
            {
                "ts": ts,
                "request_id": rid,
                "index": 0,
                "entity_id": i,
                "route": "v1",
                "model_name": MODEL,
                "model_version": version,
                "features": {f"f{j}": float(values[i, j]) for j in range(FEATURES)},
                "score": float(rng.random()),
                "decision": False,
            }
        )
        if i % 3 == 0:
            later = (at + timedelta(hours=2)).isoformat()
            labels.append({"ts": later, "request_id": rid, "label": int(rng.random() < 0.3)})
    return preds, labels


def write_logs(workspace: Path, url: str, rows: int, days: int) -> None:
    from components.predictions.files import AppendLog
    from components.predictions.postgres import PgLog

    preds, labels = records(rows, days)
    for prefix, recs in (("predictions", preds), ("feedback", labels)):
        log: AppendLog | PgLog
        for log in (AppendLog(workspace / prefix, prefix), PgLog(url, prefix)):
            log.open()
            for at in range(0, len(recs), 20_000):
                log.append(recs[at : at + 20_000])
            log.close()


def run(variant: str, workspace: Path, url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, variant, str(workspace), url, NOW.isoformat(), MODEL],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from components.predictions.postgres import libpq_url
    from tests.helpers.postgres import postgres_server

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as server:
        server.execute('CREATE DATABASE "monitor_read"')
        url = libpq_url(server.url("monitor_read"))
        workspace = Path(tmp)
        started = datetime.now(UTC)
        write_logs(workspace, url, args.rows, args.days)
        print(f"logs written in {(datetime.now(UTC) - started).seconds} s", file=sys.stderr)
        for _ in range(args.rounds):
            for backend, source in (("files", ""), ("postgres", url)):
                for variant in ("whole-log", "windows", "post-deploy"):
                    got = run(variant, workspace, source)
                    results.setdefault(backend, {}).setdefault(variant, []).append(got)
                    print(backend, variant, f"{got['seconds']:.2f} s", file=sys.stderr)

    summary: dict[str, Any] = {"rows": args.rows, "days": args.days, "rounds": args.rounds}
    for backend, variants in results.items():
        old, new = variants["whole-log"][0], variants["windows"][0]
        same = old["window"] == new["window"] and old["baseline"] == new["baseline"]
        if not same:
            raise SystemExit(f"{backend}: the two reads found different windows or baselines")
        summary[backend] = {
            variant: {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "peak_mib": max(r["peak_mib"] for r in runs),
                "predictions_read": runs[0]["predictions_read"],
                "feedback_read": runs[0]["feedback_read"],
            }
            for variant, runs in variants.items()
        }
        summary[backend]["drift_window_rows"] = len(new["window"])
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as f:
            f.write(render(summary))


def render(summary: dict[str, Any]) -> str:
    lines = [
        "",
        f"### Monitoring's read of a {summary['days']}-day log "
        f"({summary['rows']:,} predictions), {datetime.now(UTC):%Y-%m-%d}",
        "",
        "`benchmarks/monitor_read.py` (median of "
        f"{summary['rounds']} rounds; peak RSS of the reading process).",
        "",
        "| backend | read | predictions read | feedback read | seconds | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for backend in ("files", "postgres"):
        for variant in ("whole-log", "windows", "post-deploy"):
            r = summary[backend][variant]
            lines.append(
                f"| {backend} | {variant} | {r['predictions_read']:,} | {r['feedback_read']:,} "
                f"| {r['seconds']:.1f} | {r['peak_mib']:,.0f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
