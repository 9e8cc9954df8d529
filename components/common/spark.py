"""The Spark engine's session: one place that starts Spark the same way for every stage.

pyspark and Java are needed only when a config says `engine: spark`; without them the
stage fails with one sentence saying what to install, before reading any data.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from components.common.config import SeamlessConfig, SparkConfig
from components.common.cpus import available_cpus
from components.common.errors import SeamlessError
from components.common.memory_limit import memory_limit_bytes
from components.common.spark_kubernetes import (
    AUTH_FILE_ENV,
    RPC_PROTECTION,
    auth_secret_file,
    executor_visible,
    is_kubernetes,
    kubernetes_conf,
    refuse_weakened,
)
from components.common.spark_scratch import scratch_dir

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Settings every Seamless stage relies on; a config's `spark.conf` may override them.
_DEFAULTS = {
    # Timestamps are UTC everywhere in Seamless; Spark would otherwise use the host's zone.
    "spark.sql.session.timeZone": "UTC",
    # pandas writes Parquet timestamps in nanoseconds, which Spark cannot read as
    # timestamps; read them as integers and convert (components/ingest/spark_read.py).
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # A CSV source's `encoding` may be any Java charset (cp1252, shift_jis), as the local
    # engine reads any Python codec; Spark 4 otherwise allows only UTF and ISO-8859-1.
    "spark.sql.legacy.javaCharsets": "true",
    # Parquet timestamps as UTC instants in microseconds (Spark's default is legacy INT96).
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # The web UI would open a port on every step; Spark's history is in the step log.
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
_LOCAL_DEFAULTS = {
    # A local session talks to itself only: nothing listens beyond loopback.
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


# JDBC drivers as Debian installs them (libpostgresql-jdbc-java); used when present.
SYSTEM_JDBC_JARS = ("/usr/share/java/postgresql.jar",)


def _local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def session_conf(spark: SparkConfig) -> dict[str, str]:
    """The Spark properties a session starts with: Seamless' defaults, then the config's."""
    conf = dict(_DEFAULTS)
    if _local(spark.master):
        conf |= _LOCAL_DEFAULTS
        # Shuffles of a few partitions per core; Spark's 200 suits clusters, not one pod.
        conf["spark.sql.shuffle.partitions"] = str(max(4, 2 * available_cpus()))
        # In local mode the executors live in the driver's JVM: Spark's 1g default spills
        # (or fails) early. A quarter of what the pod may use leaves room for the Python
        # workers and the step itself.
        quarter_mib = memory_limit_bytes() // 4 // 2**20
        conf["spark.driver.memory"] = f"{min(4096, max(1024, quarter_mib))}m"
    elif is_kubernetes(spark.master):
        conf |= kubernetes_conf(spark, Path(tempfile.gettempdir()) / "seamless-spark")
    else:
        conf |= cluster_protection(spark)
    jars = [j for j in SYSTEM_JDBC_JARS if os.path.isfile(j)]
    if jars:  # Debian's JDBC drivers, for SQL sources read through Spark's JDBC source
        conf["spark.jars"] = ",".join(jars)
    return conf | dict(spark.conf)


def cluster_protection(spark: SparkConfig, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """RPC_PROTECTION for a cluster outside Kubernetes (a standalone `spark://` master,
    YARN): its driver and executors talk between machines, so they authenticate each
    other and encrypt, and `spark.conf` may not switch that off. A standalone cluster's
    shared secret comes from the file `SEAMLESS_SPARK_AUTH_SECRET_FILE` names (Spark reads
    secret files only on Kubernetes, so it is handed over as a property, which Spark
    redacts) unless `spark.conf` gives `spark.authenticate.secret`; YARN makes its own."""
    env = os.environ if env is None else env
    refuse_weakened(spark, f"on the cluster {spark.master!r}")
    conf = dict(RPC_PROTECTION)
    if spark.master.startswith("yarn") or "spark.authenticate.secret" in spark.conf:
        return conf
    path = env.get(AUTH_FILE_ENV, "").strip()
    if not path:
        raise SeamlessError(
            f"spark.master {spark.master!r} is a cluster whose driver and executors must "
            f"authenticate each other: set {AUTH_FILE_ENV} to a file holding the cluster's "
            "shared secret (its spark.authenticate.secret; docs/spark.md, Security)."
        )
    auth_secret_file(path, "give the file holding the cluster's spark.authenticate.secret")
    secret = Path(path).read_text().strip()
    if not secret:
        raise SeamlessError(f"{AUTH_FILE_ENV}={path} is empty: it must hold Spark's shared secret.")
    conf["spark.authenticate.secret"] = secret
    return conf


def _require_runtime() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SeamlessError(
            "engine: spark needs pyspark, which is not installed; install Seamless with the "
            "spark extra (pip install 'seamless[spark]') or use engine: local."
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.isfile(os.path.join(java_home, "bin", "java"))) and not (
        shutil.which("java")
    ):
        raise SeamlessError(
            "engine: spark needs Java 17 or newer, but no java is on PATH and JAVA_HOME is "
            "not set; install it (Debian: apt-get install openjdk-17-jre-headless) or use "
            "engine: local."
        )


def spark_session(config: SeamlessConfig) -> SparkSession:
    """The process' Spark session for `config.spark` (started on first use, then reused)."""
    _require_runtime()
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter (the venv or the image's), not `python3`.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if _local(config.spark.master):
        # The JVM resolves its own host name at start-up unless told; a pod or container
        # whose name is in no resolver (no network, say) would stop Spark there.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
    builder: Any = SparkSession.builder.master(config.spark.master).appName(config.spark.app_name)
    conf = session_conf(config.spark)
    # A folder swept once this process is gone (SPARK_LOCAL_DIRS would win over it).
    chosen = "spark.local.dir" in conf or os.environ.get("SPARK_LOCAL_DIRS")
    if _local(config.spark.master) and not chosen:
        conf["spark.local.dir"] = str(scratch_dir())
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM's own failure, e.g. an unknown master URL
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SeamlessError(
            f"Spark did not start with master {config.spark.master!r} (spark.master): {reason}."
        ) from None
    session.sparkContext.setLogLevel("WARN")
    return session


def engine_record(config: SeamlessConfig) -> dict[str, str]:
    """What ran the data work, for manifests, lineage and MLflow."""
    if config.engine != "spark":
        return {"engine": "local"}
    from importlib.metadata import PackageNotFoundError, version

    try:
        spark_version = version("pyspark")
    except PackageNotFoundError:  # e.g. the train step's image, which needs no Spark
        spark_version = "not installed here"
    return {"engine": "spark", "spark_version": spark_version, "spark_master": config.spark.master}


def finer_than_micros(where: str, column: str, count: int, row: int | None, shown: str) -> str:
    """The sentence refusing timestamps Spark would cut (it stores microseconds)."""
    plural = "s" if count != 1 else ""
    first = f"the first in row {row}: {shown}" if row is not None else f"e.g. {shown}"
    return (
        f"{where}: column '{column}' has {count} timestamp{plural} finer than a microsecond "
        f"({first}); Spark keeps microseconds and would cut the rest, so round them in the "
        "source or use engine: local."
    )


def nanos_as_timestamps(frame: DataFrame, schema: pa.Schema, where: str) -> DataFrame:
    """Spark reads Parquet's nanosecond timestamps as integers (nanosAsLong, see
    components/common/spark.py); turn those columns back into timestamps in Spark's
    microseconds, refusing a column with digits below that. `schema` is the file's own."""
    from pyspark.sql import functions as F

    nanos = [
        f.name
        for f in schema
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns"  # type: ignore[attr-defined]
    ]
    if not nanos:
        return frame
    finer = {c: F.pmod(F.col(f"`{c}`"), F.lit(1000)) != 0 for c in nanos}
    counts = frame.agg(*[F.sum(f.cast("long")).alias(c) for c, f in finer.items()]).first()
    for c, flag in finer.items():
        count = int(counts[c] or 0) if counts is not None else 0
        if count:
            first = frame.where(flag).select(f"`{c}`").first()
            value = pd.Timestamp(int(first[0]), unit="ns", tz="UTC").isoformat() if first else "?"
            raise SeamlessError(finer_than_micros(where, c, count, None, repr(value)))
    for c in nanos:
        # Integer division: a double could not hold today's nanosecond counts exactly.
        frame = frame.withColumn(c, F.timestamp_micros(F.expr(f"`{c}` div 1000")))
    return frame


def read_snapshot_table(spark: SparkSession, path: str | Path) -> DataFrame:
    """A table of a dataset snapshot (`<table>.parquet`, written by either engine) in Spark,
    its timestamps as timestamps."""
    import pyarrow.parquet as pq

    visible = executor_visible(spark.sparkContext.master or "", Path(path).absolute())
    frame = spark.read.parquet(visible.as_uri())
    return nanos_as_timestamps(frame, pq.read_schema(path), f"Snapshot table {path}")
