"""The use-case configuration: one YAML file describes data, checks, features, model and policy.

Every model forbids unknown keys and uses strict types, so a typo in a config fails
loudly with the file, the key and what was expected instead of being ignored.
`${VAR}` (or `${VAR:-default}`) anywhere in a string is replaced from the environment
when the file is loaded, so secrets never need to be written into the file.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from components.common.compliance_config import ComplianceConfig, ModelCardConfig
from components.common.errors import SeamlessError
from components.common.image import prefix_problem
from components.common.monitoring_config import MonitoringConfig
from components.common.notifications_config import NotificationsConfig
from components.common.strict import StrictModel as _Strict

ROW_ID = "row_id"
"""Entity column generated for a plain table that has none."""
INGESTED_AT = "ingested_at"
"""Timestamp column generated (the ingestion time) for a plain table that has none."""

ColumnType = Literal["int", "float", "string", "bool", "timestamp"]
Severity = Literal["critical", "warning"]
PiiTag = Literal["pseudonymize", "drop", "keep"]
PSEUDONYMIZABLE: tuple[ColumnType, ...] = ("int", "string")
"""Column types a keyed pseudonym can stand in for without changing the type
(components/common/pii.py)."""


class FileSource(_Strict):
    """A CSV, Parquet or JSON file: local path, `file://` URI, `http(s)://` URL, or an object
    store URI (`s3://bucket/key`, any fsspec protocol). An object store URI ending in `/`
    is a prefix: every CSV/Parquet/JSON object under it is read, in name order, as one
    table."""

    kind: Literal["file"] = "file"
    """Source type; `file` may be left out."""
    uri: str
    """Path or URI; a relative path is resolved against the run's data directory (which may
    itself be an object store prefix such as `s3://bucket/data`)."""
    format: Literal["auto", "csv", "parquet", "json"] = "auto"
    """File format; `auto` picks it from the extension, else from the first bytes. `json`:
    JSON lines (one object per line, `.jsonl`/`.ndjson`) or one array of objects; each
    key is a column, and a key a record lacks is null there. The Spark engine hands JSON
    tables to the local engine."""
    delimiter: str = ","
    """CSV field delimiter: one character, such as `;`, `|`, `"\\t"` (a tab) or `" "` (a
    space: one between values, as in the UCI files; two in a row are an empty value)."""
    column_names: list[str] | None = None
    """For a CSV file without a header row (as many classic data sets are written): its
    columns, in order. Every line is then data, and each must have this many fields.
    Unset, the first line names the columns."""
    missing_values: list[str] = Field(default_factory=list)
    """Texts that mean a missing value besides an empty CSV field, e.g. `["NA", "null"]`.
    None by default, so a value such as "NA" stays the text "NA". Ingest counts them per
    declared column (manifest `missing_markers`, run summary); a CSV's undeclared columns
    read them as missing too."""
    encoding: str = "utf-8"
    """Text encoding of a CSV or JSON file: any Python codec that writes ASCII as ASCII (`cp1252`
    for Windows exports in Western Europe, `latin-1`, `shift_jis`, ...). UTF-8 may start
    with a byte order mark. Spark reads with the Java charset of the same name."""

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        why = csv_encoding_problem(value)
        if why:
            raise ValueError(why)
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        # pandas reads a longer one as a regular expression, and Spark as literal text.
        if len(value) != 1 or value in '"\r\n':
            raise ValueError(
                f"{value!r} is not a delimiter: give one character other than a quote or a"
                ' line break (a tab is written "\\t", in double quotes)'
            )
        return value

    @field_validator("column_names")
    @classmethod
    def _usable_names(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        if not names:
            raise ValueError("list at least one column (or leave column_names out)")
        seen: set[str] = set()
        for i, name in enumerate(names, 1):
            if not name.strip() or name != name.strip():
                raise ValueError(f"name {i} ({name!r}) is blank or has spaces around it")
            if name in seen:
                raise ValueError(f"the name {name!r} is given twice")
            seen.add(name)
        return names


def csv_encoding_problem(name: str) -> str:
    """Why `name` cannot be a CSV's encoding ("" when it can)."""
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        return f"unknown text encoding '{name}' (a Python codec name such as cp1252)"
    sample = "id,name;value\t1\n"
    try:
        ascii_alike = sample.encode(name) == sample.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_alike = False
    if not ascii_alike:
        return f"text encoding '{name}' does not write the delimiters and digits as ASCII does"
    return ""


class SqlSource(_Strict):
    """The result of a SQL query against any SQLAlchemy database URL."""

    kind: Literal["sql"]
    """Source type: `sql`."""
    url: str
    """SQLAlchemy URL, e.g. `postgresql+psycopg2://user:${PGPASSWORD}@host/db`."""
    query: str
    """A SELECT statement; its result set becomes the table."""
    connect_timeout_s: int = Field(10, gt=0)
    """Seconds to wait for the database to accept a connection."""


class ApiSource(_Strict):
    """A paginated HTTP JSON API returning a list of records per page."""

    kind: Literal["api"]
    """Source type: `api`."""
    url: str
    """Endpoint URL of the first page."""
    records_key: str | None = "data"
    """Key of the list of records in the JSON body; null when the body itself is the list."""
    pagination: Literal["none", "page", "next_url"] = "page"
    """`page`: add `?page=N` until an empty page; `next_url`: follow `next_key` in the body."""
    page_param: str = "page"
    """Query parameter carrying the page number for `page` pagination."""
    page_size_param: str | None = "page_size"
    """Query parameter carrying the page size (null to not send one)."""
    page_size: int = Field(1000, gt=0)
    """Records asked for per page."""
    next_key: str = "next"
    """Key holding the next page's URL for `next_url` pagination."""
    max_pages: int = Field(10_000, gt=0)
    """Safety bound on the number of pages fetched."""
    timeout_s: float = Field(10.0, gt=0)
    """Per-request timeout in seconds."""
    retries: int = Field(3, ge=0)
    """Retries after a failed request (timeouts, connection errors, 429 and 5xx)."""
    backoff_s: float = Field(0.5, ge=0)
    """First retry delay; doubled on each further retry."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers, e.g. `Authorization: Bearer ${API_TOKEN}`."""


Source = Annotated[FileSource | SqlSource | ApiSource, Field(discriminator="kind")]

Thousands = Literal[",", ".", " ", "'", "_"]
_SAMPLE_TIME = datetime(2024, 11, 28, 13, 45, 6, 123456, tzinfo=UTC)
UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
"""Nanoseconds in one of each Unix time unit (`ColumnFormat.unit`)."""
FORMAT_KEYS = (
    "format", "unit", "timezone", "thousands", "decimal", "prefix", "suffix",
    "negative_parentheses",
)  # fmt: skip
"""The keys of a column's `ColumnFormat`, written on the column beside its type."""


def _zone_problem(name: str) -> str:
    """Why `name` is not a time zone this machine knows ("" when it is)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)"
    return ""


class ColumnFormat(_Strict):
    """How a declared column's values are written when read as text (a CSV, a JSON API's
    strings, a database's text column), if not in the default form. Written on the column:
    `signup: {type: timestamp, format: "%m/%d/%Y"}`,
    `charges: {type: float, thousands: ",", prefix: "$"}`, `discount: {type: int, suffix: "%"}`.
    Values already typed by the source (Parquet, a database's numeric or date column) are
    taken as they are, except numbers under `unit` (Unix time). A value that does not match
    is not parseable, like any other."""

    format: str | None = None
    """timestamp columns: the value's pattern in Python's strptime codes, e.g. `%m/%d/%Y`
    (US dates) or `%d.%m.%Y %H:%M`; the whole value must match. Without `%z` the time is
    UTC (or `timezone`'s). Unset: ISO 8601."""
    timezone: str | None = None
    """timestamp columns: the IANA time zone (`Europe/Berlin`, `America/New_York`) of text
    values written without an offset, which are converted from that zone's local time to
    UTC. A local time in the hour the clocks skip in spring, or repeat in autumn, is no
    single instant and does not parse. Values with an offset, and typed values (Parquet,
    a database's timestamps), are taken as they are. Unset: UTC."""
    thousands: Thousands | None = None
    """int and float columns: the character between groups of three digits (`1,234,567`);
    a value with a group of other than three digits does not parse. `" "` also takes the
    no-break spaces. Unset: no separator."""
    decimal: Literal[".", ","] | None = None
    """float columns: the decimal mark, `","` for `3,5` (unset: `.`)."""
    prefix: str | None = None
    """int and float columns: text every value starts with, such as a currency symbol
    (`"$"` for `$1,234.50`, `-$5.00` or `$-5.00`); spaces may follow it. A value without
    it does not parse. Unset: none."""
    suffix: str | None = None
    """int and float columns: text every value ends with (`"%"` for `18%`, `" €"`); spaces
    may come before it. The number is taken as written: `18%` is 18. A value without it
    does not parse. Unset: none."""
    negative_parentheses: bool = False
    """int and float columns: a number in parentheses is negative, as accounting exports
    write it: `(1,234.50)` is -1234.5, and so are `($1,234.50)` and `$ (1,234.50)`. A
    signed number in parentheses does not parse. Unset: parentheses do not parse."""
    unit: Literal["s", "ms", "us", "ns"] | None = None
    """timestamp columns: the value is Unix time, a count of seconds (`s`), milliseconds,
    microseconds or nanoseconds since 1970-01-01 UTC, as text or as a number column
    (Parquet, a database's bigint); a fraction is taken down to the nanosecond. Unset:
    numbers are not timestamps (seconds or milliseconds cannot be told apart)."""

    @property
    def given(self) -> bool:
        """Whether any key is set (the column is not in the default form)."""
        return bool(
            self.format
            or self.thousands
            or self.decimal
            or self.unit
            or self.prefix
            or self.suffix
            or self.negative_parentheses
            or self.timezone
        )

    def example(self, kind: ColumnType) -> str:
        """A value written this way, for messages (`11/28/2024`, `1,234,567.89`)."""
        if kind == "timestamp" and self.unit:
            return str(int(_SAMPLE_TIME.timestamp()) * UNIT_NS[self.unit] // UNIT_NS["s"])
        if kind == "timestamp" and self.timezone:
            shown = _SAMPLE_TIME.strftime(self.format or "%Y-%m-%d %H:%M:%S")
            return f"{shown}, {self.timezone} time (not in an hour the clocks skip or repeat)"
        if kind == "timestamp" and self.format:
            return _SAMPLE_TIME.strftime(self.format)
        sep = self.thousands or ""
        whole = f"1{sep}234{sep}567"
        number = whole if kind == "int" else f"{whole}{self.decimal or '.'}89"
        written = f"{self.prefix or ''}{number}{self.suffix or ''}"
        return f"{written} or ({written})" if self.negative_parentheses else written

    def problem(self, kind: ColumnType) -> str | None:
        """Why this format cannot apply to a column of `kind`, or None."""
        if self.format is not None:
            if kind != "timestamp":
                return f"format applies to timestamp columns, and this one is {kind}"
            try:
                datetime.strptime(_SAMPLE_TIME.strftime(self.format), self.format)
            except ValueError as exc:
                return f"format {self.format!r} is not a strptime pattern ({exc})"
            if "%" not in self.format:
                return f"format {self.format!r} has no % code (e.g. %m/%d/%Y)"
        if self.timezone is not None:
            why = _zone_problem(self.timezone)
            if kind != "timestamp":
                return f"timezone applies to timestamp columns, and this one is {kind}"
            if self.unit is not None:
                return "unit (Unix time, always UTC) and timezone exclude each other; keep one"
            if why:
                return why
        if self.unit is not None:
            if kind != "timestamp":
                return f"unit applies to timestamp columns, and this one is {kind}"
            if self.format is not None:
                return "unit (Unix time) and format (text) exclude each other; keep one"
        for key, text in (("prefix", self.prefix), ("suffix", self.suffix)):
            if text is None:
                continue
            if kind not in ("int", "float"):
                return f"{key} applies to int and float columns, and this one is {kind}"
            if not text.strip() or re.search(r"[\d+\-.,]", text):
                return (
                    f"{key} {text!r} must be text around the number, such as '$' or '%', "
                    "without digits, signs or separators"
                )
        if self.negative_parentheses and kind not in ("int", "float"):
            return f"negative_parentheses applies to int and float columns, and this one is {kind}"
        if self.thousands is not None and kind not in ("int", "float"):
            return f"thousands applies to int and float columns, and this one is {kind}"
        if self.decimal is not None and kind != "float":
            return f"decimal applies to float columns, and this one is {kind}"
        mark = self.decimal or "."
        if kind == "float" and self.thousands == mark:
            return (
                f"thousands {mark!r} is also the decimal mark (decimal: {mark!r}); "
                "set decimal to the other one"
            )
        return None


class TableConfig(_Strict):
    """One input table: where it comes from and the columns it must have."""

    source: Source
    """Where the rows come from: a file, a SQL query or a paginated JSON API (`kind`)."""
    entity_column: str | None = None
    """Entity key column; when absent a `row_id` entity is generated (plain tables)."""
    timestamp_column: str | None = None
    """Event-time column; when absent the ingestion time is used (plain tables)."""
    columns: dict[str, ColumnType] = Field(default_factory=dict)
    """Required columns and their types; other columns pass through untouched. A column
    holding personal data is written with its tag, e.g. `email: {type: string, pii: drop}`
    (see `pii`)."""
    pii: dict[str, PiiTag] = Field(default_factory=dict)
    """Personal-data tags of declared columns, usually written on the column itself in
    `columns` (`customer_id: {type: int, pii: pseudonymize}`). `pseudonymize`: ingest
    replaces each value by a keyed HMAC-SHA256 pseudonym (key from `SEAMLESS_PII_KEY`),
    the same in every table, so joins and entity lookups still work; int and string
    columns only (the entity key too: serving and batch scoring pseudonymize the raw ids
    they get). `drop`: the column never leaves ingest (not in the snapshot or anything
    later); not for the keys. `keep` (the default): unchanged. Neither tag goes on a
    feature (served and logged as clients send it) or the label. docs/security.md,
    "Personal data"."""
    formats: dict[str, ColumnFormat] = Field(default_factory=dict)
    """How declared columns are written, when not ISO 8601 timestamps or plain numbers;
    usually written on the column itself (`signup: {type: timestamp, format: "%m/%d/%Y"}`,
    see `ColumnFormat`). `seamless init` writes the ones it recognizes."""
    max_invalid_fraction: float = Field(0.01, ge=0, le=1)
    """Fraction of non-parseable values tolerated in a typed column (they become null)."""

    def tagged(self, tag: PiiTag) -> list[str]:
        """The declared columns carrying `tag` (`keep`: the untagged ones too), in order."""
        return [c for c in self.columns if self.pii.get(c, "keep") == tag]

    def stored_columns(self) -> dict[str, ColumnType]:
        """The declared columns a snapshot holds: all but those tagged `pii: drop`."""
        return {c: t for c, t in self.columns.items() if self.pii.get(c) != "drop"}


class ExpectationConfig(_Strict):
    """One Great Expectations expectation on one table."""

    table: str
    """Name of the table (a key of `tables`)."""
    type: str
    """GE expectation name, e.g. `expect_column_values_to_be_between`."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Arguments of the expectation (column, min_value, ...)."""
    severity: Severity = "critical"
    """`critical` stops the pipeline before training; `warning` is only reported."""
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class ValidationConfig(_Strict):
    """The expectation suite run on every ingested snapshot."""

    expectations: list[ExpectationConfig] = Field(default_factory=list)
    """User expectations, run after the built-in checks the config implies (declared
    columns and types, keys not null, label classes, invalid-value budgets), which need
    no restating here."""


class FeatureViewConfig(_Strict):
    """A Feast feature view over one table."""

    name: str
    """Feature view name (unique in the Feast project)."""
    table: str
    """Table whose columns become the view's features."""
    features: list[str]
    """Columns served as features (types come from the table's `columns`)."""
    ttl_days: int = Field(365, gt=0)
    """How far back a point-in-time join may look for a value."""


class FeaturesConfig(_Strict):
    """The Feast feature repo: one entity, the views, and the service the model uses."""

    project: str = "seamless"
    """Feast project name."""
    entity: str = "customer"
    """Feast entity name; its join key is the tables' entity column."""
    views: list[FeatureViewConfig]
    """The feature views; every view's table must share the labels table's entity column."""
    service: str
    """Feature service name: the exact feature set the model is trained and served on."""


LabelValue = bool | int | str


class LabelsConfig(_Strict):
    """Where the training labels are, how they are timed, and which values they may take.

    The label column is checked against its classes on every run: a value that is
    neither `positive_class` nor one of `negative_classes` (after `value_map`) stops
    the run, naming the table, column, count and examples, unless `unknown_values`
    is `drop`; rows left out and mapped are counted in the run summary.
    """

    table: str
    """Table holding entity, label timestamp and label."""
    label_column: str
    """Column holding the label (its type comes from the table's `columns`)."""
    positive_class: LabelValue = 1
    """Label value counted as the positive class."""
    negative_classes: list[LabelValue] | None = None
    """Every other valid label value. When absent, the data must hold exactly one value
    besides `positive_class` (a 0/1 or yes/no label); a third value stops the run."""
    value_map: dict[str, LabelValue] = Field(default_factory=dict)
    """Label values (written as text) replaced before the check, e.g. `{Churned: churned}`."""
    unknown_values: Literal["fail", "drop"] = "fail"
    """Rows whose label is null or none of the classes: `fail` stops the run; `drop`
    leaves them out of the training set (counted in the manifest as `left_out`, and in
    the summary) and keeps them in the table, so where the labels table is also a
    feature table their features still reach the stores and serving can score them."""

    @field_validator("value_map", mode="before")
    @classmethod
    def _map_keys_as_text(cls, value: Any) -> Any:
        # YAML reads `{0: no}` with an int key; the map is keyed by the value's text.
        if isinstance(value, dict):
            return {str(k).lower() if isinstance(k, bool) else str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _classes_distinct(self) -> LabelsConfig:
        if self.negative_classes is not None:
            texts = [str(v) for v in self.negative_classes]
            if str(self.positive_class) in texts:
                raise ValueError(
                    f"labels.negative_classes lists the positive class {self.positive_class!r}"
                )
            if len(set(texts)) != len(texts) or not texts:
                raise ValueError("labels.negative_classes must list distinct values, at least one")
        return self


class SearchConfig(_Strict):
    """Hyperparameter search over the scikit-learn pipeline."""

    method: Literal["random", "grid"] = "random"
    """`random`: `n_iter` candidates sampled from `space`; `grid`: every combination."""
    n_iter: int = Field(8, gt=0)
    """Candidates sampled by random search."""
    cv: int = Field(3, ge=2)
    """Cross-validation folds."""
    scoring: str = "roc_auc"
    """scikit-learn scorer name the search ranks candidates by."""
    space: dict[str, list[Any]] = Field(default_factory=dict)
    """Parameter name (without the `model__` prefix) -> candidate values."""
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class ModelConfig(_Strict):
    """The model to train and its search space."""

    name: str
    """Registered model name in MLflow."""
    estimator: Literal[
        "logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting"
    ] = "hist_gradient_boosting"
    """scikit-learn estimator family."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Fixed estimator parameters."""
    search: SearchConfig = Field(default_factory=SearchConfig)
    """Hyperparameter search over `params` plus the search space."""
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    """Fraction of label rows kept out of training for evaluation (see `holdout_split`)."""
    holdout_split: Literal["auto", "time", "random"] = "auto"
    """How the holdout rows are chosen. `time`: the latest label rows by label time (no
    future leakage). `random`: a random sample stratified by class, seeded by `seed`, for
    rows whose order carries no time. `auto`: `time` when the labels table has a
    `timestamp_column`, `random` when its time is the generated ingestion time (all rows
    alike: the last rows of the file would be the holdout, and a file sorted by class would
    hold out one class only)."""
    max_train_rows: int | None = Field(None, gt=0)
    """Subsample the search's training rows to bound its time (the final refit uses all)."""
    threshold: float = Field(0.5, gt=0, lt=1)
    """Score at or above which the decision is positive."""
    seed: int = 42
    """Seed of the search, the estimator and any sampling."""
    experiment: str = "seamless"
    """MLflow experiment name."""
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class PromotionConfig(_Strict):
    """Champion/challenger gate."""

    metric: Literal["roc_auc", "pr_auc", "f1", "log_loss", "brier"] = "roc_auc"
    """Holdout metric compared between challenger and champion (lower is better for
    `log_loss` and `brier`)."""
    min_improvement: float = Field(0.0, ge=0)
    """The challenger must beat the champion by at least this much on `metric`."""
    min_value: float | None = None
    """The challenger must also reach this absolute value (first model included)."""


class SparkConfig(_Strict):
    """How the `spark` engine reaches Spark (docs/spark.md)."""

    master: str = "local[*]"
    """Spark master URL: `local[*]` runs Spark inside the step; on Kubernetes,
    `k8s://https://kubernetes.default.svc` starts executor pods in the step's namespace."""
    app_name: str = "seamless"
    """Application name shown in Spark's UI and on executor pods."""
    conf: dict[str, str] = Field(default_factory=dict)
    """Extra Spark properties, e.g. `spark.driver.memory: 4g` or the S3A connector's
    `spark.hadoop.fs.s3a.*` settings; they are given to Spark as written."""
    executors: int = Field(2, gt=0)
    """Executor pods on Kubernetes (`k8s://` masters only)."""
    executor_cores: int = Field(1, gt=0)
    """Cores per executor pod (`k8s://` masters only)."""
    executor_memory: str = Field("2g", pattern=r"^[0-9]+[kmgt]?$")
    """JVM heap per executor pod, e.g. `2g` (`k8s://` masters only)."""
    max_training_rows: int | None = Field(1_000_000, gt=0)
    """scikit-learn trains on one machine: a larger training set is sampled down to this
    many rows, the same rows every run (ranked by a hash of entity, label time and
    `model.seed`); the sample is recorded in MLflow. null: no cap."""


class SeamlessConfig(_Strict):
    """A whole use case."""

    name: str
    """Use-case name, shown in reports and run summaries."""
    tables: dict[str, TableConfig]
    """Input tables by name; names are referred to by labels, validation and features."""
    labels: LabelsConfig
    """The labels table and column, and the label's classes."""
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    """Expectations added to the built-in checks."""
    features: FeaturesConfig
    """Feast entity, feature views and the feature service."""
    model: ModelConfig
    """Estimator, search space and holdout."""
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    """When a challenger replaces the champion."""
    engine: Literal["local", "spark"] = "local"
    """Where the data work of ingest runs: `local` (pandas and Arrow inside the step) or
    `spark` (Apache Spark, see `spark`); the stages' outputs are the same either way."""
    spark: SparkConfig = Field(default_factory=SparkConfig)
    """Spark settings, used when `engine` is `spark`."""
    monitoring: MonitoringConfig | None = None
    """Drift and live-performance thresholds (common/monitoring_config.py); defaults if absent."""
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    """Webhooks that hear about promotions, gate rejections, rollbacks, drift and failed
    validations (common/notifications_config.py); none if absent."""
    compliance: ComplianceConfig | None = None
    """The policy a model must pass before promotion: validation, lineage, model card and
    per-segment metrics (common/compliance_config.py); absent, nothing beyond `promotion`
    is enforced."""
    model_card: ModelCardConfig = Field(default_factory=ModelCardConfig)
    """Intended use, limitations and owners for the model card every registered version
    gets (common/compliance_config.py)."""
    image_prefix: str | None = None
    """Registry prefix of the project's images in compiled specs, e.g. `ghcr.io/acme/seamless`
    (lowercase, no tag): `seamless compile --config FILE` writes `<prefix>/runtime:<tag>`,
    pinned to the digest `make push` recorded when known. `--image-prefix` or
    SEAMLESS_IMAGE_PREFIX override it; unset, the local `localhost/seamless` names
    (loaded into kind with `make images-load`)."""

    @model_validator(mode="before")
    @classmethod
    def _inline_column_specs(cls, raw: Any) -> Any:
        # `columns: {email: {type: string, pii: drop}}` is the tag (and a format) written on
        # the column; it is split into the type (`columns`), the tag (`pii`) and the format
        # (`formats`) here, at the top level, so a mistake is one sentence naming the
        # column's full key.
        if not isinstance(raw, dict) or not isinstance(raw.get("tables"), dict):
            return raw
        tables = dict(raw["tables"])
        for name, table in tables.items():
            if not isinstance(table, dict) or not isinstance(table.get("columns"), dict):
                continue
            if not any(isinstance(v, dict) for v in table["columns"].values()):
                continue
            columns: dict[Any, Any] = {}
            tags, formats = table.get("pii", {}), table.get("formats", {})
            tags = dict(tags) if isinstance(tags, dict) else tags
            formats = dict(formats) if isinstance(formats, dict) else formats
            for col, spec in table["columns"].items():
                if not isinstance(spec, dict):
                    columns[col] = spec
                    continue
                where = f"tables.{name}.columns.{col}"
                columns[col], tag, fmt = _column_spec(where, spec)
                if tag != "keep":
                    _merge_once(tags, col, tag, where, f"tables.{name}.pii.{col}")
                if fmt:
                    _merge_once(formats, col, fmt, where, f"tables.{name}.formats.{col}")
            tables[name] = {**table, "columns": columns, "pii": tags, "formats": formats}
        return {**raw, "tables": tables}

    @field_validator("image_prefix")
    @classmethod
    def _image_prefix_usable(cls, value: str | None) -> str | None:
        why = prefix_problem(value) if value is not None else None
        if why:
            raise ValueError(f"the registry prefix {why}")
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> SeamlessConfig:
        known = set(self.tables)
        if self.labels.table not in known:
            raise ValueError(
                f"labels.table '{self.labels.table}' is not one of tables {sorted(known)}"
            )
        for i, exp in enumerate(self.validation.expectations):
            if exp.table not in known:
                raise ValueError(
                    f"validation.expectations[{i}].table '{exp.table}' is not one of tables "
                    f"{sorted(known)}"
                )
        for view in self.features.views:
            if view.table not in known:
                raise ValueError(
                    f"features.views '{view.name}' table '{view.table}' is not one of tables "
                    f"{sorted(known)}"
                )
            key = self.tables[view.table].entity_column or ROW_ID
            label_key = self.tables[self.labels.table].entity_column or ROW_ID
            if key != label_key:
                raise ValueError(
                    f"features.views '{view.name}': table '{view.table}' has entity column "
                    f"'{key}' but the labels table uses '{label_key}'; they must match"
                )
            missing = [f for f in view.features if f not in self.tables[view.table].columns]
            if missing:
                raise ValueError(
                    f"features.views '{view.name}' lists {missing}, which are not declared in "
                    f"tables.{view.table}.columns"
                )
        return self

    @model_validator(mode="after")
    def _pii_consistent(self) -> SeamlessConfig:
        features = {(v.table, f): v.name for v in self.features.views for f in v.features}
        self._declared("pii", " (only declared columns can be tagged)")
        for name, table in self.tables.items():
            for col, tag in table.pii.items():
                where = f"tables.{name}.columns.{col}"
                if tag == "keep":
                    continue
                kind = table.columns[col]
                if tag == "pseudonymize" and kind not in PSEUDONYMIZABLE:
                    raise ValueError(
                        f"{where} is declared {kind} and tagged pii: pseudonymize, but only "
                        "int and string columns can be pseudonymized; tag it drop or keep"
                    )
                if (name, col) in features:
                    raise ValueError(
                        f"{where} is tagged pii: {tag} but is a feature of features.views "
                        f"'{features[(name, col)]}'; features cannot be tagged (serving takes "
                        "them as clients send them and logs them), so remove the tag or the "
                        "feature"
                    )
                role = self._role(name, col)
                if tag == "drop" and role:
                    hint = "; pseudonymize it instead" if role == "entity_column" else ""
                    raise ValueError(
                        f"{where} is tagged pii: drop but is the table's {role}, which every "
                        f"later stage needs{hint}"
                    )
                if tag == "pseudonymize" and role and role != "entity_column":
                    raise ValueError(
                        f"{where} is tagged pii: pseudonymize but is the table's {role}, "
                        "which must keep its values"
                    )
                if tag == "drop":
                    for i, exp in enumerate(self.validation.expectations):
                        if exp.table == name and col in _expectation_columns(exp.kwargs):
                            raise ValueError(
                                f"validation.expectations[{i}] checks column '{col}' of table "
                                f"'{name}', which is tagged pii: drop and is not in the snapshot"
                            )
        # Joins and lookups need the same pseudonyms on every side of the entity key.
        key = self.entity_key()
        sides = [self.labels.table, *dict.fromkeys(v.table for v in self.features.views)]
        tags = {t: self.tables[t].pii.get(key, "keep") for t in sides}
        first = tags[self.labels.table]
        for side, tag in tags.items():
            if tag != first:
                raise ValueError(
                    f"the entity key '{key}' is tagged pii: {first} in tables.{self.labels.table} "
                    f"but {tag} in tables.{side}; tag it the same in every table (declare it "
                    "in each table's columns), or the tables no longer join"
                )
        return self

    def _role(self, table: str, column: str) -> str | None:
        cfg = self.tables[table]
        if column == cfg.entity_column:
            return "entity_column"
        if column == cfg.timestamp_column:
            return "timestamp_column"
        if table == self.labels.table and column == self.labels.label_column:
            return "label column (labels.label_column)"
        return None

    @model_validator(mode="after")
    def _compliance_consistent(self) -> SeamlessConfig:
        policy = self.compliance
        if policy is None:
            return self
        types = self.feature_types()
        for i, seg in enumerate(policy.segments):
            where = f"compliance.segments[{i}].column"
            if seg.column not in types:
                raise ValueError(
                    f"{where} '{seg.column}' is not a feature of features.service "
                    f"'{self.features.service}' (the holdout holds only its features: "
                    f"{', '.join(types)})"
                )
            if seg.bins is not None and types[seg.column] not in ("int", "float"):
                raise ValueError(
                    f"compliance.segments[{i}].bins need a numeric column; '{seg.column}' is "
                    f"declared {types[seg.column]}"
                )
        if policy.model_card:
            card = self.model_card
            if not card.intended_use.strip():
                raise ValueError(
                    "model_card.intended_use is required when compliance.model_card is true "
                    "(the card must say what the model is for)"
                )
            if not [o for o in card.owners if o.strip()]:
                raise ValueError(
                    "model_card.owners is required when compliance.model_card is true "
                    "(the card must say who is accountable)"
                )
        return self

    def entity_key(self) -> str:
        """The join key shared by the labels and every feature table."""
        return self.tables[self.labels.table].entity_column or ROW_ID

    def entity_type(self) -> ColumnType:
        """Declared type of the entity key (int unless the config says otherwise)."""
        return self.tables[self.labels.table].columns.get(self.entity_key(), "int")

    def entity_pii(self) -> PiiTag:
        """The entity key's personal-data tag (the same in every table it joins)."""
        return self.tables[self.labels.table].pii.get(self.entity_key(), "keep")

    def pseudonymized(self) -> dict[str, list[str]]:
        """Table -> its columns tagged `pii: pseudonymize` (tables without any left out)."""
        found = {n: t.tagged("pseudonymize") for n, t in self.tables.items()}
        return {n: cols for n, cols in found.items() if cols}

    def timestamp_key(self, table: str) -> str:
        """The event-time column of `table` after ingestion."""
        return self.tables[table].timestamp_column or INGESTED_AT

    @model_validator(mode="after")
    def _names_apart(self) -> SeamlessConfig:
        # DuckDB (Feast's offline store), Spark and Great Expectations match column names
        # whatever their case: two names that differ only in case would be one column.
        for name, table in self.tables.items():
            names = [*table.columns, table.entity_column, table.timestamp_column]
            if name == self.labels.table:
                names.append(self.labels.label_column)
            first = case_clash([n for n in names if n])
            if first:
                raise ValueError(
                    f"tables.{name}.columns '{first[0]}' and '{first[1]}' differ only in case, "
                    f"and {CASE_BLIND}; rename one in the source"
                )
        served = {self.entity_key().casefold(): "the entity key"}
        served[self.labels.label_column.casefold()] = "the label column"
        for view in self.features.views:
            for feature in view.features:
                other = served.get(feature.casefold())
                if other is not None:
                    raise ValueError(
                        f"features.views '{view.name}' serves '{feature}', which is also "
                        f"{other}; each needs a name of its own, case aside (the training "
                        f"set holds them side by side, and {CASE_BLIND})"
                    )
                served[feature.casefold()] = f"a feature of view '{view.name}'"
        return self

    @model_validator(mode="after")
    def _formats_fit(self) -> SeamlessConfig:
        self._declared("formats")
        for name, table in self.tables.items():
            for col, fmt in table.formats.items():
                why = fmt.problem(table.columns[col])
                if why:
                    raise ValueError(f"tables.{name}.columns.{col}: {why}"[:300])
        return self

    def _declared(self, key: str, why: str = "") -> None:
        """Every column a table's per-column map (`pii`, `formats`) names is declared."""
        for name, table in self.tables.items():
            for col in getattr(table, key):
                if col not in table.columns:
                    raise ValueError(
                        f"tables.{name}.{key} names '{col}', which is not declared in "
                        f"tables.{name}.columns{why}"
                    )

    def feature_types(self) -> dict[str, ColumnType]:
        """Feature name -> declared type, in the service's order."""
        out: dict[str, ColumnType] = {}
        for view in self.features.views:
            for f in view.features:
                out[f] = self.tables[view.table].columns[f]
        return out


CASE_BLIND = (
    "Feast's offline store (DuckDB), Spark and Great Expectations match column names "
    "whatever their case"
)


def case_clash(names: list[str]) -> tuple[str, str] | None:
    """The first two distinct names equal but for case, if any."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            return other, name
    return None


def _merge_once(into: Any, col: str, value: Any, where: str, other: str) -> None:
    """Put what the column says into its table's map, refusing a different second say."""
    if not isinstance(into, dict):
        return  # the map itself is malformed: its own validation says so
    if into.get(col, value) != value:
        raise ValueError(f"{where} says {value!r} but {other} says {into[col]!r}; write it once")
    into[col] = value


def _column_spec(where: str, spec: dict[Any, Any]) -> tuple[Any, PiiTag, dict[str, Any]]:
    """(type, tag, format keys) of a column written as `{type: ..., pii: ..., format: ...}`."""
    unknown = [str(k) for k in spec if k not in ("type", "pii", *FORMAT_KEYS)]
    if unknown:
        raise ValueError(
            f"{where} has unknown key '{unknown[0]}'; a column is written as its type or as "
            "{type: ..., pii: pseudonymize|drop|keep} with format, unit, thousands or decimal "
            "if its values need them"
        )
    if "type" not in spec:
        raise ValueError(f"{where} needs a type, e.g. {{type: string, pii: drop}}")
    tag = spec.get("pii", "keep")
    if tag not in ("pseudonymize", "drop", "keep"):
        raise ValueError(f"{where}: pii must be pseudonymize, drop or keep, not {tag!r}"[:300])
    return spec["type"], tag, {k: spec[k] for k in FORMAT_KEYS if k in spec}


def _expectation_columns(kwargs: dict[str, Any]) -> set[str]:
    """Every column an expectation's arguments name (single, pair and list forms)."""
    names: set[str] = set()
    for key in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(key), str):
            names.add(kwargs[key])
    for key in ("column_list", "column_set"):
        if isinstance(kwargs.get(key), list):
            names.update(c for c in kwargs[key] if isinstance(c, str))
    return names


def feature_columns(config: SeamlessConfig) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names of the feature service, in service order."""
    numeric, categorical = [], []
    for name, kind in config.feature_types().items():
        if kind in ("int", "float"):
            numeric.append(name)
        elif kind in ("string", "bool"):
            categorical.append(name)
    return numeric, categorical


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str, origin: str) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise SeamlessError(
                f"{origin}: key '{where}' uses ${{{name}}} but environment variable {name} "
                "is not set."
            )

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: _expand(v, f"{where}.{k}" if where else str(k), origin) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", origin) for i, v in enumerate(value)]
    return value


MAX_NODES = 100_000
"""A config is small; more nodes than this (e.g. nested YAML aliases) is refused."""


def _check_size(raw: Any, origin: str) -> None:
    """Refuse alias bombs before anything walks the expanded tree."""
    count = 0
    stack = [raw]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise SeamlessError(
                f"{origin}: the config expands to more than {MAX_NODES:,} values "
                "(nested YAML aliases?); refusing to load it."
            )
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _format_error(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{origin}: unknown key '{loc}' (not a Seamless config field)."
    if kind == "missing":
        return f"{origin}: required key '{loc}' is missing."
    msg = first["msg"].removeprefix("Value error, ")
    if loc:
        return f"{origin}: key '{loc}': {msg} (got {first.get('input')!r})."
    return f"{origin}: {msg}."


def parse_config(text: str, origin: str = "<config>") -> SeamlessConfig:
    """Parse YAML text into a validated config; errors name `origin` and the key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        context = ""
        if exc.context and exc.context_mark:
            context = f"; {exc.context} started at line {exc.context_mark.line + 1}"
        raise SeamlessError(f"{origin}: not valid YAML{where} ({exc.problem}{context}).") from None
    except Exception as exc:  # PyYAML's constructors raise plain errors on bad tags
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise SeamlessError(f"{origin}: not valid YAML ({reason}).") from None
    if not isinstance(raw, dict):
        raise SeamlessError(f"{origin}: expected a mapping of config keys at the top level.")
    _check_size(raw, origin)
    raw = _expand(raw, "", origin)
    try:
        return SeamlessConfig.model_validate(raw)
    except ValidationError as exc:
        raise SeamlessError(_format_error(exc, origin)) from None


def load_config(path: str | Path) -> SeamlessConfig:
    """Load a config file; errors name the file and the key at fault."""
    p = Path(path)
    if not p.is_file():
        raise SeamlessError(f"Config file {p} does not exist.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SeamlessError(
            f"Config file {p} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start})."
        ) from None
    return parse_config(text, origin=str(p))


def default_config_path() -> Path:
    """The bundled credit-risk demo config."""
    return Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "credit_risk.yaml"
