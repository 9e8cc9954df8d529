"""The validate step on a wide table: this tree against a baseline revision, same data,
same run.

One table of `--columns` float columns and a 0/1 label, with the suite `seamless init`
writes for such a table (a range and a null budget per column, two expectations a
column). Each revision validates it in its own process with its tree first on
`sys.path`, Great Expectations imported before the clock starts; rounds alternate and
the median is kept. Both must give the same decision and the same number of results.

    python benchmarks/validate_wide.py --base <rev> [--rows 5000] [--columns 300] \\
        [--rounds 3] [--out docs/benchmarks.md]
"""

from __future__ import annotations

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
sys.path.insert(0, sys.argv[1])
import pandas as pd
from components.common.config import load_config
from components.validate.validation import _import_gx, validate_tables
_import_gx()
config = load_config(Path(sys.argv[2]))
tables = {"wide": pd.read_parquet(sys.argv[3])}
t0 = time.perf_counter()
result = validate_tables(config, tables)
print(json.dumps({"seconds": time.perf_counter() - t0, "decision": result.decision,
                  "results": len(result.expectations)}))
"""


CONFIG = """
name: wide
tables:
  wide:
    source: {{kind: file, uri: wide.parquet}}
    columns: {{{columns}, label: int}}
labels: {{table: wide, label_column: label, positive_class: 1, negative_classes: [0]}}
features: {{service: svc, views: [{{name: v, table: wide, features: [{features}]}}]}}
model: {{name: wide}}
validation:
  expectations:
{suite}
"""


def make_inputs(rows: int, columns: int, folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(columns)]
    frame = pd.DataFrame(rng.normal(size=(rows, columns)).round(4), columns=names)
    frame["label"] = (frame["f0"] + rng.normal(size=rows) > 0).astype("Int64")
    frame.insert(0, "row_id", pd.array(range(rows), dtype="Int64"))
    frame["ingested_at"] = pd.Timestamp("2025-01-01", tz="UTC")  # as ingest adds it
    data = folder / "wide.parquet"
    frame.to_parquet(data, index=False)
    suite = "\n".join(
        f"    - {{table: wide, type: {kind}, kwargs: {{column: {n}, {args}}}, severity: warning}}"
        for n in names
        for kind, args in (
            ("expect_column_values_to_be_between", "min_value: -6, max_value: 6"),
            ("expect_column_values_to_not_be_null", "mostly: 0.99"),
        )
    )
    config = CONFIG.format(
        columns=", ".join(f"{n}: float" for n in names), features=", ".join(names), suite=suite
    )
    path = folder / "wide.yaml"
    path.write_text(config)
    return path, data


def run_once(tree: Path, config: Path, data: Path) -> dict[str, float]:
    return json_child(_CHILD, str(tree), str(config), str(data), what=f"{tree}: validate")


def main() -> None:
    parser = bench_parser(__doc__, rounds=3)
    parser.add_argument("--base", required=True, help="git revision of the baseline")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--columns", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp_dir:
        tmp = Path(tmp_dir)
        config, data = make_inputs(args.rows, args.columns, tmp)
        results = against_base(
            args.base, tmp, args.rounds, lambda _, tree: run_once(tree, config, data)
        )
    outcomes = {(r["decision"], r["results"]) for rs in results.values() for r in rs}
    if len(outcomes) != 1:
        raise SystemExit(f"the revisions disagree: {outcomes}")
    base_s = statistics.median(r["seconds"] for r in results["baseline"])
    new_s = statistics.median(r["seconds"] for r in results["new"])
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"### Validate, {args.rows:,} rows x {args.columns} columns, "
        f"{2 * args.columns} expectations ({stamp})",
        "",
        f"Baseline = revision `{args.base}`, new = this tree; same table and suite, same run, "
        f"rounds alternating, median of {args.rounds} (`benchmarks/validate_wide.py`); both "
        f"gave {outcomes.pop()} (decision, results).",
        "",
        "| | baseline s | new s | speed-up |",
        "|---|---:|---:|---:|",
        f"| validate_tables | {base_s:.1f} | {new_s:.1f} | {base_s / new_s:.1f}x |",
    ]
    print("\n".join(lines))
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
