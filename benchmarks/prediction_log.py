"""Benchmark: the prediction log's PostgreSQL spool (`SpooledLog`) against `PgLog` direct.

One run, on a throwaway PostgreSQL started on loopback (`tests/helpers/postgres.py`,
switched to durable commits: `fsync`, `full_page_writes` and `synchronous_commit` on,
as in production; the test helper turns them off). Cases, interleaved: every round runs
each of them once, in a rotated order, and the table reports the median over rounds:

- `pg`: `PgLog.append(records)` direct, as serving wrote before the spool (no log_key);
- `pg-keys`: the same with a log_key per record (the spool's unique keys, no spool);
- `spooled-up`: `SpooledLog.append` with PostgreSQL up (direct write with log_keys);
- `spooled-down`: `SpooledLog.append` with PostgreSQL unreachable (a closed loopback
  port): every acknowledgement is a write + fsync of the spool file;
- `drain`: a spool backlog of `--backlog` records sent to PostgreSQL by `drain()`.

Each append case: `--threads` writer threads, `--appends` appends each, of a batch of
`--batch` records. Latency is per `append` call. The spool is in a temp folder on the
same filesystem as PostgreSQL's data.

Usage: python benchmarks/prediction_log.py [--rounds 5] [--appends 500]
       [--batch 1 32] [--threads 1 8] [--backlog 50000] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.predictions.postgres import PgLog, libpq_url  # noqa: E402
from components.predictions.spool import Spool, SpooledLog  # noqa: E402

PREFIX = "predictions"
MODES = ("pg", "pg-keys", "spooled-up", "spooled-down")
Append = Callable[[list[dict[str, Any]]], None]


def make_records(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Prediction records shaped like serving's (10 features)."""
    ts = datetime.now(UTC).isoformat()
    return [
        {
            "ts": ts,
            "request_id": f"req-{start + i:09d}",
            "index": i,
            "entity_id": start + i,
            "route": "champion",
            "model_name": "credit-default",
            "model_version": "7",
            "features": {f"f{j}": 0.125 * j + i % 97 for j in range(10)},
            "score": 0.5 + (i % 100) / 1000,
            "decision": i % 2 == 0,
        }
        for i in range(n)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_writers(append: Append, batch: int, threads: int, appends: int) -> dict[str, float]:
    """`threads` threads each call `append` `appends` times: records/s, p50/p99 ms."""
    records = [make_records(batch, t * 10**6) for t in range(threads)]
    append(records[0])  # warm-up: connect (or meet the outage) outside the timing
    latencies: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def writer(t: int) -> None:
        barrier.wait()
        for _ in range(appends):
            t0 = time.perf_counter()
            append(records[t])
            latencies[t].append(time.perf_counter() - t0)

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    flat = [x for lat in latencies for x in lat]
    return {
        "records_per_s": threads * appends * batch / wall,
        "p50_ms": percentile(flat, 0.50) * 1000,
        "p99_ms": percentile(flat, 0.99) * 1000,
    }


def spooled(url: str, spool_dir: Path, background: bool = True) -> SpooledLog:
    spool = Spool(spool_dir, PREFIX, max_bytes=8 << 30)
    log = SpooledLog(PgLog(url, PREFIX), spool, background=background, close_drain_s=0.0)
    log.open()
    return log


def keyed(pg: PgLog) -> Append:
    """`pg.append` with a unique log_key per record, made as SpooledLog makes them."""
    token, counter = uuid.uuid4().hex[:16], itertools.count()
    return lambda recs: pg.append(recs, [f"{token}-{next(counter)}" for _ in recs])


def append_case(mode: str, url: str, down_url: str, tmp: Path, **kw: int) -> dict[str, float]:
    spool_dir = Path(tempfile.mkdtemp(prefix="spool-", dir=tmp))
    if mode.startswith("pg"):
        pg = PgLog(url, PREFIX)
        pg.open()
        try:
            return run_writers(keyed(pg) if mode == "pg-keys" else pg.append, **kw)
        finally:
            pg.close()
    log = spooled(url if mode == "spooled-up" else down_url, spool_dir)
    try:
        result = run_writers(log.append, **kw)
        if (mode == "spooled-up") == bool(log.pending):  # the wrong path was measured
            raise RuntimeError(f"{mode}: {log.pending} records spooled, {log.database}")
        return result
    finally:
        log.close()


def drain_case(url: str, down_url: str, tmp: Path, backlog: int, server: Any) -> dict[str, float]:
    """Spool `backlog` records while PostgreSQL is away, then time `drain()` into it."""
    spool_dir = Path(tempfile.mkdtemp(prefix="drain-", dir=tmp))
    down = spooled(down_url, spool_dir, background=False)
    for start in range(0, backlog, 1000):
        down.append(make_records(min(1000, backlog - start), start))
    down.close()
    count = f"SELECT count(*) FROM seamless_{PREFIX}"
    before = query(server, count)
    up = spooled(url, spool_dir, background=False)
    try:
        t0 = time.perf_counter()
        up.drain(timeout_s=300)
        seconds = time.perf_counter() - t0
    finally:
        up.close()
    if (drained := query(server, count) - before) != backlog:
        raise RuntimeError(f"drain: {drained} rows in the table, not {backlog}")
    return {"records_per_s": backlog / seconds, "seconds": seconds}


def query(server: Any, sql: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(libpq_url(server.url()))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def make_durable(server: Any) -> None:
    """Restart the helper's server with its defaults (fsync, full_page_writes and
    synchronous_commit on, as in production): the test helper starts it with them off
    on its command line, which ALTER SYSTEM cannot override."""
    from tests.helpers.postgres import postgres_bin_dir

    data = Path(query(server, "SHOW data_directory"))
    root = data.parent  # the helper's temp folder: its socket dir, log and data dir
    bindir = postgres_bin_dir()
    assert bindir is not None  # the server runs
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    opts = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root}"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts,
         "-m", "fast", "-w", "-t", "60", "restart"],
        check=True, capture_output=True, timeout=120, cwd=root,
    )  # fmt: skip


def bench(args: argparse.Namespace, server: Any, tmp: Path) -> dict[str, Any]:
    from tests.helpers.postgres import free_port

    make_durable(server)
    durable = {k: query(server, f"SHOW {k}") for k in ("fsync", "synchronous_commit")}
    if set(durable.values()) != {"on"}:
        raise RuntimeError(f"PostgreSQL did not switch to durable commits: {durable}")
    url = server.url()
    down_url = f"postgresql://{server.user}:{server.password}@127.0.0.1:{free_port()}/postgres"
    cases: list[tuple[str, int, int]] = [
        (m, b, t) for b in args.batch for t in args.threads for m in MODES
    ]
    cases.append(("drain", 0, 0))
    runs: dict[tuple[str, int, int], list[dict[str, float]]] = {c: [] for c in cases}
    for r in range(args.rounds):
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            mode, batch, threads = case
            if mode == "drain":
                res = drain_case(server.url(), down_url, tmp, args.backlog, server)
            else:
                res = append_case(
                    mode, url, down_url, tmp, batch=batch, threads=threads, appends=args.appends
                )
            runs[case].append(res)
            print(f"round {r + 1} {mode} batch={batch} threads={threads}: {res}", file=sys.stderr)
        server.execute(f"TRUNCATE seamless_{PREFIX}")
    med: dict[tuple[str, int, int], dict[str, float]] = {
        case: {k: statistics.median(res[k] for res in results) for k in results[0]}
        for case, results in runs.items()
    }
    rows: list[dict[str, Any]] = []
    for (mode, batch, threads), m in med.items():
        row: dict[str, Any] = {"mode": mode, "batch": batch, "threads": threads, **m}
        if mode in MODES:
            base = med[("pg", batch, threads)]
            row["rate_vs_pg"] = m["records_per_s"] / base["records_per_s"]
            row["p50_vs_pg"] = m["p50_ms"] / base["p50_ms"]
        rows.append(row)
    return {
        "rounds": args.rounds,
        "appends_per_thread": args.appends,
        "backlog": args.backlog,
        "postgresql": durable,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| case | batch | threads | records/s | p50 ms | p99 ms | rate vs pg | p50 vs pg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        if row["mode"] == "drain":
            lines.append(
                f"| drain {result['backlog']:,} spooled records | 1000 | 1 | "
                f"{row['records_per_s']:,.0f} | | | {row['seconds']:.2f} s total | |"
            )
            continue
        lines.append(
            f"| {row['mode']} | {row['batch']} | {row['threads']} | {row['records_per_s']:,.0f} "
            f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['rate_vs_pg']:.2f}x "
            f"| {row['p50_vs_pg']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--appends", type=int, default=500, help="appends per writer thread")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    args = parser.parse_args(argv)
    if min(args.rounds, args.appends, *args.batch, *args.threads, args.backlog) < 1:
        parser.error("--rounds, --appends, --batch, --threads and --backlog must be >= 1")
    # The outage cases log a warning per log opened; the numbers are the output here.
    logging.getLogger("components.serve").setLevel(logging.CRITICAL)
    from tests.helpers.postgres import postgres_server

    with tempfile.TemporaryDirectory(prefix="seamless-bench-log-") as tmp:
        try:
            with postgres_server() as server:
                result = bench(args, server, Path(tmp))
        except BaseException as exc:  # pytest's skip (no PostgreSQL here) is a BaseException
            if type(exc).__name__ not in ("Skipped", "Failed"):
                raise
            print(f"PostgreSQL cannot be started here: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
