"""Benchmark: ways to write one batch run's prediction-log records, same records, same run.

The records are what batch scoring logs for `--rows` scored rows (13 numeric and 2
categorical features, as the demo model's, some missing; `stage.log_records`). Timed,
each from the built columns to records durable on disk or committed:

- `json-lines`: per-row dicts encoded by Python's `json` into a JSON-lines segment and
  fsynced (`AppendLog.append`, 20,000 records a call): how batch runs logged before;
- `json-lines-lean`: the same without the five fields equal in every record (what
  "fewer fields per row" alone gives);
- `batch-segment`: one Parquet batch segment (`batch_segment.write_segment`);
- `pg-rows` / `pg-copy` (with PostgreSQL's binaries, on a throwaway server): the
  row-by-row `PgLog.append` (execute_values, 20,000 a call, one transaction each) and
  `PgLog.append_batch` (COPY into a temporary table, one INSERT ... SELECT).

Also the bytes each leaves on disk (PostgreSQL: the table's size after the write).

Usage: python benchmarks/batch_log.py [--rows 1000000] [--pg-rows 200000]
"""

from __future__ import annotations

import argparse
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


def pg_variants(rows: int) -> None:
    from components.predictions.postgres import PgLog, table_name
    from tests.helpers.postgres import postgres_server

    frames = demo_frames(rows)
    with postgres_server() as server:
        for name, database in (("pg-rows", "rows"), ("pg-copy", "copy")):
            server.execute(f"CREATE DATABASE {database}")
            url = server.url(database)
            log = PgLog(url, "predictions")
            log.open()

            def write(log: PgLog = log, url: str = url, name: str = name) -> int:
                batch = demo_batch(frames)
                if name == "pg-copy":
                    log.append_batch(batch)
                else:
                    for part in chunked(batch.records()):
                        log.append(part)
                return _table_bytes(url, table_name("predictions"))

            timed(name, write, rows)
            log.close()


def _table_bytes(url: str, table: str) -> int:
    import psycopg2

    from components.predictions.postgres import libpq_url

    conn = psycopg2.connect(libpq_url(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_total_relation_size(%s)", (table,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-rows", type=int, default=200_000, help="0: skip PostgreSQL")
    args = parser.parse_args()
    print("| variant | rows | s | rows/s | MiB written |\n|---|---|---|---|---|")
    frames = demo_frames(args.rows)
    with tempfile.TemporaryDirectory(prefix="seamless-batch-log-") as tmp:
        work = Path(tmp)
        timed("json-lines", lambda: json_lines(frames, work / "a"), args.rows)
        timed("json-lines-lean", lambda: json_lines(frames, work / "b", lean=True), args.rows)
        timed("batch-segment", lambda: batch_segment(frames, work / "c"), args.rows)
    if args.pg_rows:
        pg_variants(args.pg_rows)


if __name__ == "__main__":
    main()
