"""The features stage on Spark (`engine: spark`): Feast's Spark offline store and engine.

The feature tables go to the offline root as Spark Parquet folders (microsecond
timestamps, which Spark reads back as timestamps), registered as Feast `SparkSource`s;
Feast's Spark compute engine (`batch_engine: spark.engine`) loads the online store, and
Feast's Spark offline store does the point-in-time join. The label rows never leave
Spark until the training set is written in the local engine's file format
(`spark_write`), in the labels' order.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.labels import canonical, check_label_counts, counts_by_text
from components.common.spark import read_snapshot_table, spark_session
from components.common.spark_kubernetes import check_executor_writable, scratch_root
from components.common.spark_write import stream_writer, write_parts
from components.common.tables import PANDAS_DTYPES, TableWriter, write_dataset_with
from components.features.repo import build_objects, ensure_repo, offline_root
from components.features.store import (
    TableSpan,
    apply_objects,
    materialize_windows,
    online_windows,
    open_store,
    windows_as_json,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from components.stream.pushed import PushedSnapshot

log = logging.getLogger(__name__)

_ORDER = "__label_row"
_LABEL = "__label_value"


def spark_table_path(repo_path: Path, table: str, table_hash: str) -> Path:
    """The Spark Parquet folder of one feature table, named by its content hash."""
    root = offline_root(repo_path)
    if not isinstance(root, Path):
        raise SeamlessError(
            f"engine: spark writes Feast's offline tables with Spark, which reads {root} only "
            "with Hadoop's S3A connector (not set up here); see docs/spark.md, or use a "
            "folder for SEAMLESS_FEAST_OFFLINE_ROOT."
        )
    return root / table / f"{table_hash}.spark"


def _feature_frame(config: SeamlessConfig, table: str, frame: DataFrame) -> DataFrame:
    """`store.feature_frame` in Spark: rows with an entity and an event time, long keys."""
    from pyspark.sql import functions as F

    key, ts = config.entity_key(), config.timestamp_key(table)
    for role, col in (("entity", key), ("timestamp", ts)):
        if col not in frame.columns:
            raise SeamlessError(
                f"Table '{table}' has no {role} column '{col}' (columns: {frame.columns})."
            )
    out = frame.where(F.col(key).isNotNull() & F.col(ts).isNotNull())
    if config.tables[table].columns.get(key, "int") == "int":
        out = out.withColumn(key, F.col(key).cast("long"))
    return out


def _write_tables(
    config: SeamlessConfig,
    frames: dict[str, DataFrame],
    table_hashes: dict[str, str],
    repo_path: Path,
) -> tuple[dict[str, TableSpan], dict[str, str], int]:
    """Write each feature table once (content-addressed) and measure its span; also
    the number of distinct entities over all the tables."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spans: dict[str, TableSpan] = {}
    paths: dict[str, str] = {}
    # Each table's distinct entities, cached for the count over all tables: a few bytes
    # per entity, where a distinct over the union of the tables' rows would shuffle
    # every row once more.
    keys: dict[str, DataFrame] = {}
    try:
        for view in config.features.views:
            table = view.table
            if table in spans:
                continue
            frame = _feature_frame(config, table, frames[table])
            key, ts = config.entity_key(), config.timestamp_key(table)
            stats = frame.agg(
                F.count(F.lit(1)).alias("rows"), F.min(ts).alias("start"), F.max(ts).alias("end")
            ).first()
            assert stats is not None
            keys[table] = frame.select(key).distinct().persist(StorageLevel.MEMORY_AND_DISK)
            total = frames[table].count()
            if not stats["rows"]:
                raise SeamlessError(
                    f"Table '{table}' (feature view '{view.name}') has no row with both an "
                    f"entity and an event time."
                )
            spans[table] = TableSpan(
                start=stats["start"],
                end=stats["end"],
                entities=keys[table].count(),
                rows=int(stats["rows"]),
                dropped_rows=int(total - stats["rows"]),
                keys=frozenset(),
            )
            target = spark_table_path(repo_path, table, table_hashes[table])
            paths[table] = str(target)
            _write_once(frame, target)
        union = None
        for table_keys in keys.values():
            union = table_keys if union is None else union.union(table_keys)
        entities = union.distinct().count() if union is not None else 0
    finally:
        for table_keys in keys.values():
            table_keys.unpersist()
    return spans, paths, entities


def _write_once(frame: DataFrame, target: Path) -> None:
    """Write a content-named Spark folder unless an earlier run did (its `_SUCCESS`):
    into a staging folder beside it, renamed into place when complete."""
    if (target / "_SUCCESS").is_file():
        return  # same name, same content: written by an earlier run
    check_executor_writable(frame.sparkSession.sparkContext.master or "", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    shutil.rmtree(staging)
    try:
        frame.write.parquet(staging.as_uri())
        shutil.rmtree(target, ignore_errors=True)  # an interrupted earlier write
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish_pushed(
    config: SeamlessConfig,
    frames: dict[str, DataFrame],
    table_hashes: dict[str, str],
    repo_path: Path,
) -> dict[str, PushedSnapshot]:
    """`stream.pushed.publish_pushed` on Spark: each view with events from the stream
    consumer reads a Spark folder of its own, its table's rows (the view's columns) plus
    those events, so the point-in-time join sees them at their own times. The folder is
    named by the sha-256 of the table's content hash and the events' (a content hash of
    the merged table, as the local engine names its file, would need it in one process)."""
    import hashlib

    import pandas as pd
    from pyspark.sql import functions as F

    from components.common.tables import content_hash
    from components.stream.pushed import STREAM_ID_COLUMN, PushedSnapshot, read_pushed

    out: dict[str, PushedSnapshot] = {}
    for view in config.features.views:
        events = read_pushed(repo_path, view.name)
        if events is None or events.empty:
            continue
        key, ts = config.entity_key(), config.timestamp_key(view.table)
        cols = [key, ts, *view.features]
        batch = _feature_frame(config, view.table, frames[view.table]).select(*cols)
        rows = events[cols].copy()
        rows[ts] = pd.to_datetime(rows[ts], utc=True)
        merged = batch.unionByName(batch.sparkSession.createDataFrame(rows, schema=batch.schema))
        pair = f"{table_hashes[view.table]}:{content_hash(rows)}"
        sha = hashlib.sha256(pair.encode()).hexdigest()
        target = spark_table_path(repo_path, view.table, sha)
        _write_once(merged, target)
        span = merged.agg(F.min(ts), F.max(ts)).first()
        assert span is not None
        out[view.name] = PushedSnapshot(
            path=str(target), sha256=sha, pushed_rows=len(events),
            last_stream_id=str(events[STREAM_ID_COLUMN].iloc[-1]), start=span[0], end=span[1],
        )  # fmt: skip
    return out


def _label_rows(config: SeamlessConfig, labels: DataFrame, path: Path) -> DataFrame:
    """Feast's entity rows (entity, label time, label), numbered in the labels' order."""
    from pyspark.sql import functions as F

    table = config.labels.table
    key, ts, label = config.entity_key(), config.timestamp_key(table), config.labels.label_column
    missing = [c for c in (key, ts, label) if c not in labels.columns]
    if missing:
        raise SeamlessError(f"Labels table '{table}' has no column '{missing[0]}'.")
    nulls = labels.agg(
        F.sum(F.col(ts).isNull().cast("long")).alias("ts"),
        F.sum(F.col(key).isNull().cast("long")).alias("key"),
    ).first()
    assert nulls is not None
    for col, count, what in ((ts, nulls["ts"], "timestamp"), (key, nulls["key"], "entity")):
        if count:
            first = _first_null_row(path, col)
            detail = "; each label needs its own time" if what == "timestamp" else ""
            raise SeamlessError(
                f"Labels table '{table}' has {int(count)} rows with a null {what} '{col}' "
                f"(first at data row {first}){detail}."
            )
    if config.labels.unknown_values == "drop":
        labels = labels.where(F.col(f"`{label}`").isin(_class_values(config, labels)))
    # The label travels through Feast's query under a name its SQL can hold unquoted.
    out = labels.select(key, ts, F.col(f"`{label}`").alias(_LABEL))
    out = out.withColumn(_ORDER, F.monotonically_increasing_id())
    if config.tables[table].columns.get(key, "int") == "int":
        out = out.withColumn(key, F.col(key).cast("long"))
    return out


def _class_values(config: SeamlessConfig, labels: DataFrame) -> list[Any]:
    """The label column's stored values that are one of the classes (as the local
    engine's `check_labels` decides), from its distinct values: the rows with any other
    value, or none, are left out of the training set (`labels.unknown_values: drop`)."""
    column = f"`{config.labels.label_column}`"
    found = [(r[0], r[1]) for r in labels.groupBy(column).count().collect()]
    classes = check_label_counts(config.labels, counts_by_text(found)).classes.all
    return [v for v, _ in found if v is not None and canonical(v) in classes]


def _first_null_row(path: Path, column: str) -> int:
    """1-based row of the first null in one column of a snapshot file (failure path only)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=[column]):
        hits = pc.indices_nonzero(pc.is_null(batch.column(0)))
        if len(hits):
            return offset + int(hits[0].as_py()) + 1
        offset += batch.num_rows
    return -1


def _training_dtypes(config: SeamlessConfig, nulls: dict[str, int]) -> dict[str, str]:
    """The local engine's training-set dtypes: ints stay int64 unless a value is missing."""
    key, ts = config.entity_key(), config.timestamp_key(config.labels.table)
    dtypes = {
        key: "int64"
        if config.tables[config.labels.table].columns.get(key, "int") == "int"
        else "object",
        ts: "datetime64[ns, UTC]",
    }
    for name, kind in config.feature_types().items():
        if kind == "int":
            dtypes[name] = "float64" if nulls.get(name) else "int64"
        elif kind == "float":
            dtypes[name] = "float64"
        elif kind == "bool":
            dtypes[name] = "object" if nulls.get(name) else "bool"
        elif kind == "timestamp":
            dtypes[name] = "datetime64[ns, UTC]"
        else:
            dtypes[name] = "object"
    label_kind = config.tables[config.labels.table].columns.get(config.labels.label_column)
    # The label column comes through unchanged from the snapshot: ingest's dtype.
    dtypes[config.labels.label_column] = PANDAS_DTYPES[label_kind or "string"]
    return dtypes


def build_features_spark(
    config: SeamlessConfig,
    dataset_path: str | Path,
    table_hashes: dict[str, str],
    repo_path: Path,
    out_path: str | Path,
    online: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish, apply, materialize (with `online`) and join on Spark; writes the
    training-set dataset.

    Returns (info as `features.build_features` gives it, the training set's manifest).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from components.common.tables import TRAINING_TABLE
    from components.features.features import PhaseTimer, widen_to_pushed
    from components.features.training_set import no_join_problem

    lap = PhaseTimer()
    timings = lap.timings

    spark = spark_session(config)
    labels_table = config.labels.table
    needed = {labels_table, *(v.table for v in config.features.views)}
    folder = Path(dataset_path)
    missing = sorted(t for t in needed if not (folder / f"{t}.parquet").is_file())
    if missing:
        raise SeamlessError(f"The dataset {folder} has no table {missing[0]!r}.")
    frames = {t: read_snapshot_table(spark, folder / f"{t}.parquet") for t in sorted(needed)}
    entity = _label_rows(config, frames[labels_table], folder / f"{labels_table}.parquet")
    for view in config.features.views:
        absent = [f for f in view.features if f not in frames[view.table].columns]
        if absent:
            raise SeamlessError(
                f"Table '{view.table}' has no feature (view '{view.name}') column '{absent[0]}' "
                f"(columns: {frames[view.table].columns})."
            )
    lap("prepare")

    ensure_repo(repo_path, config.features.project, spark=config)
    spans, paths, entities = _write_tables(config, frames, table_hashes, repo_path)
    pushed = _publish_pushed(config, frames, table_hashes, repo_path)
    spans = widen_to_pushed(config, spans, pushed)
    lap("write")

    store = open_store(repo_path)
    objects = build_objects(config, repo_path, table_hashes, spark_paths=paths, pushed=pushed)
    removed = apply_objects(store, objects)
    lap("apply")

    windows = online_windows(objects, spans, {v.name: v.table for v in config.features.views})
    if online:
        materialize_windows(store, windows)
        lap("materialize")

    key, ts = config.entity_key(), config.timestamp_key(labels_table)
    # The label rows themselves are Feast's entity rows: its query keeps every column and
    # one output row per entity row, so no join back to the labels is needed.
    joined: Any = store.get_historical_features(entity_df=entity, features=objects.service)
    features = list(config.feature_types())
    training = joined.to_spark_df().orderBy(_ORDER)
    label = F.col(_LABEL).alias(config.labels.label_column)
    training = training.select(key, ts, *features, label)
    training = training.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = training.agg(
            F.count(F.lit(1)).alias("__rows"),
            *[F.sum(F.col(f).isNull().cast("long")).alias(f) for f in features],
        ).first()
        assert counts is not None
        rows = int(counts["__rows"])
        nulls = {f: int(counts[f] or 0) for f in features}
        label_rows = entity.count()
        if rows != label_rows:
            raise SeamlessError(
                f"The point-in-time join returned {rows} rows for {label_rows} label rows."
            )
        empty = [v.name for v in config.features.views if all(nulls[f] == rows for f in v.features)]
        if rows and len(empty) == len(config.features.views):
            span = training.agg(F.min(ts), F.max(ts)).first()
            assert span is not None
            raise SeamlessError(no_join_problem(config, rows, span[0], span[1], spans))
        lap("historical_join")
        scratch = Path(tempfile.mkdtemp(prefix="seamless-spark-features-", dir=scratch_root()))
        try:
            write_parts(training, scratch / "training")
            writer: TableWriter
            writer, _ = stream_writer(scratch / "training", _training_dtypes(config, nulls))
            written = write_dataset_with(out_path, {TRAINING_TABLE: writer})
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        training.unpersist()
    lap("write_training_set")

    if empty:
        log.warning("Feature views %s joined no value for any label row.", empty)
    info: dict[str, Any] = {
        "feature_service": config.features.service,
        "project": store.project,
        "views": [v.name for v in config.features.views],
        "features": features,
        "rows": rows,
        "materialized_entities": int(entities),
        "empty_views": empty,
        "removed_objects": removed,
        "null_fraction": {f: round(nulls[f] / rows, 4) if rows else 0.0 for f in features},
        "tables": {t: s.describe() for t, s in spans.items()},
        "online_windows": windows_as_json(windows),
        "materialized": online,
        "pushed_rows": {v: p.pushed_rows for v, p in pushed.items()},
        "timings_s": timings,
        "engine": "spark",
    }
    timings["total"] = round(sum(timings.values()), 3)
    return info, written
