"""Benchmark: what the built-in checks and the column profile add to the validate step.

One synthetic table (default 1,000,000 rows x 20 declared columns: int, float, string,
bool, timestamp), validated in the same run three ways, each repeated:
- baseline: the user's suite alone (38 expectations, as in DESIGN.md's measurement);
- + built-in checks: the same plus the checks the config implies (builtin=True);
- + profile: the column profile the report shows (components/validate/profile.py).
Ratios against the baseline are what to read; the machine is shared and noisy.

Usage: python benchmarks/validation.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from components.common.config import parse_config
from components.validate.builtin import builtin_outcomes
from components.validate.profile import profile_tables
from components.validate.validation import validate_tables

KINDS = ["int"] * 6 + ["float"] * 6 + ["string"] * 4 + ["bool"] * 2 + ["timestamp"] * 2


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {"id": pd.array(np.arange(rows), dtype="Int64")}
    for i, kind in enumerate(KINDS):
        name = f"c{i}_{kind}"
        if kind == "int":
            data[name] = pd.array(rng.integers(0, 1000, rows), dtype="Int64")
        elif kind == "float":
            data[name] = rng.normal(size=rows)
        elif kind == "string":
            data[name] = rng.choice(np.array(["a", "b", "c", "d", None], dtype=object), rows)
        elif kind == "bool":
            data[name] = pd.array(rng.random(rows) < 0.5, dtype="boolean")
        else:
            base = pd.Timestamp("2024-01-01", tz="UTC")
            data[name] = base + pd.to_timedelta(rng.integers(0, 10**7, rows), unit="s")
    data["y"] = pd.array((rng.random(rows) < 0.1).astype(int), dtype="Int64")
    return pd.DataFrame(data)


def make_config(df: pd.DataFrame) -> str:
    cols = {c: c.split("_")[1] for c in df.columns if c.startswith("c")}
    cols.update({"id": "int", "y": "int"})
    not_null = "{{table: t, type: expect_column_values_to_not_be_null, kwargs: {{column: {}, mostly: 0.5}}}}"  # noqa: E501
    between = "{{table: t, type: expect_column_values_to_be_between, kwargs: {{column: {}, min_value: -1e6}}}}"  # noqa: E501
    exps = []
    for c, kind in cols.items():
        exps.append(not_null.format(c))
        if kind in ("int", "float"):
            exps.append(between.format(c))
    exps = exps[:38]
    columns = ", ".join(f"{c}: {k}" for c, k in cols.items())
    return f"""
name: bench
tables:
  t:
    source: {{kind: file, uri: t.parquet}}
    entity_column: id
    timestamp_column: c18_timestamp
    columns: {{{columns}}}
labels: {{table: t, label_column: y}}
features: {{service: s, views: [{{name: v, table: t, features: [c0_int]}}]}}
model: {{name: m}}
validation:
  expectations:
""" + "".join(f"    - {e}\n" for e in exps)


def interleaved(fns: list, repeat: int) -> list[float]:  # type: ignore[type-arg]
    """Median time of each function, run in turns so machine noise hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    df = make_table(args.rows)
    config = parse_config(make_config(df), origin="bench.yaml")
    tables = {"t": df}
    validate_tables(config, tables)  # warm up: GE import, first context
    base, full, own, prof = interleaved(
        [
            lambda: validate_tables(config, tables, builtin=False),
            lambda: validate_tables(config, tables),
            lambda: builtin_outcomes(config, tables, None),
            lambda: profile_tables(tables),
        ],
        args.repeat,
    )
    result = validate_tables(config, tables)
    print(
        f"rows {len(df):,} x {df.shape[1]} columns; user expectations "
        f"{len(result.expectations)}, built-in checks {len(result.builtin)}; median of "
        f"{args.repeat}"
    )
    print(f"user suite alone      {base:7.2f} s  1.00x")
    print(f"+ built-in checks     {full:7.2f} s  {full / base:.2f}x")
    print(f"built-in checks alone {own:7.2f} s  {own / base:.2f}x of the baseline")
    print(f"column profile        {prof:7.2f} s  {prof / base:.2f}x of the baseline")


if __name__ == "__main__":
    main()
