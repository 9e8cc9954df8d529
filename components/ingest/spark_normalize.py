"""Declared types on Spark, parsed exactly as the local engine parses them.

A column whose Spark type already is its declared type (Parquet's int64 for `int`, say)
is converted by a Spark expression: nothing in it can fail to parse. Every other column
(CSV text, mixed sources) goes through the local engine's own converters
(`normalize.convert`, with the column's format) in Spark's Python workers, over Arrow
batches, which also flag each value that did not parse (`bad_flag`) with its text for the
messages.

Each row keeps `ROW_MARK`, Spark's `monotonically_increasing_id()` taken as the file was
read: partition index in the upper bits, position within the partition in the lower 33,
which is how the checks turn a row into its row number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from components.common.config import ColumnFormat, ColumnType, LabelsConfig
from components.common.labels import apply_value_map, canonical_series
from components.ingest.normalize import convert, example_text, show_value, unparsed

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

ROW_MARK, PARTITION, POSITION = "__mark", "__pid", "__pos"
LABEL, MAPPED = "__label", "__mapped"
_POSITION_BITS = 33


@dataclass(frozen=True)
class Plan:
    """How each declared column is converted; pickled to Spark's Python workers."""

    types: dict[str, ColumnType]
    formats: dict[str, ColumnFormat]
    """How text columns are written (`TableConfig.formats`)."""
    python: tuple[str, ...]
    """Columns the Python workers convert; the rest convert as Spark expressions."""
    labels: LabelsConfig | None
    label_in_python: bool
    out_schema: pa.Schema | None
    """The workers' output (None: no column needs them)."""

    def flagged(self) -> list[tuple[int, str, ColumnType]]:
        """(index, column, type) of the columns that can hold unparseable values."""
        return [(i, c, self.types[c]) for i, c in enumerate(self.python)]


def bad_flag(i: int) -> str:
    return f"__bad{i}"


def shown_text(i: int) -> str:
    return f"__shown{i}"


def example_of(i: int) -> str:
    return f"__example{i}"


def finer_flag(i: int) -> str:
    """Set where a timestamp has digits below a microsecond, which Spark cannot hold."""
    return f"__finer{i}"


_NATIVE_SOURCES = {  # declared type -> Spark source types it converts from exactly
    "int": ("ByteType", "ShortType", "IntegerType", "LongType"),
    "float": ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType"),
    "bool": ("BooleanType",),
    "string": ("StringType",),
    "timestamp": ("TimestampType", "TimestampNTZType"),
}


def spark_type(kind: ColumnType) -> Any:
    from pyspark.sql import types as T

    return {
        "int": T.LongType(),
        "float": T.DoubleType(),
        "bool": T.BooleanType(),
        "string": T.StringType(),
        "timestamp": T.TimestampType(),
    }[kind]


def _native(kind: ColumnType, column: str) -> Column:
    from pyspark.sql import functions as F

    col = F.col(f"`{column}`")
    if kind == "string":  # the local engine's one null marker: blank text is null
        return F.when(col == "", None).otherwise(col)
    return col.cast(spark_type(kind))


def _native_label(kind: ColumnType, column: str) -> Column | None:
    """The label's canonical text (`labels.canonical`) as a Spark expression, if exact."""
    from pyspark.sql import functions as F

    col = F.col(f"`{column}`")
    if kind in ("int", "string"):
        return col.cast("string")
    if kind == "bool":
        return F.when(col, "true").when(~col, "false")
    return None  # floats print differently in Spark and Python


def _with_infinities(
    frame: DataFrame, types: dict[str, ColumnType], source: dict[str, str]
) -> set[str]:
    """Typed float columns holding an infinity: the local engine counts those values as
    unparseable, so these columns are converted by the same code (one pass over them)."""
    from pyspark.sql import functions as F

    typed = [c for c, k in types.items() if k == "float" and source[c] in _FLOAT_SOURCES]
    if not typed:
        return set()
    inf = [F.lit(float("inf")), F.lit(float("-inf"))]
    found = frame.select(
        *[F.max(F.col(f"`{c}`").isin(*inf).cast("int")).alias(str(i)) for i, c in enumerate(typed)]
    ).first()
    return {c for i, c in enumerate(typed) if found is not None and found[str(i)]}


_FLOAT_SOURCES = ("FloatType", "DoubleType")


def make_plan(
    frame: DataFrame,
    types: dict[str, ColumnType],
    labels: LabelsConfig | None,
    formats: dict[str, ColumnFormat] | None = None,
) -> Plan:
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    source = {f.name: type(f.dataType).__name__ for f in frame.schema.fields}
    mapped = labels.label_column if labels is not None and labels.value_map else None
    infinite = _with_infinities(frame, types, source)
    python = tuple(
        c
        for c, kind in types.items()
        if source[c] not in _NATIVE_SOURCES[kind] or c == mapped or c in infinite
    )
    label_in_python = labels is not None and (
        labels.label_column in python
        or _native_label(types[labels.label_column], labels.label_column) is None
    )
    out_schema = None
    if python or label_in_python:
        fields = [
            T.StructField(f.name, spark_type(types[f.name]) if f.name in python else f.dataType)
            for f in frame.schema.fields
        ]
        for i in range(len(python)):
            fields += [
                T.StructField(bad_flag(i), T.BooleanType()),
                T.StructField(shown_text(i), T.StringType()),
                T.StructField(example_of(i), T.StringType()),
            ]
            if types[python[i]] == "timestamp":
                fields.append(T.StructField(finer_flag(i), T.BooleanType()))
        if label_in_python:
            fields += [T.StructField(LABEL, T.StringType()), T.StructField(MAPPED, T.StringType())]
        out_schema = to_arrow_schema(T.StructType(fields))
    return Plan(types, dict(formats or {}), python, labels, label_in_python, out_schema)


def _partition_worker(plan: Plan) -> Callable[[Iterable[Any]], Iterable[Any]]:
    assert plan.out_schema is not None
    schema: pa.Schema = plan.out_schema
    label = plan.labels.label_column if plan.labels is not None else None

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            n = batch.num_rows
            arrays: dict[str, Any] = {name: batch.column(name) for name in batch.schema.names}
            raw_label = None
            for i, col in enumerate(plan.python):
                raw = arrays[col].to_pandas()
                if col == label and plan.labels is not None:
                    raw_label = raw
                    raw, _ = apply_value_map(plan.labels, raw)
                converted = convert(plan.types[col], raw, plan.formats.get(col))
                bad = unparsed(raw, converted).to_numpy(bool)
                shown_rows = bad
                if plan.types[col] == "timestamp":
                    micros = converted.dt.floor("us")  # Spark's resolution
                    finer = (converted.notna() & (converted != micros)).to_numpy(bool)
                    arrays[finer_flag(i)] = finer
                    shown_rows = bad | finer
                    converted = micros  # refused by the checks if any was finer
                arrays[col] = converted
                shown = np.full(n, None, dtype=object)
                example = np.full(n, None, dtype=object)
                for j in np.flatnonzero(shown_rows):
                    shown[j] = show_value(raw.iloc[j])
                    example[j] = example_text(raw.iloc[j])
                arrays[bad_flag(i)] = bad
                arrays[shown_text(i)] = shown
                arrays[example_of(i)] = example
            if plan.label_in_python and label is not None and plan.labels is not None:
                value = arrays[label]
                values = (
                    value.to_pandas() if isinstance(value, pa.ChunkedArray | pa.Array) else value
                )
                arrays[LABEL] = canonical_series(pd.Series(values))
                mapped = np.full(n, None, dtype=object)
                if raw_label is not None and plan.labels.value_map:
                    text = canonical_series(pd.Series(raw_label))
                    mapped = text.where(text.isin(list(plan.labels.value_map)), None)
                arrays[MAPPED] = mapped
            columns = []
            for field in schema:
                value = arrays[field.name]
                if isinstance(value, pa.ChunkedArray | pa.Array):
                    columns.append(value.cast(field.type))
                else:
                    columns.append(pa.array(value, type=field.type, from_pandas=True))
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return run


def normalize_frame(
    frame: DataFrame,
    types: dict[str, ColumnType],
    labels: LabelsConfig | None,
    formats: dict[str, ColumnFormat] | None = None,
) -> tuple[DataFrame, Plan]:
    """The frame with declared types, row marks, flags (and label text for the labels)."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    # Taken as read, before anything can move rows between partitions.
    out = frame.withColumn(ROW_MARK, F.monotonically_increasing_id())
    plan = make_plan(out, types, labels, formats)
    if plan.out_schema is not None:
        out = out.mapInArrow(_partition_worker(plan), from_arrow_schema(plan.out_schema))
    for col, kind in types.items():
        if col not in plan.python:
            out = out.withColumn(col, _native(kind, col))
    if labels is not None and not plan.label_in_python:
        expr = _native_label(types[labels.label_column], labels.label_column)
        assert expr is not None  # make_plan sends the other label types to the workers
        out = out.withColumn(LABEL, expr).withColumn(MAPPED, F.lit(None).cast("string"))
    mask = (1 << _POSITION_BITS) - 1
    out = out.withColumn(PARTITION, F.shiftright(F.col(ROW_MARK), _POSITION_BITS).cast("int"))
    return out.withColumn(POSITION, F.col(ROW_MARK).bitwiseAND(F.lit(mask))), plan
