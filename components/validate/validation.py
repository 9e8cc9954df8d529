"""Run the config's Great Expectations suite over a dataset's tables.

Great Expectations is imported inside the functions only: it takes ~3 s to import
and no other stage needs it. Everything runs in one in-memory (ephemeral) context,
so nothing is written to the project, the working directory or a GE folder.
"""

from __future__ import annotations

import difflib
import json
import os
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from components.common.config import ExpectationConfig, SeamlessConfig
from components.common.env import disable_telemetry
from components.common.errors import SeamlessError
from components.validate.builtin import builtin_outcomes, frame_facts
from components.validate.results import ExpectationOutcome, ValidationResult, jsonable

if TYPE_CHECKING:
    from great_expectations.data_context import EphemeralDataContext
    from great_expectations.expectations import Expectation

    from components.validate.spark_tables import SparkTables

__all__ = ["ExpectationOutcome", "ValidationResult", "validate_tables"]

# Fields of GE's Expectation base class that Seamless sets itself (or that would
# change how results come back); a config that sets them is rejected.
RESERVED_KWARGS = frozenset(
    {"id", "meta", "rendered_content", "severity", "result_format", "catch_exceptions", "windows"}
)
# BASIC carries counts, percents and a partial list of offending values, which is
# all the report shows; SUMMARY/COMPLETE add value counts and row indexes we discard.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 5}
META_KEY = "seamless_index"


def validate_tables(
    config: SeamlessConfig,
    tables: dict[str, pd.DataFrame],
    manifest: dict[str, Any] | None = None,
    builtin: bool = True,
    spark: SparkTables | None = None,
) -> ValidationResult:
    """Run the built-in checks and every expectation of `config.validation.expectations`.

    `manifest` (the ingest dataset's) brings the counts of values ingest coerced to null,
    judged against each table's budget; `builtin=False` runs the user's suite alone.
    Raises SeamlessError for a table the expectations name that is not in `tables`,
    an unknown expectation type or bad kwargs. A failing expectation, including one
    GE cannot evaluate (e.g. its column is missing), is reported in the result,
    never raised: the caller decides what `result.decision` means for the run.
    """
    started = time.perf_counter()
    specs = config.validation.expectations
    present = set(spark.frames if spark is not None else tables)
    missing = sorted({e.table for e in specs if e.table not in present})
    if missing:
        first = next(i for i, e in enumerate(specs) if e.table in missing)
        raise SeamlessError(
            f"validation.expectations[{first}] checks table '{missing[0]}', which is not in the "
            f"dataset (it has {sorted(tables)}); missing tables: {missing}."
        )

    gx = _import_gx()
    # Build every expectation before running any, so a config mistake fails fast.
    classes = expectation_classes(gx)
    built = [_build_expectation(classes, gx.__version__, i, spec) for i, spec in enumerate(specs)]

    per_table: dict[str, list[int]] = defaultdict(list)
    for i, spec in enumerate(specs):
        per_table[spec.table].append(i)

    outcomes: dict[int, ExpectationOutcome] = {}
    context = _ephemeral_context(gx) if per_table else None
    if context is not None:
        datasource: Any
        if spark is not None:  # Great Expectations' own Spark datasource
            datasource = context.data_sources.add_spark(name="seamless")
        else:
            datasource = context.data_sources.add_pandas(name="seamless")
        data: Mapping[str, Any] = spark.frames if spark is not None else tables
        for table, indexes in per_table.items():
            outcomes.update(
                _validate_table(
                    gx, datasource, table, data[table], [(i, specs[i], built[i]) for i in indexes]
                )
            )

    if spark is not None:
        facts = spark.facts(config)
    else:
        facts = {n: frame_facts(config, n, df) for n, df in tables.items()}
    checks = builtin_outcomes(config, None, manifest, facts) if builtin else []
    validated = set(per_table) | ({t for t in config.tables if t in present} if builtin else set())
    return ValidationResult(
        expectations=[outcomes[i] for i in range(len(specs))],
        ge_version=gx.__version__,
        table_rows={t: facts[t].rows for t in facts if t in validated},
        duration_s=round(time.perf_counter() - started, 3),
        builtin=checks,
    )


def _import_gx() -> Any:
    # GE reads its analytics switch from the environment: set it before the import.
    disable_telemetry()
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    return gx


def _ephemeral_context(gx: Any) -> EphemeralDataContext:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    project_config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        # tqdm bars flood the component logs, one per metric computation.
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context: EphemeralDataContext = gx.get_context(mode="ephemeral", project_config=project_config)
    return context


def expectation_classes(gx: Any) -> dict[str, type[Expectation]]:
    """GE's expectation classes by snake_case name (`expect_column_values_to_be_between`).

    Keyed by each class's own `expectation_type` rather than a CamelCase conversion,
    which gets acronyms wrong (`ExpectColumnKLDivergenceToBeLessThan`).
    """
    from great_expectations.expectations.expectation import Expectation

    found: dict[str, type[Expectation]] = {}
    for name in dir(gx.expectations):
        obj = getattr(gx.expectations, name)
        if isinstance(obj, type) and issubclass(obj, Expectation):
            snake = getattr(obj, "expectation_type", "")
            if isinstance(snake, str) and snake.startswith("expect_"):
                found[snake] = obj
    return found


def _build_expectation(
    classes: dict[str, type[Expectation]], ge_version: str, index: int, spec: ExpectationConfig
) -> Expectation:
    where = f"validation.expectations[{index}] ({spec.type} on table '{spec.table}')"
    cls = classes.get(spec.type)
    if cls is None:
        close = difflib.get_close_matches(spec.type, classes, n=1)
        hint = f"; did you mean '{close[0]}'" if close else ""
        raise SeamlessError(
            f"validation.expectations[{index}]: unknown expectation type '{spec.type}' (not an "
            f"expectation of Great Expectations {ge_version}){hint}."
        )
    reserved = sorted(RESERVED_KWARGS & set(spec.kwargs))
    if reserved:
        raise SeamlessError(f"{where}: kwargs {reserved} are set by Seamless, remove them.")
    try:
        return cls(**spec.kwargs, meta={META_KEY: index})
    except Exception as exc:  # pydantic (v1) ValidationError, or a GE configuration error
        raise SeamlessError(
            f"{where}: invalid kwargs {spec.kwargs}: {_pydantic_v1_errors(exc)}."
        ) from None


def _pydantic_v1_errors(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    # pydantic reports one error per union member it tried; the first per field is enough.
    first: dict[str, str] = {}
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        first.setdefault(loc, str(err.get("msg")))
    return "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in first.items())


def _validate_table(
    gx: Any,
    datasource: Any,
    table: str,
    df: Any,
    items: list[tuple[int, ExpectationConfig, Expectation]],
) -> dict[int, ExpectationOutcome]:
    """One suite per table, one GE run: metrics shared by expectations are computed once."""
    asset = datasource.add_dataframe_asset(name=table)
    batch = asset.add_batch_definition_whole_dataframe(name="whole").get_batch(
        batch_parameters={"dataframe": df}
    )
    # A suite holds an expectation once (meta aside): a duplicate entry gets the result of
    # the one it repeats. Found here by key, not by `add_expectation`, which compares each
    # new expectation with every one held (a minute for 600 on a 300-column table).
    first: dict[str, int] = {}
    same_as: dict[int, int] = {}
    unique = []
    for index, _, expectation in items:
        key = _identity(expectation)
        if key in first:
            same_as[index] = first[key]
        else:
            first[key] = index
            unique.append(expectation)
    suite = gx.ExpectationSuite(name=f"seamless-{table}", expectations=unique)

    run = batch.validate(suite, result_format=RESULT_FORMAT)
    by_index = {int(r.expectation_config.meta[META_KEY]): r for r in run.results}
    return {
        index: _outcome(index, table, spec, by_index[same_as.get(index, index)])
        for index, spec, _ in items
    }


def _identity(expectation: Expectation) -> str:
    """What makes two expectations the same one in a suite: type and arguments."""
    skip = {"id", "meta", "notes", "rendered_content"}
    args = json.dumps(expectation.dict(exclude=skip), sort_keys=True, default=str)
    return f"{expectation.expectation_type} {args}"


def _outcome(index: int, table: str, spec: ExpectationConfig, res: Any) -> ExpectationOutcome:
    result: dict[str, Any] = dict(res.result or {})
    exception = _exception_message(res.exception_info)
    examples = result.get("partial_unexpected_list") or []
    return ExpectationOutcome(
        index=index,
        table=table,
        type=spec.type,
        column=_column_of(spec.kwargs),
        kwargs=jsonable(dict(spec.kwargs), truncate=False),
        severity=spec.severity,
        success=bool(res.success) and exception is None,
        observed_value=jsonable(result.get("observed_value")),
        element_count=_int_or_none(result.get("element_count")),
        unexpected_count=_int_or_none(result.get("unexpected_count")),
        unexpected_percent=_float_or_none(result.get("unexpected_percent")),
        unexpected_examples=jsonable(list(examples)[:5]),
        exception=exception,
    )


def _exception_message(info: Any) -> str | None:
    """GE reports errors flat ({raised_exception, exception_message}) or per metric."""
    if not isinstance(info, dict):
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        str(e.get("exception_message") or "Great Expectations raised an error").strip()
        for e in entries
        if isinstance(e, dict) and e.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _column_of(kwargs: dict[str, Any]) -> str | None:
    if isinstance(kwargs.get("column"), str):
        return str(kwargs["column"])
    if "column_A" in kwargs and "column_B" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if isinstance(kwargs.get("column_list"), list):
        return ", ".join(str(c) for c in kwargs["column_list"])
    return None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: Any) -> float | None:
    value = jsonable(value)
    return float(value) if isinstance(value, int | float) else None
