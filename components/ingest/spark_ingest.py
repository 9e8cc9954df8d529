"""The ingest stage on Spark (`engine: spark`): same checks, same snapshot, data in Spark.

Spark reads the files; each partition is normalized by the local engine's own
converters (`normalize.CONVERTERS`, run in Spark's Python workers over Arrow batches),
so a value parses the same way on both engines. The checks then run as Spark
aggregations and fail with the local engine's sentences, row numbers included (rows
count in Spark's partition order, which is the file's order for one file).

The snapshot has the same layout and contract as the local engine's: one
`<table>.parquet` per table with the pandas dtypes of `normalize` (nanosecond UTC
timestamps, nullable integers), and the same content hashes (`tables.content_hash`),
computed while the driver streams Spark's output into that file batch by batch (memory:
one batch plus 8 bytes per row for the sorted row hashes). Spark stores timestamps in
microseconds, so sub-microsecond digits are cut (counted in the manifest).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from components.common.config import (
    INGESTED_AT,
    ROW_ID,
    ColumnType,
    FileSource,
    LabelsConfig,
    SeamlessConfig,
    TableConfig,
)
from components.common.errors import SeamlessError
from components.common.labels import apply_value_map, canonical_series, check_label_counts
from components.common.spark import engine_record, spark_session
from components.common.tables import (
    MANIFEST,
    TableWriter,
    dataset_hash,
    hash_of_rows,
    pandas_writer,
    row_hashes,
    write_dataset_with,
    write_json_atomic,
)
from components.ingest.ingest import ingest_table
from components.ingest.normalize import (
    CONVERTERS,
    check_columns,
    declared_types,
    duplicate_key_problem,
    empty_key_problem,
    example_text,
    invalid_values_problem,
    key_columns,
    nonblank,
    show_value,
    warn_invalid,
)
from components.ingest.sources import describe_source
from components.ingest.spark_read import SparkRaw, read_raw, spark_failure

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

_PID, _POS, _LABEL, _MAPPED = "__pid", "__pos", "__label", "__mapped"
_EXAMPLES = 5
_PANDAS_DTYPES = {  # declared type -> the dtype `normalize` gives it
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "string": "object",
    "timestamp": "datetime64[ns, UTC]",
}


@dataclass(frozen=True)
class _Plan:
    """What Spark's Python workers need to normalize a partition (pickled to them)."""

    types: dict[str, ColumnType]
    nanos: tuple[str, ...]
    label_column: str | None
    labels: LabelsConfig | None
    out_schema: pa.Schema

    def bad(self, i: int) -> str:
        return f"__bad{i}"

    def shown(self, i: int) -> str:
        return f"__shown{i}"

    def example(self, i: int) -> str:
        return f"__example{i}"


def _normalize_partition(plan: _Plan) -> Callable[[Iterable[Any]], Iterable[Any]]:
    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        pid = context.partitionId() if context is not None else 0
        pos = 0
        for batch in batches:
            n = batch.num_rows
            arrays: dict[str, Any] = {name: batch.column(name) for name in batch.schema.names}
            extra: dict[str, Any] = {
                _PID: np.full(n, pid, dtype="int32"),
                _POS: np.arange(pos, pos + n, dtype="int64"),
            }
            pos += n
            raw_label = None
            for i, (col, kind) in enumerate(plan.types.items()):
                raw = arrays[col].to_pandas()
                if col in plan.nanos:
                    raw = pd.to_datetime(raw, unit="ns", utc=True)
                if col == plan.label_column and plan.labels is not None:
                    raw_label = raw
                    raw, _ = apply_value_map(plan.labels, raw)
                converted = CONVERTERS[kind](raw)
                if kind == "timestamp":
                    converted = converted.dt.floor("us")  # Spark's resolution
                bad = (nonblank(raw) & converted.isna()).to_numpy(bool)
                arrays[col] = converted
                extra[plan.bad(i)] = bad
                shown = np.full(n, None, dtype=object)
                example = np.full(n, None, dtype=object)
                for j in np.flatnonzero(bad):
                    shown[j] = show_value(raw.iloc[j])
                    example[j] = example_text(raw.iloc[j])
                extra[plan.shown(i)] = shown
                extra[plan.example(i)] = example
            if plan.label_column is not None and plan.labels is not None:
                extra[_LABEL] = canonical_series(pd.Series(arrays[plan.label_column]))
                mapped = None
                if plan.labels.value_map and raw_label is not None:
                    text = canonical_series(raw_label)
                    mapped = text.where(text.isin(list(plan.labels.value_map)), None)
                extra[_MAPPED] = mapped if mapped is not None else np.full(n, None, dtype=object)
            columns = []
            for field in plan.out_schema:
                value = arrays[field.name] if field.name in arrays else extra[field.name]
                if isinstance(value, pa.ChunkedArray | pa.Array):
                    columns.append(value.cast(field.type))
                else:
                    columns.append(pa.array(value, type=field.type, from_pandas=True))
            yield pa.RecordBatch.from_arrays(columns, schema=plan.out_schema)

    return run


def _spark_type(kind: ColumnType) -> Any:
    from pyspark.sql import types as T

    return {
        "int": T.LongType(),
        "float": T.DoubleType(),
        "bool": T.BooleanType(),
        "string": T.StringType(),
        "timestamp": T.TimestampType(),
    }[kind]


def _plan(raw: SparkRaw, types: dict[str, ColumnType], labels: LabelsConfig | None) -> _Plan:
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    fields = [
        T.StructField(f.name, _spark_type(types[f.name]) if f.name in types else f.dataType)
        for f in raw.frame.schema.fields
    ]
    fields += [T.StructField(_PID, T.IntegerType()), T.StructField(_POS, T.LongType())]
    for i in range(len(types)):
        fields += [
            T.StructField(f"__bad{i}", T.BooleanType()),
            T.StructField(f"__shown{i}", T.StringType()),
            T.StructField(f"__example{i}", T.StringType()),
        ]
    if labels is not None:
        fields += [T.StructField(_LABEL, T.StringType()), T.StructField(_MAPPED, T.StringType())]
    struct = T.StructType(fields)
    return _Plan(
        types=types,
        nanos=tuple(raw.nanos_columns),
        label_column=labels.label_column if labels is not None else None,
        labels=labels,
        out_schema=to_arrow_schema(struct),
    )


class _Positions:
    """Rows per Spark partition, to turn (partition, position) into a row number."""

    def __init__(self, counts: dict[int, int]) -> None:
        self.offsets: dict[int, int] = {}
        total = 0
        for pid in sorted(counts):
            self.offsets[pid] = total
            total += counts[pid]
        self.total = total

    def row(self, pid: int, pos: int) -> int:
        """The 1-based row number of `pos` in partition `pid`."""
        return self.offsets[pid] + pos + 1

    def row_id(self) -> Column:
        """0-based source position, as the local engine numbers `row_id`."""
        from pyspark.sql import functions as F

        pairs = [x for pid, off in self.offsets.items() for x in (F.lit(pid), F.lit(off))]
        return (F.element_at(F.create_map(*pairs), F.col(_PID)) + F.col(_POS)).cast("long")


def _first(stats: list[Any], count_key: str, pos_key: str) -> tuple[int, int, int]:
    """(total, pid, pos) of the first flagged row over the partitions' stats rows."""
    total = sum(int(r[count_key] or 0) for r in stats)
    hits = sorted((r[_PID], r[pos_key]) for r in stats if r[count_key])
    pid, pos = hits[0] if hits else (-1, -1)
    return total, pid, pos


def _check(
    norm: DataFrame,
    plan: _Plan,
    table_cfg: TableConfig,
    where: str,
    strict: frozenset[str],
) -> tuple[_Positions, dict[str, int], dict[str, list[str]]]:
    """Run the local engine's checks as aggregations; returns positions and tolerated values."""
    from pyspark.sql import functions as F

    keys = key_columns(table_cfg)
    aggs = [F.count(F.lit(1)).alias("n")]
    for i in range(len(plan.types)):
        flag = F.col(plan.bad(i))
        aggs += [
            F.sum(flag.cast("long")).alias(f"c{i}"),
            F.min(F.when(flag, F.col(_POS))).alias(f"p{i}"),
        ]
    for k, key in enumerate(keys):
        empty = F.col(key).isNull()
        aggs += [
            F.sum(empty.cast("long")).alias(f"kc{k}"),
            F.min(F.when(empty, F.col(_POS))).alias(f"kp{k}"),
        ]
    stats = norm.groupBy(_PID).agg(*aggs).collect()
    positions = _Positions({int(r[_PID]): int(r["n"]) for r in stats})
    n = positions.total
    if n == 0:
        raise SeamlessError(f"{where} has no rows.")

    def at(pid: int, pos: int, column: str) -> Any:
        hit = norm.where((F.col(_PID) == pid) & (F.col(_POS) == pos)).select(column).first()
        return hit[0] if hit is not None else None

    invalid: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for i, (col, kind) in enumerate(plan.types.items()):
        count, pid, pos = _first(stats, f"c{i}", f"p{i}")
        if not count:
            continue
        shown = str(at(pid, pos, plan.shown(i)))
        row = positions.row(pid, pos)
        problem = invalid_values_problem(
            where, col, kind, count, n, row, shown, table_cfg, col in strict
        )
        if problem:
            raise SeamlessError(problem)
        first_values = (
            norm.where(F.col(plan.bad(i)))
            .orderBy(_PID, _POS)
            .select(plan.example(i))
            .limit(20 * _EXAMPLES)
            .collect()
        )
        invalid[col] = count
        examples[col] = list(dict.fromkeys(str(r[0]) for r in first_values))[:_EXAMPLES]
        warn_invalid(where, col, kind, count, examples[col])
    for k, key in enumerate(keys):
        count, pid, pos = _first(stats, f"kc{k}", f"kp{k}")
        if count:
            raise SeamlessError(empty_key_problem(where, key, count, positions.row(pid, pos)))
    if table_cfg.entity_column:
        _check_duplicates(norm, keys, positions, where)
    return positions, invalid, examples


def _check_duplicates(norm: DataFrame, keys: list[str], positions: _Positions, where: str) -> None:
    from pyspark.sql import functions as F

    shared = norm.groupBy(*keys).count().where(F.col("count") > 1)
    total = shared.agg(F.sum("count")).first()
    if total is None or not total[0]:
        return
    first = (
        norm.join(shared.select(*keys), keys).orderBy(_PID, _POS).select(*keys, _PID, _POS).first()
    )
    assert first is not None
    pair = (
        norm.join(
            norm.where((F.col(_PID) == first[_PID]) & (F.col(_POS) == first[_POS])).select(*keys),
            keys,
        )
        .orderBy(_PID, _POS)
        .select(_PID, _POS)
        .limit(2)
        .collect()
    )
    key = {}
    for c in keys:
        value = first[c]
        if isinstance(value, datetime):
            ts = pd.Timestamp(value)
            value = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        key[c] = value
    rows = [positions.row(r[_PID], r[_POS]) for r in pair]
    raise SeamlessError(duplicate_key_problem(where, key, rows[0], rows[1], int(total[0])))


def _label_policy(
    norm: DataFrame, labels: LabelsConfig, table: str, where: str, n: int
) -> tuple[DataFrame, dict[str, Any]]:
    """The local engine's label policy (`ingest._label_policy`) from label counts."""
    from pyspark.sql import functions as F

    counts = {r[_LABEL]: int(r["count"]) for r in norm.groupBy(_LABEL).count().collect()}
    mapped = {
        str(r[_MAPPED]): int(r["count"])
        for r in norm.where(F.col(_MAPPED).isNotNull()).groupBy(_MAPPED).count().collect()
    }
    check = check_label_counts(labels, counts)
    info: dict[str, Any] = {
        "column": labels.label_column,
        "mapped": mapped,
        "classes": list(check.classes.all),
        "dropped": 0,
        "dropped_values": {},
    }
    if labels.unknown_values == "drop" and check.count:
        if check.count == n:
            sentence = check.sentence(table, labels.label_column, config_hint=False)
            raise SeamlessError(f"{sentence[:-1]}; dropping them would leave no rows.")
        norm = norm.where(F.col(_LABEL).isin(list(check.classes.all)))
        info["dropped"] = check.count
        info["dropped_values"] = check.value_counts
        log.warning(
            "%s: dropped %d rows whose label is not one of %s (labels.unknown_values: drop)",
            where,
            check.count,
            check.classes.describe(),
        )
    return norm, info


def _pandas_dtypes(
    types: dict[str, ColumnType], generated: list[str]
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Give a batch read back from Spark's Parquet the dtypes `normalize` gives."""

    def fix(df: pd.DataFrame) -> pd.DataFrame:
        for col in df.columns:
            kind = types.get(col)
            if col == INGESTED_AT and col in generated:
                kind = "timestamp"
            if kind == "timestamp" and getattr(df[col].dt, "tz", None) is None:
                df[col] = df[col].dt.tz_localize("UTC")
            if kind is not None:
                df[col] = df[col].astype(_PANDAS_DTYPES[kind])
            elif col == ROW_ID and col in generated:
                df[col] = df[col].astype("int64")
        return df

    return fix


def _stream_writer(
    folder: Path, fix: Callable[[pd.DataFrame], pd.DataFrame], generated: list[str]
) -> tuple[TableWriter, dict[str, Any]]:
    """A writer that streams Spark's part files into one pandas-typed Parquet file,
    hashing as it goes; the source hash (without generated columns) lands in `extra`."""
    import pyarrow.parquet as pq

    extra: dict[str, Any] = {}

    def write(path: Path) -> dict[str, Any]:
        parts = sorted(p for p in folder.glob("part-*.parquet"))
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        dtypes: dict[str, str] = {}
        source_dtypes: dict[str, str] = {}
        hashes: list[np.ndarray] = []
        source_hashes: list[np.ndarray] = []
        columns: list[str] = []
        rows = 0
        try:
            for part in parts:
                for batch in pq.ParquetFile(part).iter_batches(batch_size=1 << 17):
                    df = fix(batch.to_pandas())
                    if writer is None:
                        schema = pa.Schema.from_pandas(df, preserve_index=False)
                        writer = pq.ParquetWriter(path, schema)
                        columns = [str(c) for c in df.columns]
                        dtypes = {c: str(df[c].dtype) for c in columns}
                        source_dtypes = {c: t for c, t in dtypes.items() if c not in generated}
                    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
                    writer.write_table(table)
                    hashes.append(row_hashes(df))
                    source_hashes.append(row_hashes(df.drop(columns=generated)))
                    rows += len(df)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # no part file holds a row (checked before; kept for safety)
            raise SeamlessError(f"Spark wrote no rows to {folder}.")
        empty = np.zeros(0, dtype="uint64")
        extra["source_sha256"] = hash_of_rows(
            source_dtypes, np.concatenate(source_hashes) if source_hashes else empty
        )
        sha = hash_of_rows(dtypes, np.concatenate(hashes) if hashes else empty)
        return {"rows": rows, "columns": columns, "sha256": sha}

    return write, extra


def _ingest_spark_table(
    spark: SparkSession,
    raw: SparkRaw,
    name: str,
    table_cfg: TableConfig,
    where: str,
    stamp: datetime,
    labels: LabelsConfig | None,
    scratch: Path,
) -> tuple[TableWriter, dict[str, Any]]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    columns = list(raw.frame.columns)
    check_columns(columns, table_cfg, where)
    strict: frozenset[str] = frozenset()
    if labels is not None:
        if labels.label_column not in columns:
            raise SeamlessError(
                f"{where}: the label column '{labels.label_column}' (labels.label_column) "
                "is missing."
            )
        if labels.unknown_values == "fail":
            strict = frozenset({labels.label_column})
    types = declared_types(table_cfg)
    if labels is not None and labels.label_column not in types:
        # An undeclared label column stays as read; it is normalized as text for the check.
        types = {**types, labels.label_column: "string"}
    plan = _plan(raw, types, labels)
    norm = raw.frame.mapInArrow(_normalize_partition(plan), _struct_of(plan))
    norm = norm.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        positions, invalid, examples = _check(norm, plan, table_cfg, where, strict)
        label_info: dict[str, Any] = {}
        if labels is not None:
            norm, label_info = _label_policy(norm, labels, name, where, positions.total)
        generated: list[str] = []
        out = norm
        if table_cfg.entity_column is None:
            out = out.withColumn(ROW_ID, positions.row_id())
            generated.append(ROW_ID)
        if table_cfg.timestamp_column is None:
            out = out.withColumn(INGESTED_AT, F.lit(stamp).cast("timestamp"))
            generated.append(INGESTED_AT)
        folder = scratch / name
        # One file per table, as the local engine writes: the rows were computed in
        # parallel (and cached) by the checks, so only the write itself is one task.
        out.select(*columns, *generated).coalesce(1).write.parquet(folder.as_uri())
    finally:
        norm.unpersist()
    writer, extra = _stream_writer(folder, _pandas_dtypes(types, generated), generated)
    info: dict[str, Any] = {
        "generated_columns": generated,
        "invalid_values": invalid,
        "invalid_examples": examples,
        "max_invalid_fraction": table_cfg.max_invalid_fraction,
        "ingested_at": stamp.isoformat(),
        "engine": "spark",
    }
    if label_info:
        info["labels"] = label_info

    def write(path: Path) -> dict[str, Any]:
        entry = writer(path)
        info["source_sha256"] = extra["source_sha256"]
        return entry

    return write, info


def _struct_of(plan: _Plan) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(plan.out_schema)


def ingest_tables_spark(
    config: SeamlessConfig,
    data_dir: str | Path | None,
    out_folder: str | Path,
    ingested_at: datetime | None = None,
) -> dict[str, Any]:
    """`ingest.ingest_tables` with Spark reading and normalizing the file tables.

    Tables Spark cannot read where it runs (HTTP, SQL, APIs; object storage without the
    S3A connector) are ingested by the local engine; the manifest says which per table.
    """
    stamp = ingested_at or datetime.now(UTC)
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
    spark = spark_session(config)
    writers: dict[str, TableWriter] = {}
    info: dict[str, dict[str, Any]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="seamless-spark-ingest-"))
    try:
        for name, table_cfg in config.tables.items():
            labels = config.labels if name == config.labels.table else None
            source = table_cfg.source
            shown = describe_source(source, data_dir)
            where = f"Table '{name}' ({source.kind} {shown})"
            expected = list(table_cfg.columns) + [
                c for c in (table_cfg.entity_column, table_cfg.timestamp_column) if c
            ]
            raw = (
                read_raw(spark, source, data_dir, f"Table '{name}'", expected)
                if isinstance(source, FileSource)
                else None
            )
            if raw is None:
                df, table_info = ingest_table(name, table_cfg, data_dir, stamp, labels)
                writers[name] = pandas_writer(df)
                info[name] = {**table_info, "engine": "local"}
                log.info("Table '%s': read by the local engine (Spark does not read it here)", name)
                continue
            try:
                writers[name], table_info = _ingest_spark_table(
                    spark, raw, name, table_cfg, where, stamp, labels, scratch
                )
            except SeamlessError:
                raise
            except Exception as exc:  # a Spark job failed, e.g. on a malformed CSV row
                raise spark_failure(f"Table '{name}'", shown, exc) from None
            # The writer fills in source_sha256 of this same dict when it runs.
            table_info.update(source=shown, source_kind=source.kind)
            info[name] = table_info
        manifest = write_dataset_with(out_folder, writers, info)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    manifest["source_sha256"] = dataset_hash(
        {n: e["source_sha256"] for n, e in manifest["tables"].items()}
    )
    manifest["ingested_at"] = stamp.isoformat()
    manifest.update(engine_record(config))
    write_json_atomic(Path(out_folder) / MANIFEST, manifest)
    return manifest
