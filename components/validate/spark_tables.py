"""The validate stage's own reading of the tables on Spark: built-in facts and the profile.

Great Expectations runs the user's suite through its Spark datasource
(`validation.validate_tables(..., spark_frames=...)`); what Seamless computes itself, the
facts behind the built-in checks and the per-column profile of the report, is computed
here as Spark aggregations, in the shape `builtin.frame_facts` and `profile.profile_tables`
give, so the report reads the same whichever engine ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from components.common.config import SeamlessConfig
from components.common.labels import counts_by_text
from components.common.spark import read_snapshot_table
from components.validate.builtin import TableFacts, has_declared_type
from components.validate.profile import (
    HISTOGRAM_BINS,
    MAX_INTEGER_BINS,
    PROFILE_VERSION,
    TOP_VALUES,
    column_kind,
)
from components.validate.results import jsonable

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


@dataclass
class SparkTables:
    """A dataset's tables in Spark, with the pandas dtypes of their snapshot files."""

    frames: dict[str, DataFrame]
    dtypes: dict[str, dict[str, Any]]

    @classmethod
    def of_snapshot(cls, spark: SparkSession, folder: str | Path, names: list[str]) -> SparkTables:
        paths = {n: Path(folder) / f"{n}.parquet" for n in names}
        return cls(
            frames={n: read_snapshot_table(spark, p) for n, p in paths.items()},
            dtypes={n: snapshot_dtypes(p) for n, p in paths.items()},
        )

    def facts(self, config: SeamlessConfig) -> dict[str, TableFacts]:
        return {n: spark_facts(config, n, f, self.dtypes[n]) for n, f in self.frames.items()}

    def profile(self, names: list[str]) -> dict[str, Any]:
        return profile_spark_tables(
            {n: self.frames[n] for n in names}, {n: self.dtypes[n] for n in names}
        )


def snapshot_dtypes(path: str | Path) -> dict[str, Any]:
    """Column -> pandas dtype of a snapshot table, from its file's schema (no data read)."""
    empty = pq.read_schema(path).empty_table().to_pandas()
    return {str(c): empty[c].dtype for c in empty.columns}


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(f"`{name}`")


def _missing(name: str, dtype: Any) -> Column:
    """Null as pandas counts it: a float NaN is missing too."""
    from pyspark.sql import functions as F

    col = _col(name)
    return (col.isNull() | F.isnan(col)) if column_kind(dtype) == "float" else col.isNull()


def spark_facts(
    config: SeamlessConfig, name: str, frame: DataFrame, dtypes: dict[str, Any]
) -> TableFacts:
    """`builtin.frame_facts` from Spark: one aggregation, plus label counts for the labels."""
    from pyspark.sql import functions as F

    keys = [
        c for c in dict.fromkeys([config.entity_key(), config.timestamp_key(name)]) if c in dtypes
    ]
    aggs = [F.count(F.lit(1)).alias("__rows")]
    aggs += [
        F.sum(_missing(c, dtypes[c]).cast("long")).alias(f"__null{i}") for i, c in enumerate(keys)
    ]
    row = frame.agg(*aggs).first()
    assert row is not None
    label_counts: dict[str | None, int] | None = None
    labels = config.labels
    if name == labels.table and labels.label_column in dtypes:
        found = frame.groupBy(_col(labels.label_column).alias("v")).count().collect()
        label_counts = counts_by_text((r["v"], r["count"]) for r in found)
    empty = {c: pd.Series([], dtype=d) for c, d in dtypes.items()}
    return TableFacts(
        rows=int(row["__rows"]),
        dtypes=dtypes,
        type_ok={
            c: has_declared_type(kind, empty[c])
            for c, kind in config.tables[name].columns.items()
            if c in dtypes
        },
        nulls={c: int(row[f"__null{i}"] or 0) for i, c in enumerate(keys)},
        label_counts=label_counts,
    )


# ---------------------------------------------------------------- profile


def profile_spark_tables(
    frames: dict[str, DataFrame], dtypes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """`profile.profile_tables` computed by Spark (same shape; ties in `top` by value)."""
    started = time.perf_counter()
    tables = {name: _profile_table(frame, dtypes[name]) for name, frame in frames.items()}
    return {
        "version": PROFILE_VERSION,
        "duration_s": round(time.perf_counter() - started, 3),
        "tables": tables,
    }


def _profile_table(frame: DataFrame, dtypes: dict[str, Any]) -> dict[str, Any]:
    """A table's profile in a fixed number of scans, not one per column: counts and
    ranges in one, every numeric column's histogram in another, then an exact distinct
    count per column that has no cheaper source (several distinct counts in one
    aggregation would make Spark copy every row once per column)."""
    from pyspark.sql import functions as F

    kinds = {name: column_kind(dtype) for name, dtype in dtypes.items()}
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, (name, dtype) in enumerate(dtypes.items()):
        kind = kinds[name]
        present = ~_missing(name, dtype)
        value = _numeric(name, kind)
        aggs.append(F.sum((~present).cast("long")).alias(f"n{i}"))
        if kind in ("integer", "float", "timestamp"):
            finite = (
                present & ~_col(name).isin(float("inf"), float("-inf"))
                if kind == "float"
                else present
            )
            aggs += [
                F.min(F.when(finite, value)).alias(f"lo{i}"),
                F.max(F.when(finite, value)).alias(f"hi{i}"),
                F.avg(F.when(finite, value.cast("double"))).alias(f"mean{i}"),
                F.sum((present & ~finite).cast("long")).alias(f"inf{i}"),
            ]
    row = frame.agg(*aggs).first()
    assert row is not None
    rows = int(row["__rows"])
    plans = {
        i: _histogram_plan(name, kinds[name], row, i)
        for i, name in enumerate(dtypes)
        if kinds[name] in ("integer", "float", "timestamp") and row[f"lo{i}"] is not None
    }
    binned = _bin_counts(frame, plans)
    columns = []
    for i, (name, dtype) in enumerate(dtypes.items()):
        kind = kinds[name]
        nulls = int(row[f"n{i}"] or 0)
        out: dict[str, Any] = {
            "name": name,
            "dtype": str(dtype),
            "kind": kind,
            "nulls": nulls,
            "null_percent": round(100.0 * nulls / rows, 3) if rows else 0.0,
        }
        try:
            distinct = None
            if kind in ("integer", "float", "timestamp"):
                stats, distinct = _range_stats(name, kind, row, i, plans.get(i), binned.get(i))
                out.update(stats)
            elif kind in ("string", "bool"):
                stats, distinct = _top_values(frame, name, rows - nulls)
                out.update(stats)
            if distinct is None:
                values = frame.where(~_missing(name, dtype)).select(_col(name))
                distinct = values.distinct().count()
            out = {**out, "distinct": int(distinct)}
        except Exception as exc:  # the profile is auxiliary: an odd column must not fail
            out["error"] = f"{type(exc).__name__}: {exc}"[:200]
        columns.append(_in_local_order(out))
    return {"rows": rows, "columns": columns}


_KEY_ORDER = ("name", "dtype", "kind", "nulls", "null_percent", "distinct")


def _in_local_order(out: dict[str, Any]) -> dict[str, Any]:
    """The keys in the local profile's order (the report lists them as they come)."""
    first = {k: out[k] for k in _KEY_ORDER if k in out}
    return first | {k: v for k, v in out.items() if k not in first}


def _numeric(name: str, kind: str) -> Column:
    """Numbers as they are; timestamps as nanoseconds since the epoch (the local ticks)."""
    from pyspark.sql import functions as F

    if kind == "timestamp":
        return F.unix_micros(_col(name)) * F.lit(1000)
    return _col(name)


@dataclass(frozen=True)
class _HistogramPlan:
    """How one column's values fall into bins: `bins` bins of `bucket` (an int column)."""

    bucket: Column
    bins: int
    discrete: bool
    span: float


def _histogram_plan(name: str, kind: str, row: Any, i: int) -> _HistogramPlan:
    from pyspark.sql import functions as F

    lo, hi = row[f"lo{i}"], row[f"hi{i}"]
    value = _numeric(name, kind)
    finite = value.isNotNull()
    if kind == "float":
        finite = finite & ~F.isnan(value) & ~value.isin(float("inf"), float("-inf"))
    if kind == "integer" and int(hi) - int(lo) < MAX_INTEGER_BINS:
        bucket = F.when(finite, value - F.lit(int(lo))).cast("int")
        return _HistogramPlan(bucket, int(hi) - int(lo) + 1, True, float(int(hi) - int(lo)))
    span = float(hi) - float(lo)
    if span > 0:
        scaled = F.floor((value.cast("double") - F.lit(float(lo))) / F.lit(span) * HISTOGRAM_BINS)
        # np.histogram's last bin holds the maximum too.
        bucket = F.least(scaled, F.lit(HISTOGRAM_BINS - 1)).cast("int")
    else:
        bucket = F.lit(0)
    return _HistogramPlan(F.when(finite, bucket), HISTOGRAM_BINS, False, span)


def _bin_counts(frame: DataFrame, plans: dict[int, _HistogramPlan]) -> dict[int, list[int]]:
    """Every planned histogram in one scan: each row gives one (column, bin) pair per
    column, and the pairs are counted by grouping. (A conditional count per column and
    bin would test every row against every bin: hundreds of tests a row.)"""
    from pyspark.sql import functions as F

    if not plans:
        return {}
    pairs = F.array(*[F.struct(F.lit(i).alias("c"), p.bucket.alias("b")) for i, p in plans.items()])
    binned = frame.select(F.inline(pairs)).where(F.col("b").isNotNull())
    counts = {i: [0] * p.bins for i, p in plans.items()}
    for r in binned.groupBy("c", "b").count().collect():
        counts[int(r["c"])][int(r["b"])] = int(r["count"])
    return counts


def _range_stats(
    name: str, kind: str, row: Any, i: int, plan: _HistogramPlan | None, counts: list[int] | None
) -> tuple[dict[str, Any], int | None]:
    """min, max, mean and histogram (local shape), and the distinct count when the bins
    give it exactly (one bin per integer value)."""
    lo, hi = row[f"lo{i}"], row[f"hi{i}"]
    out: dict[str, Any] = {}
    if kind == "float" and row[f"inf{i}"]:
        out["infinite"] = int(row[f"inf{i}"])
    if lo is None or plan is None or counts is None:
        none: dict[str, Any] = {"min": None, "max": None, "histogram": None}
        return out | (none if kind == "timestamp" else none | {"mean": None}), None
    if plan.discrete:
        return out | {
            "min": jsonable(lo),
            "max": jsonable(hi),
            "mean": jsonable(float(row[f"mean{i}"])),
            "histogram": {
                "edges": list(range(int(lo), int(hi) + 2)),
                "counts": counts,
                "discrete": True,
            },
        }, sum(1 for c in counts if c)
    span = plan.span
    edges = np.linspace(float(lo), float(hi) if span > 0 else float(lo) + 1.0, HISTOGRAM_BINS + 1)
    if span == 0:  # np.histogram's range for a single value: [v - 0.5, v + 0.5]
        edges = np.linspace(float(lo) - 0.5, float(lo) + 0.5, HISTOGRAM_BINS + 1)
        total, counts = counts[0], [0] * HISTOGRAM_BINS  # every value is in bin 0
        counts[HISTOGRAM_BINS // 2] = total
    if kind == "timestamp":
        ticks = np.round(edges).astype(np.int64) if span > 0 else np.full(len(edges), int(lo))
        ticks[0], ticks[-1] = int(lo), int(hi)
        text = [t.isoformat() for t in pd.to_datetime(ticks, unit="ns", utc=True)]
        return out | {
            "min": text[0],
            "max": text[-1],
            "histogram": {"edges": text, "counts": counts},
        }, None
    return out | {
        "min": jsonable(lo),
        "max": jsonable(hi),
        "mean": jsonable(float(row[f"mean{i}"])),
        "histogram": {"edges": jsonable(edges, truncate=False), "counts": counts},
    }, None


def _top_values(frame: DataFrame, name: str, present: int) -> tuple[dict[str, Any], int]:
    """The most frequent values, and the exact distinct count from the same grouping."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    counts = frame.where(_col(name).isNotNull()).groupBy(_col(name).alias("v")).count()
    counts = counts.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        distinct = counts.count()
        top = counts.orderBy(F.col("count").desc(), F.col("v")).limit(TOP_VALUES).collect()
    finally:
        counts.unpersist()
    listed = [{"value": jsonable(r["v"]), "count": int(r["count"])} for r in top]
    return {"top": listed, "other_count": int(present - sum(t["count"] for t in listed))}, distinct
