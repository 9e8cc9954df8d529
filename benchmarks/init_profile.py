"""`seamless init` on a wide table: this tree against a baseline revision, same data,
same run.

Times the two halves of init on one generated CSV (a card-fraud-shaped table: an id, an
ISO event time, numeric features written as text, two categories and a 0/1 label):
`build_scaffold` (reading, the type of every column, keys, label, starter suite) and
`dry_validate` (ingest and validation of the written config on the same data). Each
revision runs in its own process with its tree first on `sys.path`; rounds alternate
between them and the median is kept. The written configs must be the same.

    python benchmarks/init_profile.py --rows 284807 --base <rev> [--rounds 3] \\
        [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
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

_CHILD = """
import json, sys, time
from pathlib import Path
tree, csv, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
sys.path.insert(0, tree)
from datetime import UTC, datetime
from pipelines.scaffold import build_scaffold, dry_validate, write_config
t0 = time.perf_counter()
plan = build_scaffold(str(csv), "Class", name="fraud", data_dir=csv.parent,
                      now=datetime(2026, 1, 1, tzinfo=UTC))
t1 = time.perf_counter()
write_config(out, plan.text, force=True)
dry = dry_validate(out, csv.parent)
t2 = time.perf_counter()
print(json.dumps({"scaffold_s": t1 - t0, "dry_run_s": t2 - t1,
                  "decision": dry.result.decision}))
"""


def make_table(rows: int, path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01T00:00:00Z")
    frame = pd.DataFrame(
        {
            "tx_id": np.arange(rows),
            "event_time": (
                start + pd.to_timedelta(np.sort(rng.integers(0, 172_800, rows)), "s")
            ).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    v = rng.normal(size=(rows, 24))
    for i in range(24):
        frame[f"V{i + 1}"] = v[:, i].round(6)
    frame["Amount"] = rng.lognormal(3, 1.5, rows).round(2)
    frame["items"] = rng.integers(1, 30, rows)
    frame["channel"] = rng.choice(["web", "pos", "phone"], rows)
    frame["country"] = rng.choice([f"C{i:02d}" for i in range(40)], rows)
    logit = -5.5 + 1.5 * v[:, 0] - 1.2 * v[:, 3]
    frame["Class"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.to_csv(path, index=False)


def run_once(tree: Path, csv: Path, out: Path) -> dict[str, float]:
    return json_child(_CHILD, str(tree), str(csv), str(out), what=f"{tree}: init")


def main() -> None:
    parser = bench_parser(__doc__, rounds=3)
    parser.add_argument("--rows", type=int, default=284_807)
    parser.add_argument("--base", required=True, help="git revision of the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-init-") as tmp_dir:
        tmp = Path(tmp_dir)
        csv = tmp / "data" / "transactions.csv"
        csv.parent.mkdir()
        make_table(args.rows, csv)
        mb = csv.stat().st_size / 2**20
        print(f"{args.rows:,} rows x 31 columns, {mb:.0f} MiB of CSV", flush=True)

        def once(name: str, tree: Path) -> dict[str, float]:
            return run_once(tree, csv, tmp / f"{name}.yaml")

        results = against_base(args.base, tmp, args.rounds, once)
        same = (tmp / "baseline.yaml").read_text() == (tmp / "new.yaml").read_text()
    lines = _table(results, args, same)
    print("\n".join(lines))
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(lines) + "\n")


def _table(
    results: dict[str, list[dict[str, float]]], args: argparse.Namespace, same: bool
) -> list[str]:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"### `seamless init` on {args.rows:,} rows x 31 columns ({stamp})",
        "",
        f"Baseline = revision `{args.base}`, new = this tree; same CSV, same run, rounds "
        f"alternating, median of {args.rounds} (`benchmarks/init_profile.py`).",
        "",
        "| phase | baseline s | new s | speed-up |",
        "|---|---|---|---|",
    ]
    for key, label in (("scaffold_s", "profile, keys, label, suite"), ("dry_run_s", "dry run")):
        b, n = median("baseline", key), median("new", key)
        lines.append(f"| {label} | {b:.1f} | {n:.1f} | {b / n:.2f}x |")
    total_b = median("baseline", "scaffold_s") + median("baseline", "dry_run_s")
    total_n = median("new", "scaffold_s") + median("new", "dry_run_s")
    lines.append(f"| both | {total_b:.1f} | {total_n:.1f} | {total_b / total_n:.2f}x |")
    lines += [
        "",
        f"Written configs identical: {'yes' if same else 'NO'}; dry-run decision "
        f"{results['new'][-1]['decision']}.",
    ]
    return lines


if __name__ == "__main__":
    main()
