"""Benchmark: ways to write one batch run's prediction-log records, same records, same run.

The records are what batch scoring logs for `--rows` scored rows (13 numeric and 2
categorical features, as the demo model's, some missing; `stage.log_records`). Timed,
each from the built columns to records durable on disk or committed:

- `json-lines`: per-row dicts encoded by Python's `json` into a JSON-lines segment and
  fsynced (`AppendLog.append`, 20,000 records a call): how batch runs logged before;
- `json-lines-lean`: the same without the five fields equal in every record (what
  "fewer fields per row" alone gives);
- `batch-segment`: one Parquet batch segment (`batch_segment.write_segment`);
- with PostgreSQL's binaries, on a throwaway server (the tests' one: fsync off), each
  variant in its own process into a fresh database, interleaved over `--rounds`:
  `pg-copy`, `PgLog.append_batch` (one binary COPY into the table, `pg_copy.py`);
  `pg-copy-before`, the same from `--baseline-rev` (a `git archive` of its
  `components/`: COPY into a temporary table, one INSERT ... SELECT building the rows);
  `pg-rows` (slow, only when asked for): the row-by-row `PgLog.append` (execute_values,
  20,000 a call, one transaction each). Afterwards the tables' rows are compared.

Also the bytes each leaves on disk (PostgreSQL: the table's size after the write) and,
for PostgreSQL, the peak RSS of the variant's process.

Usage: python benchmarks/batch_log.py [--rows 1000000] [--pg-rows 200000] [--rounds 2]
       [--pg-variants pg-rows,pg-copy-before,pg-copy] [--baseline-rev REV]
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if os.environ.get("SEAMLESS_BENCH_SRC"):  # pg-copy-before's process: the older components
    sys.path.insert(0, os.environ["SEAMLESS_BENCH_SRC"])

from components.batch.stage import log_records  # noqa: E402
from components.predictions.batch_segment import write_segment  # noqa: E402
from components.predictions.files import AppendLog  # noqa: E402
from components.predictions.records import BatchRecords  # noqa: E402
from tests.helpers.configs import labels_only_config  # noqa: E402

CHUNK = 20_000


def demo_frames(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features as the model saw them, the scores frame) of n scored rows."""
    rng = np.random.default_rng(0)
    features = pd.DataFrame({f"num_{j}": rng.standard_normal(n) * 10**j for j in range(13)})
    features["num_0"] = np.floor(features["num_0"] * 30)  # counts: integral floats
    features.loc[::10, "num_5"] = np.nan
    for name in ("home_ownership", "region"):
        features[name] = pd.Series(
            rng.choice(np.array(["RENT", "OWN", "MORTGAGE", None], dtype=object), n), dtype=object
        )
    scores = rng.random(n)
    out = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 10**6, n),
            "as_of": pd.Timestamp("2025-06-30T12:00:00", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
            "score": scores,
            "decision": scores >= 0.5,
            "model_version": "3",
        }
    )
    return features, out


def demo_batch(frames: tuple[pd.DataFrame, pd.DataFrame]) -> BatchRecords:
    return log_records(labels_only_config(), *frames, "batch-bench")


def chunked(records: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    part: list[dict[str, Any]] = []
    for record in records:
        part.append(record)
        if len(part) == CHUNK:
            yield part
            part = []
    if part:
        yield part


def json_lines(frames: tuple[pd.DataFrame, pd.DataFrame], folder: Path, lean: bool = False) -> int:
    batch = demo_batch(frames)
    log = AppendLog(folder, "predictions")
    log.open()
    for part in chunked(batch.records()):
        if lean:
            part = [{k: v for k, v in r.items() if k not in batch.constants} for r in part]
        log.append(part)
    log.close()
    return sum(p.stat().st_size for p in folder.iterdir())


def batch_segment(frames: tuple[pd.DataFrame, pd.DataFrame], folder: Path) -> int:
    return write_segment(folder, "predictions", demo_batch(frames)).stat().st_size


def timed(name: str, write: Callable[[], int], rows: int) -> None:
    started = time.perf_counter()
    size = write()
    seconds = time.perf_counter() - started
    print(f"| {name} | {rows:,} | {seconds:.2f} | {rows / seconds:,.0f} | {size / 2**20:,.1f} |")


PG_VARIANTS = ["pg-copy-before", "pg-copy"]
BASELINE_REV = "deb4aa48147a12930f34ef8f177b5f257caed294"
"""The last commit whose `PgLog.append_batch` COPYs into a temporary table and builds the
rows with one `INSERT ... SELECT` (`pg-copy-before`)."""
_ROW = "request_id, idx, entity_id, route, model_name, model_version, features, score, decision"
DIGEST = (
    "SELECT count(*), pg_total_relation_size('{table}'), "
    f"md5(string_agg(concat_ws('|', {_ROW}, extra::text), E'\\n' ORDER BY id)), "
    f"md5(string_agg(concat_ws('|', {_ROW}, extra::jsonb), E'\\n' ORDER BY id)) FROM {{table}}"
)
"""A table's rows but `ts` and `logged_at` (the run's time): exactly, and with `extra` as
the values it holds (the row-by-row path writes its JSON text compact)."""


def pg_child(name: str, url: str, rows: int) -> None:
    """One PostgreSQL variant in this process (`pg_variants` runs it); prints a JSON line."""
    import resource

    import psycopg2

    from components.predictions.postgres import PgLog, libpq_url, table_name

    frames = demo_frames(rows)
    log = PgLog(url, "predictions")
    log.open()  # creates the table: not timed
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    batch = demo_batch(frames)
    if name == "pg-rows":
        for part in chunked(batch.records()):
            log.append(part)
    else:
        log.append_batch(batch)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.close()
    conn = psycopg2.connect(libpq_url(url))
    try:
        with conn.cursor() as cur:
            cur.execute(DIGEST.format(table=table_name("predictions")))
            count, size, exact, values = cur.fetchone()
    finally:
        conn.close()
    result = {"seconds": seconds, "peak_mib": peak, "peak_before_mib": peak_before}
    result |= {"rows": count, "bytes": size, "exact": exact, "values": values}
    print(json.dumps(result))


def pg_variants(rows: int, rounds: int, variants: list[str], baseline_rev: str) -> None:
    """Each variant in its own process (its own peak RSS), into a fresh database of one
    throwaway server, interleaved over `rounds` (the order reversed every other round)."""
    from tests.helpers.postgres import postgres_server

    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="seamless-batch-log-pg-") as tmp:
        before = Path(tmp) / "before"
        if "pg-copy-before" in variants:
            before.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", baseline_rev, "components"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        with postgres_server() as server:
            for r in range(rounds):
                for name in variants if r % 2 == 0 else variants[::-1]:
                    database = f"{name.replace('-', '_')}_{r}"
                    server.execute(f"CREATE DATABASE {database}")
                    env = dict(os.environ)
                    if name == "pg-copy-before":
                        env["SEAMLESS_BENCH_SRC"] = str(before)
                    cmd = [sys.executable, __file__, "--pg-child", name, "--pg-rows", str(rows)]
                    cmd += ["--url", server.url(database)]
                    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                    run = json.loads(out.stdout.strip().splitlines()[-1])
                    runs[name].append(run)
                    print(f"round {r} {name}: {run['seconds']:.2f} s, {run['peak_mib']:,.0f} MiB")
    print(
        f"\n{rows:,} rows; median of {rounds} interleaved rounds; peak RSS of the variant's "
        "process (in brackets: its peak before the write, the frames built)\n\n"
        "| variant | rows | s | rows/s | peak RSS MiB | MiB in table | rounds (s) |\n"
        "|---|---|---|---|---|---|---|"
    )
    med = {}
    for name, rs in runs.items():
        med[name] = statistics.median(r["seconds"] for r in rs)
        peak = max(r["peak_mib"] for r in rs)
        frames_peak = max(r["peak_before_mib"] for r in rs)
        each = ", ".join(f"{r['seconds']:.2f}" for r in rs)
        print(
            f"| {name} | {rows:,} | {med[name]:.2f} | {rows / med[name]:,.0f} | "
            f"{peak:,.0f} ({frames_peak:,.0f}) | {rs[0]['bytes'] / 2**20:,.1f} | {each} |"
        )
    print()
    if "pg-copy-before" in med and "pg-copy" in med:
        print(f"- pg-copy vs pg-copy-before: {med['pg-copy-before'] / med['pg-copy']:.2f}x rows/s")
    ref = "pg-copy-before" if "pg-copy-before" in runs else variants[0]
    for key, what in (("exact", "identical"), ("values", "equal in value")):
        want = {r[key] for r in runs[ref]}
        same = [n for n, rs in runs.items() if {r[key] for r in rs} == want and len(want) == 1]
        print(f"- tables (but ts, logged_at) {what} to {ref}'s: {', '.join(same)}")
    if any(r["rows"] != rows for rs in runs.values() for r in rs):
        raise SystemExit("a variant's table does not hold every row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="0: skip the files")
    parser.add_argument("--pg-rows", type=int, default=200_000, help="0: skip PostgreSQL")
    parser.add_argument("--rounds", type=int, default=2, help="of the PostgreSQL variants")
    parser.add_argument(
        "--pg-variants",
        default=",".join(PG_VARIANTS),
        help=f"comma-separated, of pg-rows (slow), {', '.join(PG_VARIANTS)}",
    )
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="pg-copy-before's commit")
    parser.add_argument("--pg-child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pg_child:
        pg_child(args.pg_child, args.url, args.pg_rows)
        return
    if args.rows:
        print("| variant | rows | s | rows/s | MiB written |\n|---|---|---|---|---|")
        frames = demo_frames(args.rows)
        with tempfile.TemporaryDirectory(prefix="seamless-batch-log-") as tmp:
            work = Path(tmp)
            timed("json-lines", lambda: json_lines(frames, work / "a"), args.rows)
            timed("json-lines-lean", lambda: json_lines(frames, work / "b", lean=True), args.rows)
            timed("batch-segment", lambda: batch_segment(frames, work / "c"), args.rows)
    if args.pg_rows:
        pg_variants(args.pg_rows, args.rounds, args.pg_variants.split(","), args.baseline_rev)


if __name__ == "__main__":
    main()
