"""A batch of prediction-log records into PostgreSQL with COPY, in one transaction.

Serving's rows go through `execute_values` with every `features` object encoded by
Python's `json`; for a batch run's million records that is most of the cost. Here the
batch's columns go to a temporary table as CSV (encoded by pyarrow, read by COPY), and
one `INSERT ... SELECT` builds the log's rows on the server: the constant fields as
parameters, `features` with `jsonb_build_object`, fields without a column of their own
(`as_of`) into `extra`. The rows then read back as the row-by-row path writes them
(`postgres._row`).

Only plain column types take this path (`plan` returns None otherwise, and the caller
writes row by row): floats, integers, booleans and text, `features` a struct of them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from components.predictions.records import BatchRecords

Column = tuple[str, str, str, Callable[[Any], bool]]
"""A log table's column: (record field, SQL column, SQL type, whether a value fits it);
`postgres.COLUMNS` lists them in the order serving writes the fields."""

STAGE = "seamless_batch_stage"
MAX_PAIRS = 50
"""jsonb_build_object takes at most 100 arguments: larger objects are joined with ||."""


def _sql_type(kind: pa.DataType) -> str | None:
    import pyarrow.types as t

    if t.is_dictionary(kind):
        kind = kind.value_type
    if t.is_floating(kind):
        return "double precision"
    if t.is_integer(kind):
        return "bigint"
    if t.is_boolean(kind):
        return "boolean"
    if t.is_string(kind) or t.is_large_string(kind) or t.is_null(kind):
        return "text"
    return None


def _json_number(column: str) -> str:
    """A float column as the JSON number Python's `json` writes: PostgreSQL prints an
    integral double without its `.0` (`1`, `1e+15`), which would read back as an int,
    while Python writes `1.0` up to 1e16 (and both print larger ones with an exponent,
    which jsonb stores as an integer)."""
    return (
        f"CASE WHEN {column} = trunc({column}) AND abs({column}) < 1e16 "
        f"THEN ({column}::bigint::text || '.0')::jsonb ELSE to_jsonb({column}) END"
    )


def _json(column: str, sql_type: str) -> str:
    return _json_number(column) if sql_type == "double precision" else f"to_jsonb({column})"


def _object(pairs: list[tuple[str, str]], params: list[Any]) -> str:
    """A jsonb object of (key, SQL jsonb expression) pairs; keys become parameters."""
    parts = []
    for start in range(0, len(pairs), MAX_PAIRS):
        args = []
        for key, expr in pairs[start : start + MAX_PAIRS]:
            params.append(key)
            args.append(f"%s::text, {expr}")
        parts.append(f"jsonb_build_object({', '.join(args)})")
    return " || ".join(parts) if parts else "'{}'::jsonb"


@dataclass
class Plan:
    """The staging table, the CSV to COPY into it and the INSERT that builds the rows."""

    create: str
    csv: bytes
    insert: str
    params: list[Any]


def plan(
    batch: BatchRecords, table: str, columns: list[Column], constants_row: tuple[Any, ...]
) -> Plan | None:
    """How to write `batch` into `table` (None: a column type this path does not take).
    `constants_row` is `postgres._row` of the batch's constant fields."""
    import pyarrow as pa
    import pyarrow.types as t

    data = batch.columns
    stage: list[tuple[str, str]] = []  # (stage column, SQL type)
    arrays: list[pa.Array] = []
    by_field: dict[str, tuple[str, str]] = {}  # record field -> (stage column, SQL type)
    struct_fields: dict[str, list[tuple[str, str, str]]] = {}  # field -> [(key, col, type)]

    def staged(col: str, array: pa.Array) -> str | None:
        """Add `array` to the stage table as `col`; its SQL type (None: not COPY's)."""
        sql = _sql_type(array.type)
        if sql is not None:
            stage.append((col, sql))
            arrays.append(_plain(array))
        return sql

    for i, name in enumerate(data.column_names):
        array = data.column(name).combine_chunks()
        if t.is_struct(array.type):
            keys = []
            for j in range(array.type.num_fields):
                sql = staged(f"c{i}_{j}", array.field(j))
                if sql is None:
                    return None
                keys.append((array.type.field(j).name, f"c{i}_{j}", sql))
            struct_fields[name] = keys
            continue
        sql = staged(f"c{i}", array)
        if sql is None:
            return None
        by_field[name] = (f"c{i}", sql)

    params: list[Any] = []
    values: list[str] = []
    for (field, _, kind, _), constant in zip(columns, constants_row, strict=False):
        if field in struct_fields:
            if kind != "jsonb":
                return None
            pairs = [(key, _json(col, sql)) for key, col, sql in struct_fields[field]]
            values.append(_object(pairs, params))
        elif field in by_field:
            col, sql = by_field[field]
            if kind == "jsonb":
                values.append(_json(col, sql))
            elif kind == sql:
                values.append(col)
            else:
                return None  # e.g. a per-row timestamp: the row-by-row path checks it
        else:
            params.append(constant)
            values.append(f"%s::{kind}")
    known = {field for field, *_ in columns}
    extra_pairs = [
        (f, _json(*by_field[f])) for f in batch.order if f in by_field and f not in known
    ]
    if any(f in struct_fields for f in batch.order if f not in known):
        return None
    constant_extra = constants_row[len(columns)]
    extra = _object(extra_pairs, params) if extra_pairs else "NULL::jsonb"
    if constant_extra is not None:
        params.append(constant_extra)
        extra = f"(%s::jsonb || coalesce({extra}, '{{}}'::jsonb))"
    names = ", ".join(col for _, col, _, _ in columns)
    insert = (
        f"INSERT INTO {table} ({names}, extra, log_key) "
        f"SELECT {', '.join(values)}, ({extra})::json, NULL FROM {STAGE} ORDER BY ord"
    )
    create = (
        f"CREATE TEMP TABLE {STAGE} (ord bigint, "
        + ", ".join(f"{col} {sql}" for col, sql in stage)
        + ") ON COMMIT DROP"
    )
    ordinal = pa.array(range(len(data)), pa.int64())
    return Plan(create, _csv([ordinal, *arrays]), insert, params)


def _plain(array: pa.Array) -> pa.Array:
    """Dictionary-encoded text decoded; NaN already null (pyarrow from pandas)."""
    import pyarrow.types as t

    return array.dictionary_decode() if t.is_dictionary(array.type) else array


def _csv(arrays: list[pa.Array]) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    table = pa.table({f"a{i}": a for i, a in enumerate(arrays)})
    out = io.BytesIO()
    # Text always quoted and nulls as unquoted empty fields: COPY's CSV tells "" from NULL.
    pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False))
    return out.getvalue()


def copy_batch(conn: Any, batch_plan: Plan) -> None:
    """Run `batch_plan` on `conn` inside its open transaction (the caller commits)."""
    with conn.cursor() as cur:
        # A million rows take longer than a request's statement budget.
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute(batch_plan.create)
        cur.copy_expert(f"COPY {STAGE} FROM STDIN WITH (FORMAT csv)", io.BytesIO(batch_plan.csv))
        cur.execute(batch_plan.insert, batch_plan.params)
