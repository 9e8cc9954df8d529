"""Raw tables as Spark DataFrames: files and database queries read by Spark's own readers.

Read here: CSV and Parquet files Spark can reach where it runs (local paths, and object
store URIs when the Hadoop S3A connector is on Spark's classpath), and SQL queries on
PostgreSQL through Spark's JDBC source when the PostgreSQL JDBC driver is on Spark's
classpath (docs/spark.md). Other sources (HTTP downloads, JSON APIs, other databases)
return None: the caller ingests them with the local engine and says so in the manifest.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from components.common import storage
from components.common.config import FileSource, SqlSource
from components.common.errors import SeamlessError
from components.common.spark import nanos_as_timestamps
from components.common.spark_kubernetes import executor_visible
from components.ingest.fetch import mask_url
from components.ingest.sources import (
    MARKER_SPACE_PATTERN,
    check_delimiter,
    check_row_widths,
    empty_nameless_sentence,
    local_file_head,
    nameless_columns,
    pandas_encoding,
    refuse_nul_bytes,
    resolve_file,
    short_reason,
    source_format,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_S3A = "org.apache.hadoop.fs.s3a.S3AFileSystem"
_JDBC_DRIVERS = {"postgresql": "org.postgresql.Driver"}


@dataclass
class SparkRaw:
    """A raw table as Spark read it (Parquet's nanosecond timestamps as timestamps)."""

    frame: DataFrame


def _loadable(spark: SparkSession, java_class: str) -> bool:
    """Whether Spark's JVM can load `java_class` (its jar is on the classpath)."""
    jvm: Any = spark.sparkContext._jvm
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(java_class, True, loader)
    except Exception:  # py4j wraps the JVM's ClassNotFoundException
        return False
    return True


def has_s3a(spark: SparkSession) -> bool:
    """Whether Spark can read s3a:// (hadoop-aws and the AWS SDK on the classpath)."""
    return _loadable(spark, _S3A)


def read_jdbc(spark: SparkSession, source: SqlSource, what: str) -> SparkRaw | None:
    """A SQL source's query through Spark's JDBC source, or None when Spark has no driver
    for its database here (the local engine then reads it)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    shown = mask_url(source.url)
    try:
        url = make_url(source.url)
    except ArgumentError:
        raise SeamlessError(f"{what}: {shown} is not a valid SQLAlchemy database URL.") from None
    driver = _JDBC_DRIVERS.get(url.get_backend_name())
    if driver is None or not url.host or not _loadable(spark, driver):
        return None
    jdbc_url = f"jdbc:postgresql://{url.host}:{url.port or 5432}/{url.database or ''}"
    reader: Any = (
        spark.read.format("jdbc")
        .option("url", jdbc_url)
        .option("driver", driver)
        .option("query", source.query)
        .option("user", url.username or "")
        .option("password", url.password or "")
        .option("connectTimeout", str(source.connect_timeout_s))
        # Read only: the session cannot change the database, like the local engine's.
        .option("sessionInitStatement", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    )
    try:
        frame = reader.load()
        frame.schema  # noqa: B018 (runs the query's metadata round trip now)
    except Exception as exc:
        reason = _analysis_reason(exc)
        if "Connection refused" in str(exc) or "connect" in reason.lower():
            raise SeamlessError(f"{what}: cannot connect to database {shown} ({reason}).") from None
        raise SeamlessError(f"{what}: SQL query failed on {shown} ({reason}).") from None
    return SparkRaw(frame)


def _spark_uri(where: str | Path, spark: SparkSession) -> str | None:
    """The location in Spark's terms, or None when Spark cannot read it here."""
    if isinstance(where, Path):
        return executor_visible(spark.sparkContext.master or "", where.absolute()).as_uri()
    scheme = storage.scheme_of(where)
    if scheme in ("s3", "s3a") and has_s3a(spark):
        return "s3a://" + where.split("://", 1)[1]
    return None


def _analysis_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return short_reason(text.split("SQLSTATE")[0].strip())


def read_raw(
    spark: SparkSession,
    source: FileSource,
    data_dir: str | Path | None,
    what: str,
    expected: Collection[str],
    multiline: bool = False,
) -> SparkRaw | None:
    """Read one file source with Spark, or None when this source is not Spark's to read.
    `multiline`: CSV records may span lines (quoted line breaks); one task reads a file."""
    where = resolve_file(source.uri, data_dir, what)
    uri = _spark_uri(where, spark)
    if uri is None:
        return None
    if isinstance(where, Path):
        shown, name, head = str(where), where.name, local_file_head(where, what)
    else:
        shown, name, head = str(where), urlsplit(str(where)).path, b""
    fmt = source_format(source, name, head, shown, what)
    if fmt == "json":  # records whose keys name the columns: the local engine reads them
        return None
    if fmt == "parquet":
        return _read_parquet(spark, uri, where, shown, what)
    if isinstance(where, Path) and not name.lower().endswith(".gz"):
        refuse_nul_bytes(where, shown, what)
    return SparkRaw(_read_csv(spark, uri, where, shown, what, source, expected, multiline))


def reread_with_line_breaks(
    spark: SparkSession,
    source: FileSource,
    data_dir: str | Path | None,
    what: str,
    expected: Collection[str],
    exc: Exception,
) -> SparkRaw | None:
    """After a malformed-record failure of a CSV read: refuse a row of the wrong width as
    the local engine does, else (quoted values holding line breaks, which the parallel
    reader splits at) the file read again record by record. None: nothing to retry."""
    if not is_malformed(exc):
        return None
    where = resolve_file(source.uri, data_dir, what)
    if isinstance(where, Path):
        encoding = pandas_encoding(source.encoding)
        opener: Any = gzip.open if where.name.lower().endswith(".gz") else open
        header = source.column_names
        if header is None:
            with opener(where, "rt", newline="", encoding=encoding) as fh:
                header = next(csv.reader(fh, delimiter=source.delimiter), [])
        check_row_widths(
            where, len(header), str(where), what, source.delimiter, encoding, source.column_names
        )
    log.warning(
        "%s: %s has quoted values with line breaks; Spark reads it again in one task",
        what,
        where,
    )
    return read_raw(spark, source, data_dir, what, expected, multiline=True)


def is_malformed(exc: Exception) -> bool:
    """Whether a Spark failure is its CSV reader's malformed-record error."""
    text = str(exc)
    return "MALFORMED_RECORD_IN_PARSING" in text or "Malformed" in text


def _read_parquet(
    spark: SparkSession, uri: str, where: str | Path, shown: str, what: str
) -> SparkRaw | None:
    import pyarrow.parquet as pq
    from pyspark.sql import types as T

    try:
        frame = spark.read.parquet(uri)
        fields = frame.schema.fields  # resolves the files now, so a bad one fails here
    except Exception as exc:
        raise SeamlessError(
            f"{what}: {shown} is not a readable Parquet file ({_analysis_reason(exc)})."
        ) from None
    nested = [
        f.name for f in fields if isinstance(f.dataType, T.ArrayType | T.StructType | T.MapType)
    ]
    if nested:
        # Lists, structs and maps become canonical JSON text (json_records.json_text),
        # which Spark's to_json does not write alike: the local engine reads such files.
        log.info("%s: %s has nested columns %s; the local engine reads it", what, shown, nested)
        return None
    if isinstance(where, Path):
        schema = pq.read_schema(where)
    else:  # a footer through fsspec (a few KiB): the object's, or a prefix's first one's
        first = where
        if where.endswith("/"):
            parts = [u for u in storage.list_files(where) if u.lower().endswith(".parquet")]
            first = parts[0] if parts else where
        fs, path = storage.resolve(first)
        with storage.storage_errors(first, fs=fs), fs.open(path, "rb") as fh:
            schema = pq.read_schema(fh)
    return SparkRaw(nanos_as_timestamps(frame, schema, f"{what} (file {shown})"))


def _read_csv(
    spark: SparkSession,
    uri: str,
    where: str | Path,
    shown: str,
    what: str,
    source: FileSource,
    expected: Collection[str],
    multiline: bool = False,
) -> DataFrame:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    delimiter = source.delimiter
    names = source.column_names
    reader: Any = spark.read.options(
        header=names is None,
        inferSchema=False,  # every column stays text: normalize converts declared columns
        sep=delimiter,
        quote='"',
        escape='"',  # RFC 4180: a quote inside a quoted value is doubled
        # Python's codec names are Java charset names or aliases too (cp1252, iso8859-1).
        encoding=codecs.lookup(source.encoding).name.removesuffix("-sig"),
        mode="FAILFAST",  # a row with too many or too few fields fails; nothing is padded
        enforceSchema=False,
        multiLine=multiline,
    )
    try:
        # Case-sensitive while the header is read: Spark would otherwise rename 'age' and
        # 'AGE' to 'age2' and 'AGE6', and ingest could not name them (check_columns).
        with _case_sensitive(spark):
            if names is not None:  # no header row: every line is data, of these columns
                reader = reader.schema(
                    T.StructType([T.StructField(c, T.StringType()) for c in names])
                )
            frame = reader.csv(uri)
            columns = frame.columns
    except Exception as exc:
        raise SeamlessError(
            f"{what}: {shown} cannot be read as CSV ({_analysis_reason(exc)})."
        ) from None
    if names is not None:
        # A UTF-8 byte order mark opens the first value (pandas' utf-8-sig drops it).
        first = F.col(f"`{names[0]}`")
        frame = frame.withColumn(names[0], F.regexp_replace(first, "^\ufeff", ""))
        return _markers_as_null(frame, source.missing_values, expected)
    if columns and columns[0].startswith("\ufeff"):  # a UTF-8 byte order mark
        frame = frame.withColumnRenamed(columns[0], columns[0][1:])
        columns = frame.columns
    if isinstance(where, Path):
        check_delimiter(columns, expected, where, shown, what, delimiter)
    frame = _without_nameless(frame, reader, uri, shown, what)
    return _markers_as_null(frame, source.missing_values, expected)


def _without_nameless(frame: DataFrame, reader: Any, uri: str, shown: str, what: str) -> DataFrame:
    """The header checked as the local engine checks it (`nameless_columns`).

    Spark names a column without a name `_c6` and a name given twice `income3`, each
    after its position: only when a name ends in its position is the raw header read."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    columns = frame.columns
    if not any(c.endswith(str(i)) for i, c in enumerate(columns)):
        return frame
    with _case_sensitive(frame.sparkSession):
        first = reader.option("header", False).csv(uri).first()
    header = list(first) if first is not None else []
    if header and isinstance(header[0], str):
        header[0] = header[0].removeprefix("\ufeff")
    nameless = nameless_columns(header, shown, what)
    if not nameless:
        return frame
    named = [columns[i] for i in nameless]
    # Spark's per-file header check cannot match an empty name to `_c6`: one file is read
    # again with its header skipped (checked above); a prefix of files could differ.
    if uri.endswith("/") or not Path(urlsplit(uri).path).suffix:
        raise SeamlessError(
            f"{what}: column {nameless[0] + 1} of {shown} has no name in the header; "
            "name it, or remove it (the Spark engine reads nameless columns from one file only)."
        )
    schema = StructType([StructField(c, StringType()) for c in columns])
    with _case_sensitive(frame.sparkSession):
        frame = reader.option("header", True).option("enforceSchema", True).schema(schema).csv(uri)
    found = frame.select(*[F.count(F.col(f"`{c}`")).alias(str(i)) for i, c in enumerate(named)])
    counts = found.first() or [0] * len(named)
    holding = [p for p, n in zip(nameless, counts, strict=True) if n]
    note = empty_nameless_sentence(nameless, holding, shown, what)
    log.warning("%s", note)
    return frame.drop(*named)


@contextmanager
def _case_sensitive(spark: SparkSession) -> Iterator[None]:
    key = "spark.sql.caseSensitive"
    before = spark.conf.get(key, "false") or "false"
    spark.conf.set(key, "true")
    try:
        yield
    finally:
        spark.conf.set(key, before)


def _markers_as_null(frame: DataFrame, markers: list[str], declared: Collection[str]) -> DataFrame:
    """The source's `missing_values` as null outside the declared columns, as the local
    engine's reader does (ingest counts them in the declared ones)."""
    from pyspark.sql import functions as F

    if not markers:
        return frame

    def bare(c: str) -> Any:
        return F.regexp_replace(F.col(f"`{c}`"), MARKER_SPACE_PATTERN, "")

    return frame.select(
        *[
            F.col(f"`{c}`")
            if c in declared
            else F.when(bare(c).isin(markers), None).otherwise(F.col(f"`{c}`")).alias(c)
            for c in frame.columns
        ]
    )


def spark_failure(what: str, shown: str, exc: Exception) -> SeamlessError:
    """A Spark job's failure while reading `shown` (e.g. a malformed CSV row) as one sentence."""
    text = str(exc)
    if is_malformed(exc):
        record = ""
        for line in text.splitlines():
            if "Malformed records" in line or "record:" in line.lower():
                record = line.strip()
                break
        detail = f": {short_reason(record)}" if record else ""
        return SeamlessError(
            f"{what}: {shown} has a row whose number of fields differs from the header's{detail}."
        )
    return SeamlessError(f"{what}: Spark failed reading {shown} ({_analysis_reason(exc)}).")
