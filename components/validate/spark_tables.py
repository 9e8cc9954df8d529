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
from components.common.labels import canonical
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
        label_counts = {}
        # Labels have a handful of values: canonical text (labels.canonical) is exact in Python.
        for r in frame.groupBy(_col(labels.label_column).alias("v")).count().collect():
            value = r["v"]
            if isinstance(value, float) and np.isnan(value):
                value = None
            text = canonical(value)
            label_counts[text] = label_counts.get(text, 0) + int(r["count"])
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
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, (name, dtype) in enumerate(dtypes.items()):
        kind = column_kind(dtype)
        present = ~_missing(name, dtype)
        value = _numeric(name, kind)
        aggs += [
            F.sum((~present).cast("long")).alias(f"n{i}"),
            F.countDistinct(F.when(present, _col(name))).alias(f"d{i}"),
        ]
        if kind in ("integer", "float", "timestamp"):
            finite = (
                present & ~F.col(f"`{name}`").isin(float("inf"), float("-inf"))
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
    columns = []
    for i, (name, dtype) in enumerate(dtypes.items()):
        kind = column_kind(dtype)
        nulls = int(row[f"n{i}"] or 0)
        out: dict[str, Any] = {
            "name": name,
            "dtype": str(dtype),
            "kind": kind,
            "nulls": nulls,
            "null_percent": round(100.0 * nulls / rows, 3) if rows else 0.0,
            "distinct": int(row[f"d{i}"] or 0),
        }
        try:
            if kind in ("integer", "float", "timestamp"):
                out.update(_range_stats(frame, name, kind, row, i))
            elif kind in ("string", "bool"):
                out.update(_top_values(frame, name, rows - nulls))
        except Exception as exc:  # the profile is auxiliary: an odd column must not fail
            out["error"] = f"{type(exc).__name__}: {exc}"[:200]
        columns.append(out)
    return {"rows": rows, "columns": columns}


def _numeric(name: str, kind: str) -> Column:
    """Numbers as they are; timestamps as nanoseconds since the epoch (the local ticks)."""
    from pyspark.sql import functions as F

    if kind == "timestamp":
        return F.unix_micros(_col(name)) * F.lit(1000)
    return _col(name)


def _range_stats(frame: DataFrame, name: str, kind: str, row: Any, i: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    lo, hi = row[f"lo{i}"], row[f"hi{i}"]
    out: dict[str, Any] = {}
    if kind == "float" and row[f"inf{i}"]:
        out["infinite"] = int(row[f"inf{i}"])
    if lo is None:
        none: dict[str, Any] = {"min": None, "max": None, "histogram": None}
        return out | (none if kind == "timestamp" else none | {"mean": None})
    value = _numeric(name, kind)
    finite = value.isNotNull()
    if kind == "float":
        finite = finite & ~F.isnan(value) & ~value.isin(float("inf"), float("-inf"))
    if kind == "integer" and int(hi) - int(lo) < MAX_INTEGER_BINS:
        by_value: dict[int, int] = dict(
            frame.where(finite).groupBy((value - F.lit(int(lo))).alias("b")).count().collect()
        )
        n = int(hi) - int(lo) + 1
        return out | {
            "min": jsonable(lo),
            "max": jsonable(hi),
            "mean": jsonable(float(row[f"mean{i}"])),
            "histogram": {
                "edges": list(range(int(lo), int(hi) + 2)),
                "counts": [int(by_value.get(b, 0)) for b in range(n)],
                "discrete": True,
            },
        }
    span = float(hi) - float(lo)
    if span > 0:
        scaled = F.floor((value.cast("double") - F.lit(float(lo))) / F.lit(span) * HISTOGRAM_BINS)
        # np.histogram's last bin holds the maximum too.
        bucket = F.least(scaled, F.lit(HISTOGRAM_BINS - 1)).cast("int")
    else:
        bucket = F.lit(0)
    by_bin: dict[int, int] = dict(frame.where(finite).groupBy(bucket.alias("b")).count().collect())
    counts = [int(by_bin.get(b, 0)) for b in range(HISTOGRAM_BINS)]
    edges = np.linspace(float(lo), float(hi) if span > 0 else float(lo) + 1.0, HISTOGRAM_BINS + 1)
    if span == 0:  # np.histogram's range for a single value: [v - 0.5, v + 0.5]
        edges = np.linspace(float(lo) - 0.5, float(lo) + 0.5, HISTOGRAM_BINS + 1)
        counts = [0] * HISTOGRAM_BINS
        counts[HISTOGRAM_BINS // 2] = int(by_bin.get(0, 0))
    if kind == "timestamp":
        ticks = np.round(edges).astype(np.int64)
        ticks[0], ticks[-1] = int(lo), int(hi)
        text = [t.isoformat() for t in pd.to_datetime(ticks, unit="ns", utc=True)]
        return out | {
            "min": text[0],
            "max": text[-1],
            "histogram": {"edges": text, "counts": counts},
        }
    return out | {
        "min": jsonable(lo),
        "max": jsonable(hi),
        "mean": jsonable(float(row[f"mean{i}"])),
        "histogram": {"edges": jsonable(edges, truncate=False), "counts": counts},
    }


def _top_values(frame: DataFrame, name: str, present: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    counts = frame.where(_col(name).isNotNull()).groupBy(_col(name).alias("v")).count()
    top = counts.orderBy(F.col("count").desc(), F.col("v")).limit(TOP_VALUES).collect()
    listed = [{"value": jsonable(r["v"]), "count": int(r["count"])} for r in top]
    return {"top": listed, "other_count": int(present - sum(t["count"] for t in listed))}
