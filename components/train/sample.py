"""The training rows scikit-learn gets under `engine: spark`: all of them, or a fixed sample.

scikit-learn fits on one machine, so a training set past `spark.max_training_rows` is cut
to that many rows by Spark: the rows whose hash of (entity, label time, `model.seed`)
ranks lowest, kept in the training set's order. The same data gives the same sample on
every run and machine, whatever Spark's partitioning; a different seed, another sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from components.common.config import SeamlessConfig
from components.common.tables import read_table

SAMPLE_METHOD = "xxhash64(entity, label time, seed): lowest ranked rows"


def training_rows(
    config: SeamlessConfig, folder: str | Path, table: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training set (sampled if past the cap) and what was done, for MLflow."""
    path = Path(folder) / f"{table}.parquet"
    total = pq.ParquetFile(path).metadata.num_rows
    cap = config.spark.max_training_rows if config.engine == "spark" else None
    if cap is None or total <= cap:
        return read_table(folder, table), {"rows_available": total, "sampled": False}
    return _sample(config, path, cap), {
        "rows_available": total,
        "sampled": True,
        "rows": cap,
        "seed": config.model.seed,
        "method": SAMPLE_METHOD,
    }


def _sample(config: SeamlessConfig, path: Path, cap: int) -> pd.DataFrame:
    from pyspark.sql import functions as F

    from components.common.spark import read_snapshot_table, spark_session
    from components.common.spark_write import with_dtypes

    key, ts = config.entity_key(), config.timestamp_key(config.labels.table)
    frame = read_snapshot_table(spark_session(config), path)
    order = "__row"
    ranked = frame.withColumn(order, F.monotonically_increasing_id()).withColumn(
        "__rank", F.xxhash64(F.col(key), F.col(ts), F.lit(config.model.seed))
    )
    kept = ranked.orderBy("__rank", order).limit(cap).orderBy(order).drop("__rank", order)
    dtypes = {
        str(c): str(t) for c, t in pq.read_schema(path).empty_table().to_pandas().dtypes.items()
    }
    return with_dtypes(kept.toPandas(), dtypes).reset_index(drop=True)
