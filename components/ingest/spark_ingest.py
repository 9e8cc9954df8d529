"""The ingest stage on Spark (`engine: spark`): same checks, same snapshot, data in Spark.

Spark reads the files; each partition is normalized by the local engine's own
converters (`normalize.convert`, run in Spark's Python workers over Arrow batches),
so a value parses the same way on both engines. The checks then run as Spark
aggregations and fail with the local engine's sentences, row numbers included (rows
count in Spark's partition order, which is the file's order for one file). Repeated
keys are looked for while the snapshot is written, as repeated hashes of each row's keys;
only then does Spark search for the rows (a shuffle of every row, a third of the time
ingest took at 10M label rows when it ran for every table).

The snapshot has the same layout and contract as the local engine's: one
`<table>.parquet` per table with the pandas dtypes of `normalize` (nanosecond UTC
timestamps, nullable integers), and the same content hashes (`tables.content_hash`),
computed while the driver streams Spark's output into that file batch by batch (memory:
one batch plus 8 bytes per row for the sorted row hashes). Spark stores timestamps in
microseconds, so a table with a timestamp finer than that is refused, naming its column
and row (the local engine keeps nanoseconds).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from components.common.config import (
    INGESTED_AT,
    ROW_ID,
    ColumnType,
    FileSource,
    LabelsConfig,
    SeamlessConfig,
    SqlSource,
    TableConfig,
)
from components.common.errors import SeamlessError
from components.common.labels import check_label_counts
from components.common.pii import (
    WITHHELD,
    Pseudonymizer,
    check_distinct,
    config_key,
    log_pii,
    table_record,
    withheld,
    without_dropped,
)
from components.common.spark import finer_than_micros, spark_session
from components.common.spark_kubernetes import scratch_root
from components.common.spark_write import stream_writer, write_parts
from components.common.tables import (
    PANDAS_DTYPES,
    TableWriter,
    pandas_writer,
    write_dataset_with,
)
from components.ingest.ingest import (
    ingest_table,
    label_decision,
    warn_missing_markers,
)
from components.ingest.normalize import (
    check_columns,
    declared_columns,
    declared_types,
    duplicate_key_problem,
    empty_key_problem,
    invalid_values_problem,
    key_columns,
    warn_invalid,
)
from components.ingest.snapshot import finish_manifest, utc_stamp
from components.ingest.sources import MARKER_SPACE_PATTERN, describe_source
from components.ingest.spark_normalize import (
    LABEL,
    MAPPED,
    PARTITION,
    POSITION,
    Plan,
    bad_flag,
    example_of,
    finer_flag,
    normalize_frame,
    shown_text,
)
from components.ingest.spark_read import (
    SparkRaw,
    read_jdbc,
    read_raw,
    reread_with_line_breaks,
    spark_failure,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

_EXAMPLES = 5


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
        return (F.element_at(F.create_map(*pairs), F.col(PARTITION)) + F.col(POSITION)).cast("long")


def _first(stats: list[Any], count_key: str, pos_key: str) -> tuple[int, int, int]:
    """(total, pid, pos) of the first flagged row over the partitions' stats rows."""
    total = sum(int(r[count_key] or 0) for r in stats)
    hits = sorted((r[PARTITION], r[pos_key]) for r in stats if r[count_key])
    pid, pos = hits[0] if hits else (-1, -1)
    return total, pid, pos


def _check(
    norm: DataFrame,
    plan: Plan,
    table_cfg: TableConfig,
    where: str,
    strict: frozenset[str],
) -> tuple[_Positions, dict[str, int], dict[str, list[str]]]:
    """Run the local engine's checks as aggregations; returns positions and tolerated values."""
    from pyspark.sql import functions as F

    keys = key_columns(table_cfg)
    aggs = [F.count(F.lit(1)).alias("n")]
    for i, _, kind in plan.flagged():
        flags = [("", bad_flag(i))] + ([("f", finer_flag(i))] if kind == "timestamp" else [])
        for prefix, name in flags:
            flag = F.col(name)
            aggs += [
                F.sum(flag.cast("long")).alias(f"{prefix}c{i}"),
                F.min(F.when(flag, F.col(POSITION))).alias(f"{prefix}p{i}"),
            ]
    for k, key in enumerate(keys):
        empty = F.col(key).isNull()
        aggs += [
            F.sum(empty.cast("long")).alias(f"kc{k}"),
            F.min(F.when(empty, F.col(POSITION))).alias(f"kp{k}"),
        ]
    stats = norm.groupBy(PARTITION).agg(*aggs).collect()
    positions = _Positions({int(r[PARTITION]): int(r["n"]) for r in stats})
    n = positions.total
    if n == 0:
        raise SeamlessError(f"{where} has no rows.")

    def at(pid: int, pos: int, column: str) -> Any:
        hit = (
            norm.where((F.col(PARTITION) == pid) & (F.col(POSITION) == pos)).select(column).first()
        )
        return hit[0] if hit is not None else None

    for i, col, kind in plan.flagged():
        count, pid, pos = _first(stats, f"fc{i}", f"fp{i}") if kind == "timestamp" else (0, 0, 0)
        if count:
            row, shown = positions.row(pid, pos), str(at(pid, pos, shown_text(i)))
            raise SeamlessError(finer_than_micros(where, col, count, row, shown))
    invalid: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for i, col, kind in plan.flagged():
        count, pid, pos = _first(stats, f"c{i}", f"p{i}")
        if not count:
            continue
        hide = withheld(table_cfg, col)  # a pii column's source values stay out
        shown = WITHHELD if hide else str(at(pid, pos, shown_text(i)))
        row = positions.row(pid, pos)
        problem = invalid_values_problem(
            where, col, kind, count, n, row, shown, table_cfg, col in strict
        )
        if problem:
            raise SeamlessError(problem)
        invalid[col] = count
        if hide:
            examples[col] = [WITHHELD]
        else:
            first_values = (
                norm.where(F.col(bad_flag(i)))
                .orderBy(PARTITION, POSITION)
                .select(example_of(i))
                .limit(20 * _EXAMPLES)
                .collect()
            )
            examples[col] = list(dict.fromkeys(str(r[0]) for r in first_values))[:_EXAMPLES]
        warn_invalid(where, col, kind, count, examples[col])
    for k, key in enumerate(keys):
        count, pid, pos = _first(stats, f"kc{k}", f"kp{k}")
        if count:
            raise SeamlessError(empty_key_problem(where, key, count, positions.row(pid, pos)))
    return positions, invalid, examples


def _check_duplicates(
    norm: DataFrame, keys: list[str], positions: _Positions, where: str, hidden: list[str]
) -> None:
    from pyspark.sql import functions as F

    shared = norm.groupBy(*keys).count().where(F.col("count") > 1)
    total = shared.agg(F.sum("count")).first()
    if total is None or not total[0]:
        return
    first = (
        norm.join(shared.select(*keys), keys)
        .orderBy(PARTITION, POSITION)
        .select(*keys, PARTITION, POSITION)
        .first()
    )
    assert first is not None
    pair = (
        norm.join(
            norm.where(
                (F.col(PARTITION) == first[PARTITION]) & (F.col(POSITION) == first[POSITION])
            ).select(*keys),
            keys,
        )
        .orderBy(PARTITION, POSITION)
        .select(PARTITION, POSITION)
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
    rows = [positions.row(r[PARTITION], r[POSITION]) for r in pair]
    raise SeamlessError(duplicate_key_problem(where, key, rows[0], rows[1], int(total[0]), hidden))


def _label_policy(
    norm: DataFrame, labels: LabelsConfig, table: str, where: str, n: int
) -> dict[str, Any]:
    """The local engine's label policy (`ingest._label_policy`) from label counts: the
    rows stay, the manifest counts those the training set leaves out."""
    from pyspark.sql import functions as F

    counts = {r[LABEL]: int(r["count"]) for r in norm.groupBy(LABEL).count().collect()}
    mapped = {
        str(r[MAPPED]): int(r["count"])
        for r in norm.where(F.col(MAPPED).isNotNull()).groupBy(MAPPED).count().collect()
    }
    check = check_label_counts(labels, counts)
    info = {"column": labels.label_column, "mapped": mapped}
    return label_decision(check, labels, info, table, where, n)


def _count_markers(
    frame: DataFrame, columns: list[str], markers: list[str]
) -> tuple[DataFrame, dict[str, dict[str, int]]]:
    """`ingest.count_missing_markers` in Spark: one aggregation over the text columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    text = [c for c in columns if isinstance(frame.schema[c].dataType, StringType)]
    if not markers or not text:
        return frame, {}
    bare = {c: F.regexp_replace(F.col(f"`{c}`"), MARKER_SPACE_PATTERN, "") for c in text}
    aggs = [
        F.sum((bare[c] == F.lit(m)).cast("long")).alias(f"{i}:{j}")
        for i, c in enumerate(text)
        for j, m in enumerate(markers)
    ]
    row = frame.agg(*aggs).first()
    assert row is not None
    counts: dict[str, dict[str, int]] = {}
    for i, c in enumerate(text):
        found = {m: int(row[f"{i}:{j}"] or 0) for j, m in enumerate(markers)}
        if any(found.values()):
            counts[c] = {m: n for m, n in found.items() if n}
    for c in counts:
        col = F.col(f"`{c}`")
        frame = frame.withColumn(c, F.when(bare[c].isin(markers), None).otherwise(col))
    return frame, counts


def _pseudonymize(
    out: DataFrame, table_cfg: TableConfig, where: str, key: Pseudonymizer | None
) -> tuple[DataFrame, dict[str, dict[str, Any]]]:
    """`pii.transform_frame`'s pseudonyms in Spark: the same `Pseudonymizer` runs in the
    Python workers over Arrow batches (exact int64s, no float detour), and one aggregation
    counts distinct values before and after."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    columns = [c for c in table_cfg.tagged("pseudonymize") if c in out.columns]
    if not columns:
        return out, {}
    assert key is not None, "a table with pseudonymized columns needs the key"
    kinds = {c: table_cfg.columns[c] for c in columns}
    temp = {c: f"__pii{i}" for i, c in enumerate(columns)}
    fields = list(out.schema.fields) + [
        T.StructField(temp[c], T.LongType() if kinds[c] == "int" else T.StringType())
        for c in columns
    ]
    schema = to_arrow_schema(T.StructType(fields))

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            arrays = [a.cast(schema.field(i).type) for i, a in enumerate(batch.columns)]
            for c in columns:
                values = key.values(batch.column(c).to_pylist(), kinds[c])
                arrays.append(pa.array(values, type=schema.field(temp[c]).type))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    with_pseudonyms = out.mapInArrow(run, from_arrow_schema(schema))
    aggs = []
    for c in columns:
        aggs += [
            F.countDistinct(F.col(f"`{c}`")).alias(f"{temp[c]}_before"),
            F.countDistinct(F.col(temp[c])).alias(f"{temp[c]}_after"),
            F.count(F.col(temp[c])).alias(f"{temp[c]}_values"),
        ]
    counts = with_pseudonyms.agg(*aggs).first()
    assert counts is not None
    done: dict[str, dict[str, Any]] = {}
    for c in columns:
        before, after = int(counts[f"{temp[c]}_before"]), int(counts[f"{temp[c]}_after"])
        check_distinct(where, c, before, after)
        done[c] = {"type": kinds[c], "values": int(counts[f"{temp[c]}_values"]), "distinct": after}
    replaced = [F.col(temp[c]).alias(c) if c in temp else F.col(f"`{c}`") for c in out.columns]
    return with_pseudonyms.select(*replaced), done


def _target_dtypes(
    columns: list[str], types: dict[str, ColumnType], generated: list[str]
) -> dict[str, str]:
    """Column -> the pandas dtype `normalize` gives it (undeclared columns: as read)."""
    out = {c: PANDAS_DTYPES[types[c]] for c in columns if c in types}
    if ROW_ID in generated:
        out[ROW_ID] = "int64"
    if INGESTED_AT in generated:
        out[INGESTED_AT] = PANDAS_DTYPES["timestamp"]
    return out


def _ingest_spark_table(
    shown: str,
    raw: SparkRaw,
    name: str,
    table_cfg: TableConfig,
    where: str,
    stamp: datetime,
    labels: LabelsConfig | None,
    scratch: Path,
    key: Pseudonymizer | None,
) -> tuple[TableWriter, dict[str, Any]]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    columns = list(raw.frame.columns)
    check_columns(columns, table_cfg, where)
    # Tagged `drop`: never normalized, never written (declared_types leaves them out).
    dropped = [c for c in table_cfg.tagged("drop") if c in columns]
    columns = [c for c in columns if c not in dropped]
    strict: frozenset[str] = frozenset()
    if labels is not None:
        if labels.label_column not in columns:
            raise SeamlessError(
                f"{where}: the label column '{labels.label_column}' (labels.label_column) "
                "is missing."
            )
        if labels.unknown_values == "fail":
            strict = frozenset({labels.label_column})
    source = table_cfg.source
    markers = source.missing_values if isinstance(source, FileSource) else []
    frame, missing = _count_markers(raw.frame, declared_columns(table_cfg, labels), markers)
    warn_missing_markers(where, missing)
    types = declared_types(table_cfg)
    if labels is not None and labels.label_column not in types:
        # An undeclared label column stays as read; it is normalized as text for the check.
        types = {**types, labels.label_column: "string"}
    norm, plan = normalize_frame(frame, types, labels, table_cfg.formats)
    norm = norm.persist(StorageLevel.MEMORY_AND_DISK)
    keys = key_columns(table_cfg) if table_cfg.entity_column else []

    def repeated_keys() -> None:
        """Look for two rows with the same keys in Spark, and refuse them as the local
        engine does: row numbers, and the count of rows whose keys repeat."""
        hidden = [k for k in keys if withheld(table_cfg, k)]
        try:
            _check_duplicates(norm, keys, positions, where, hidden)
        except SeamlessError:
            raise
        except Exception as exc:  # a Spark job failed re-reading the source
            raise spark_failure(f"Table '{name}'", shown, exc) from None

    try:
        positions, invalid, examples = _check(norm, plan, table_cfg, where, strict)
        label_info: dict[str, Any] = {}
        if labels is not None:
            label_info = _label_policy(norm, labels, name, where, positions.total)
        generated: list[str] = []
        out = norm
        if table_cfg.entity_column is None:
            out = out.withColumn(ROW_ID, positions.row_id())
            generated.append(ROW_ID)
        if table_cfg.timestamp_column is None:
            out = out.withColumn(INGESTED_AT, F.lit(stamp).cast("timestamp"))
            generated.append(INGESTED_AT)
        out, pseudonymized = _pseudonymize(
            out.select(*[f"`{c}`" for c in columns], *generated), table_cfg, where, key
        )
        folder = scratch / name
        # One file per table, as the local engine writes: the rows were computed in
        # parallel (and cached) by the checks, so only the write itself is one task.
        write_parts(out, folder)
    finally:
        norm.unpersist()
    dtypes = _target_dtypes([*columns, *generated], types, generated)
    # Repeated keys among the rows written show as repeated key hashes while they are
    # written: Spark's own search for them (a shuffle of every row) runs only then.
    writer, extra = stream_writer(folder, dtypes, generated, keys, repeated_keys)
    info: dict[str, Any] = {
        "generated_columns": generated,
        "invalid_values": invalid,
        "invalid_examples": examples,
        "max_invalid_fraction": table_cfg.max_invalid_fraction,
        "ingested_at": stamp.isoformat(),
        "engine": "spark",
    }
    if markers:
        info["missing_values"] = list(markers)
        info["missing_markers"] = missing
    if label_info:
        info["labels"] = label_info
    if pseudonymized or dropped:
        info["pii"] = table_record(pseudonymized, dropped, key)
        log_pii(where, info["pii"])
    info = without_dropped(info, table_cfg)

    def write(path: Path) -> dict[str, Any]:
        entry = writer(path)
        info["source_sha256"] = extra["source_sha256"]
        return entry

    return write, info


def ingest_tables_spark(
    config: SeamlessConfig,
    data_dir: str | Path | None,
    out_folder: str | Path,
    ingested_at: datetime | None = None,
) -> dict[str, Any]:
    """`stage.ingest_tables` with Spark reading and normalizing the file tables.

    Tables Spark cannot read where it runs (HTTP, SQL, APIs; object storage without the
    S3A connector) are ingested by the local engine; the manifest says which per table.
    """
    stamp = utc_stamp(ingested_at)
    key = config_key(config)  # a missing key fails before Spark starts
    spark = spark_session(config)
    writers: dict[str, TableWriter] = {}
    info: dict[str, dict[str, Any]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="seamless-spark-ingest-", dir=scratch_root()))
    try:
        for name, table_cfg in config.tables.items():
            labels = config.labels if name == config.labels.table else None
            source = table_cfg.source
            shown = describe_source(source, data_dir)
            where = f"Table '{name}' ({source.kind} {shown})"
            expected = declared_columns(table_cfg, labels)
            raw = None
            if isinstance(source, FileSource):
                raw = read_raw(spark, source, data_dir, f"Table '{name}'", expected)
            elif isinstance(source, SqlSource):
                raw = read_jdbc(spark, source, f"Table '{name}'")
            if raw is None:
                df, table_info = ingest_table(name, table_cfg, data_dir, stamp, labels, key)
                writers[name] = pandas_writer(df)
                info[name] = {**table_info, "engine": "local"}
                log.info("Table '%s': read by the local engine (Spark does not read it here)", name)
                continue
            for attempt in (1, 2):
                try:
                    writers[name], table_info = _ingest_spark_table(
                        shown, raw, name, table_cfg, where, stamp, labels, scratch, key
                    )
                    break
                except SeamlessError:
                    raise
                except Exception as exc:  # a Spark job failed, e.g. on a malformed CSV row
                    again = None
                    if attempt == 1 and isinstance(source, FileSource):
                        what = f"Table '{name}'"
                        again = reread_with_line_breaks(
                            spark, source, data_dir, what, expected, exc
                        )
                    if again is None:
                        raise spark_failure(f"Table '{name}'", shown, exc) from None
                    raw = again
                    shutil.rmtree(scratch / name, ignore_errors=True)
            # The writer fills in source_sha256 of this same dict when it runs.
            table_info.update(source=shown, source_kind=source.kind)
            if isinstance(source, SqlSource):
                table_info["query"] = source.query
            info[name] = table_info
        manifest = write_dataset_with(out_folder, writers, info)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return finish_manifest(config, out_folder, manifest, stamp)
