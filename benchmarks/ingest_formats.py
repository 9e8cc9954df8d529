"""Ingest of one table written as CSV, JSON lines and Parquet: time and peak memory,
same data, same run, CSV as the baseline.

The table has an id past 2**53, an ISO event time, integers (some missing), floats, a
category, a boolean and free text. Each format is ingested (`ingest_table`: read,
normalize, keys) in its own process, so its peak resident memory is its own; rounds
alternate between the formats and the median is kept. The typed tables must be equal.

    python benchmarks/ingest_formats.py --rows 1000000 [--rounds 2] [--out docs/benchmarks.md]

With `--base REV`, each format is also ingested by that revision's tree in the same run
(rounds alternating the trees), and the table shows the change.

    python benchmarks/ingest_formats.py --rows 1000000 --base 7b651f2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab import against_base, bench_parser, json_child  # noqa: E402  (benchmarks/ is not a package)

FORMATS = {"csv": "t.csv", "json lines": "t.jsonl", "parquet": "t.parquet"}
COLUMNS = {
    "customer_id": "int",
    "event_time": "timestamp",
    "age": "int",
    "visits": "int",
    "income": "float",
    "score": "float",
    "plan": "string",
    "active": "bool",
    "note": "string",
}

_CHILD = """
import hashlib, json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from components.common.config import TableConfig
from components.ingest.ingest import ingest_table
path, columns = Path(sys.argv[2]), json.loads(sys.argv[3])
cfg = TableConfig.model_validate({"source": {"kind": "file", "uri": str(path)},
    "entity_column": "customer_id", "timestamp_column": "event_time", "columns": columns})
t0 = time.perf_counter()
df, info = ingest_table("t", cfg, None)
seconds = time.perf_counter() - t0
typed = df[list(columns)]
digest = hashlib.sha256(typed.to_csv(index=False).encode()).hexdigest()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "rows": len(df), "sha256": digest}))
"""


def make_table(rows: int, folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01T00:00:00Z")
    seconds = np.sort(rng.integers(0, 30 * 86_400, rows))
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(rows, dtype="int64") + 900_000_000_000_000_001,
            "event_time": (start + pd.to_timedelta(seconds, "s")).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "age": pd.array(rng.integers(18, 90, rows), dtype="Int64"),
            "visits": rng.integers(0, 1000, rows),
            "income": rng.normal(50_000, 12_000, rows).round(2),
            "score": rng.random(rows),
            "plan": rng.choice(["basic", "pro", "team", "enterprise"], rows),
            "active": rng.random(rows) < 0.7,
            "note": [f"customer note {i % 997}" for i in range(rows)],
        }
    )
    frame.loc[frame.index % 13 == 0, "age"] = pd.NA
    frame.to_csv(folder / FORMATS["csv"], index=False)
    # json, not DataFrame.to_json: that writes 10 significant digits of a float.
    with (folder / FORMATS["json lines"]).open("w") as fh:
        for record in frame.astype(object).where(frame.notna(), None).to_dict("records"):
            fh.write(json.dumps(record) + "\n")
    frame.to_parquet(folder / FORMATS["parquet"], index=False)


def run_once(path: Path, tree: Path = ROOT) -> dict[str, float]:
    return json_child(_CHILD, str(tree), str(path), json.dumps(COLUMNS), what=f"ingest of {path}")


def main() -> None:
    parser = bench_parser(__doc__, rounds=2)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--base", help="also ingest with this git revision, same run")
    args = parser.parse_args()
    base: dict[str, list[dict[str, float]]] = {f: [] for f in FORMATS}
    with tempfile.TemporaryDirectory(prefix="seamless-bench-formats-") as tmp:
        folder = Path(tmp)
        make_table(args.rows, folder)
        sizes = {f: (folder / name).stat().st_size / 2**20 for f, name in FORMATS.items()}
        runs: dict[str, list[dict[str, float]]] = {f: [] for f in FORMATS}
        if args.base:

            def every_format(name: str, tree: Path) -> dict[str, object]:
                return {fmt: run_once(folder / file, tree) for fmt, file in FORMATS.items()}

            both = against_base(args.base, folder, args.rounds, every_format)
            for fmt in FORMATS:
                runs[fmt] = [r[fmt] for r in both["new"]]
                base[fmt] = [r[fmt] for r in both["baseline"]]
        else:
            for _ in range(args.rounds):
                for fmt, name in FORMATS.items():
                    runs[fmt].append(run_once(folder / name))
                    print(fmt, runs[fmt][-1], file=sys.stderr)
    digests = {run["sha256"] for rs in (*runs.values(), *base.values()) for run in rs}
    if len(digests) != 1:
        raise SystemExit(f"the formats (or trees) gave different typed tables: {digests}")
    text = _table(args, runs, sizes, base)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _table(
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, float]]],
    sizes: dict[str, float],
    base: dict[str, list[dict[str, float]]],
) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    csv_s = _median(runs["csv"], "seconds")
    against = f" --base {args.base}" if args.base else ""
    lines = [
        f"### Ingest by file format, {args.rows:,} rows x {len(COLUMNS)} columns ({stamp})",
        "",
        f"`benchmarks/ingest_formats.py --rows {args.rows} --rounds {args.rounds}{against}`: "
        "one table as CSV, JSON lines and Parquet, `ingest_table` in a process of its own per "
        "format (read, normalize, keys), median of the rounds; every format"
        + (f" and both trees (this one and {args.base})" if args.base else "")
        + " gave the same typed table.",
        "",
        "| format | file MiB | seconds | vs CSV | peak RSS MiB |"
        + (f" {args.base} seconds | change |" if args.base else ""),
        "|---|---:|---:|---:|---:|" + ("---:|---:|" if args.base else ""),
    ]
    for fmt, rs in runs.items():
        seconds, peak = _median(rs, "seconds"), _median(rs, "peak_mib")
        row = f"| {fmt} | {sizes[fmt]:.0f} | {seconds:.1f} | {seconds / csv_s:.2f}x | {peak:.0f} |"
        if args.base:
            before = _median(base[fmt], "seconds")
            row += f" {before:.1f} | {(seconds / before - 1) * 100:+.1f}% |"
        lines.append(row)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
