"""A batch of prediction-log records into PostgreSQL with one binary COPY, in one
transaction.

Serving's rows go through `execute_values` with every `features` object encoded by
Python's `json`; for a batch run's million records that is most of the cost. Here the
client encodes the batch's columns with pyarrow into COPY's binary format and COPYs them
straight into the log table (no temporary table, no `INSERT ... SELECT`): the constant
fields repeated in every row, `features` as JSON text built column by column (jsonb
parses it once), the fields without a column of their own (`as_of`) as `extra`'s JSON
text. Chunks of `CHUNK_ROWS` rows are encoded in a second thread while the chunk before
is sent, so the client's work overlaps the server's.

The table holds, byte for byte, what the earlier path (COPY into a temporary table, then
one `INSERT ... SELECT` building each row's jsonb with `to_jsonb`/`jsonb_build_object`)
stored: numbers as to_jsonb of a double gives them, `extra` as jsonb prints it. Readers
get the records the row-by-row path gives, but for doubles from 1e16 up, which both
COPY paths store with PostgreSQL's digits (Python's shortest text differs for some; the
numbers read back as integers there, equal as doubles).

Only plain column types take this path (`plan` returns None otherwise, and the caller
writes row by row): floats, integers, booleans and text, `features` a struct of them.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from components.predictions.records import BatchRecords

Column = tuple[str, str, str, Callable[[Any], bool]]
"""A log table's column: (record field, SQL column, SQL type, whether a value fits it);
`postgres.COLUMNS` lists them in the order serving writes the fields."""

CHUNK_ROWS = 16_384
"""Rows encoded (and handed to the connection) at a time: bounds the client's memory."""
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"  # a field's length -1
JSONB_VERSION = b"\x01"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_FIXED = {"bigint": ">i8", "double precision": ">f8", "boolean": "?"}  # numpy dtypes
_PACK = {"bigint": ">q", "double precision": ">d", "boolean": ">?"}  # struct formats

Field = Callable[[int, int], "pa.Array"] | bytes
"""One table column in COPY's binary format: a function of the rows [start, stop) giving
each row's field (length, then bytes), or the same bytes for every row."""


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


def _plain(array: pa.Array) -> pa.Array | None:
    """`array` as the column type its SQL type reads (dictionaries decoded, floats as
    float64 through their shortest text, as a CSV COPY read them); None: a value does not
    fit (an unsigned integer past bigint)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    if t.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if t.is_floating(kind) and not t.is_float64(kind):
        return pc.cast(pc.cast(array, pa.string()), pa.float64())
    if t.is_integer(kind) and not t.is_int64(kind):
        try:
            return pc.cast(array, pa.int64())
        except pa.ArrowInvalid:
            return None
    if t.is_large_string(kind) or t.is_null(kind):
        return pc.cast(array, pa.string())
    return array


# JSON text, as jsonb prints it back.


def numeric_text(value: float) -> str:
    """A float as jsonb prints the number Python's `json` writes for it: integral ones
    below 1e16 with `.0` (Python writes `1.0`; an exponent form like `1e+16` is stored as
    an integer), others positional (`1.5e-05` -> `0.000015`)."""
    if value == math.trunc(value) and abs(value) < 1e16:
        return f"{int(value)}.0"
    return format(Decimal(repr(value)), "f")


def jsonb_text(value: Any) -> str:
    """`value` (from `json.loads`) as PostgreSQL prints it back from jsonb: object keys
    shortest first, then bytewise; `, ` and `: ` between items; numbers positional; NaN
    and infinities (to_jsonb of a double) as strings."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        items = ", ".join(f"{jsonb_text(k)}: {jsonb_text(value[k])}" for k in keys)
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if isinstance(value, float):
        if math.isnan(value):
            return '"NaN"'
        if math.isinf(value):
            return '"Infinity"' if value > 0 else '"-Infinity"'
        return numeric_text(value)
    return json.dumps(value, ensure_ascii=False)  # str (escaped as PostgreSQL does), int, ...


def json_text(array: pa.Array, large: dict[float, str], positional: bool = False) -> pa.Array:
    """Each value of a plain `array` (`_plain`) as JSON text, nulls null. Floats as
    to_jsonb of a double gives them: integral ones below 1e16 with `.0` (as Python's
    `json` writes them), those from 1e16 up with PostgreSQL's own digits (`large`, from
    `Plan.resolve`: its shortest text sometimes differs there, and such numbers read back
    as integers), NaN and infinities as strings; others in their shortest form, which
    jsonb stores as PostgreSQL's. `positional`: numbers as jsonb prints them (`extra`)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    kind = array.type
    if t.is_floating(kind):
        finite = pc.is_finite(array)
        magnitude = pc.abs(array)
        integral = pc.and_(pc.equal(array, pc.trunc(array)), pc.less(magnitude, 1e16))
        whole = pc.cast(pc.if_else(integral, array, 0.0), pa.int64(), safe=False)
        ints = pc.binary_join_element_wise(pc.cast(whole, pa.string()), ".0", "")
        text = pc.if_else(integral, ints, pc.cast(array, pa.string()))
        big = pc.and_(finite, pc.greater_equal(magnitude, 1e16))
        text = _fix(text, big, lambda s: large[float(s)])
        if positional:
            text = _fix(text, pc.match_substring(text, "e"), lambda s: format(Decimal(s), "f"))
        special = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}
        return _fix(text, pc.invert(finite), lambda s: special[s])
    if t.is_integer(kind) or t.is_boolean(kind):
        return pc.cast(array, pa.string())
    text = pc.binary_join_element_wise('"', array, '"', "")
    return _fix(text, pc.match_substring_regex(array, _NEEDS_ESCAPE), _escaped)


def _escaped(quoted: str) -> str:
    return json.dumps(quoted[1:-1], ensure_ascii=False)  # the escapes PostgreSQL writes


def _fix(text: pa.Array, where: pa.Array, fix: Callable[[str], str]) -> pa.Array:
    """`text` with the values where `where` holds replaced by `fix(value)` (in Python:
    for the few values that need it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    where = pc.fill_null(where, False)
    if not pc.any(where).as_py():
        return text
    fixed = [fix(s) for s in pc.filter(text, where).to_pylist()]
    return pc.replace_with_mask(text, where, pa.array(fixed, pa.string()))


def _object(
    entries: list[tuple[str, pa.Array | str]], colon: str = ":", comma: str = ","
) -> pa.Array:
    """A JSON object per row from (key, JSON text per row or the same in every row);
    at least one entry per row."""
    import pyarrow.compute as pc

    args: list[Any] = []
    for i, (key, value) in enumerate(entries):
        args += [("{" if i == 0 else comma) + jsonb_text(key) + colon, value]
    return pc.binary_join_element_wise(
        *args, "}", "", null_handling="replace", null_replacement="null"
    )


# COPY's binary format: per row the field count, then per field its length and bytes.


def _binary(data: bytes, width: int, n: int) -> pa.Array:
    """`data` (n values of `width` bytes) as a binary array, without copying it."""
    import numpy as np
    import pyarrow as pa

    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _fixed_field(array: pa.Array, sql: str) -> pa.Array:
    """Values of a fixed-size type as binary fields: length, big-endian value."""
    import numpy as np
    import pyarrow.compute as pc

    dtype = np.dtype(_FIXED[sql])
    values = pc.fill_null(array, False if sql == "boolean" else 0).to_numpy(zero_copy_only=False)
    rows = np.empty(len(array), np.dtype([("length", ">i4"), ("value", dtype)]))
    rows["length"] = dtype.itemsize
    rows["value"] = values
    fields = _binary(rows.tobytes(), 4 + dtype.itemsize, len(array))
    if array.null_count:
        fields = pc.if_else(pc.is_valid(array), fields, NULL)
    return fields


def _text_field(text: pa.Array, prefix: bytes = b"") -> pa.Array:
    """Text values as binary fields: length, `prefix`, the UTF-8 bytes; nulls NULL."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = np.asarray(pc.fill_null(pc.binary_length(text), -1 - len(prefix))) + len(prefix)
    head = _binary(lengths.astype(">i4").tobytes(), 4, len(text))
    body = pc.fill_null(pc.binary_join_element_wise(prefix, pc.cast(text, pa.binary()), b""), b"")
    return pc.binary_join_element_wise(head, body, b"")


def _constant_field(value: Any, sql: str) -> bytes:
    """A value equal in every row (from `postgres._row`) as its binary field."""
    if value is None:
        return NULL
    if sql == "timestamptz":  # a canonical ISO timestamp: microseconds since 2000
        micros = (datetime.fromisoformat(value) - _PG_EPOCH) // timedelta(microseconds=1)
        payload = struct.pack(">q", micros)
    elif sql in _PACK:
        payload = struct.pack(_PACK[sql], value)
    else:  # text; jsonb and json: JSON text
        payload = (JSONB_VERSION if sql == "jsonb" else b"") + str(value).encode()
    return struct.pack(">i", len(payload)) + payload


def _column_field(array: pa.Array, kind: str, large: dict[float, str]) -> Field:
    """A per-row column (plain) into a table column of SQL type `kind`."""

    def make(start: int, stop: int) -> pa.Array:
        part = array.slice(start, stop - start)
        if kind == "jsonb":
            return _text_field(json_text(part, large), JSONB_VERSION)
        return _text_field(part) if kind == "text" else _fixed_field(part, kind)

    return make


def _struct_field(keys: list[tuple[str, pa.Array]], large: dict[float, str]) -> Field:
    """A struct's plain columns as one jsonb object per row (`features`)."""
    if not keys:
        return _constant_field("{}", "jsonb")

    def make(start: int, stop: int) -> pa.Array:
        entries = [(k, json_text(a.slice(start, stop - start), large)) for k, a in keys]
        return _text_field(_object(entries), JSONB_VERSION)

    return make


def _extra_field(
    pairs: list[tuple[str, pa.Array]], constant_extra: str | None, large: dict[float, str]
) -> Field:
    """The `extra` (json) column: the constant fields that have no column of their own
    (`constant_extra`, JSON text from `postgres._row`) and the per-row ones (`pairs`), one
    object printed as jsonb prints it (as the earlier `jsonb_build_object(...)::json`
    stored it); a key in both takes the row's value. NULL when there are none."""
    constants = {} if constant_extra is None else json.loads(constant_extra)
    if not pairs:
        return NULL if constant_extra is None else _constant_field(jsonb_text(constants), "json")
    columns = dict(pairs)
    keys = sorted({**constants, **columns}, key=lambda k: (len(k.encode()), k.encode()))
    fixed = {k: jsonb_text(v) for k, v in constants.items() if k not in columns}

    def make(start: int, stop: int) -> pa.Array:
        entries: list[tuple[str, pa.Array | str]] = [
            (k, json_text(columns[k].slice(start, stop - start), large, positional=True))
            if k in columns
            else (k, fixed[k])
            for k in keys
        ]
        return _text_field(_object(entries, ": ", ", "))

    return make


@dataclass
class Plan:
    """The COPY statement and the rows' fields."""

    copy: str
    rows: int
    fields: list[Field]
    floats: list[pa.Array]
    """The float columns written as JSON numbers."""
    large: dict[float, str]
    """PostgreSQL's text of their values from 1e16 up (`resolve`)."""

    def resolve(self, cur: Any) -> None:
        """Ask the server for its text of the large floats (usually there are none)."""
        import pyarrow.compute as pc

        values: set[float] = set()
        for array in self.floats:
            big = pc.and_(pc.is_finite(array), pc.greater_equal(pc.abs(array), 1e16))
            values.update(pc.unique(pc.filter(array, big)).to_pylist())
        if values - self.large.keys():
            cur.execute("SELECT x, x::text FROM unnest(%s::float8[]) AS x", (sorted(values),))
            self.large.update(cur.fetchall())

    def encode(self, start: int, stop: int) -> bytes:
        """Rows [start, stop) in COPY's binary format (without header and trailer)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        count = struct.pack(">h", len(self.fields))
        parts = [f if isinstance(f, bytes) else f(start, stop) for f in self.fields]
        if all(isinstance(p, bytes) for p in parts):
            return (count + b"".join(parts)) * (stop - start)  # type: ignore[arg-type]
        args = [pa.scalar(p, pa.binary()) if isinstance(p, bytes) else p for p in parts]
        rows = pc.binary_join_element_wise(count, *args, b"")
        _, offsets, data = rows.buffers()  # the rows are the data between their offsets
        bounds = np.frombuffer(offsets, np.int32, len(rows) + 1, rows.offset * 4)
        return data[int(bounds[0]) : int(bounds[-1])].to_pybytes()

    def chunks(self) -> Generator[bytes, None, None]:
        """The whole COPY data, `CHUNK_ROWS` rows a chunk; the next chunk is encoded in a
        thread (pyarrow releases the GIL) while the caller sends the one before."""
        yield HEADER
        spans = [(s, min(s + CHUNK_ROWS, self.rows)) for s in range(0, self.rows, CHUNK_ROWS)]
        if spans:
            with ThreadPoolExecutor(1, thread_name_prefix="pg-copy-encode") as pool:
                ahead = pool.submit(self.encode, *spans[0])
                for span in spans[1:]:
                    chunk = ahead.result()
                    ahead = pool.submit(self.encode, *span)
                    yield chunk
                yield ahead.result()
        yield TRAILER


def plan(
    batch: BatchRecords, table: str, columns: list[Column], constants_row: tuple[Any, ...]
) -> Plan | None:
    """How to write `batch` into `table` (None: a column type this path does not take).
    `constants_row` is `postgres._row` of the batch's constant fields."""
    import pyarrow.types as t

    data = batch.columns
    by_field: dict[str, pa.Array] = {}  # record field -> its plain column
    structs: dict[str, list[tuple[str, pa.Array]]] = {}  # field -> [(key, plain column)]
    for name in data.column_names:
        column = data.column(name)
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        if t.is_struct(array.type):
            keys = []
            for j in range(array.type.num_fields):
                # The child's values (a null struct row's too, as the earlier path read them).
                child = _plain(array.field(j)) if _sql_type(array.type.field(j).type) else None
                if child is None:
                    return None
                keys.append((array.type.field(j).name, child))
            structs[name] = keys
            continue
        plain = _plain(array) if _sql_type(array.type) else None
        if plain is None:
            return None
        by_field[name] = plain

    large: dict[float, str] = {}
    json_columns: list[pa.Array] = []
    fields: list[Field] = []
    for (field, _, kind, _), constant in zip(columns, constants_row, strict=False):
        if field in structs:
            if kind != "jsonb":
                return None
            fields.append(_struct_field(structs[field], large))
            json_columns += [a for _, a in structs[field]]
        elif field in by_field:
            if kind not in ("jsonb", _sql_type(by_field[field].type)):
                return None  # e.g. a per-row timestamp: the row-by-row path checks it
            fields.append(_column_field(by_field[field], kind, large))
            json_columns += [by_field[field]] if kind == "jsonb" else []
        else:
            fields.append(_constant_field(constant, kind))
    known = {field for field, *_ in columns}
    unknown = [f for f in batch.order if f not in known]
    if any(f in structs for f in unknown):
        return None
    pairs = [(f, by_field[f]) for f in unknown if f in by_field]
    fields.append(_extra_field(pairs, constants_row[len(columns)], large))
    json_columns += [a for _, a in pairs]
    floats = [a for a in json_columns if t.is_floating(a.type)]
    names = ", ".join(col for _, col, _, _ in columns)
    copy = f"COPY {table} ({names}, extra) FROM STDIN WITH (FORMAT binary)"
    return Plan(copy, len(data), fields, floats, large)


class _Reader:
    """The COPY data as a file for `cursor.copy_expert`: one chunk a read. An error while
    encoding is kept (psycopg2 reports it as its own error)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.error: Exception | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return next(self._chunks, b"")
        except Exception as exc:
            self.error = exc
            raise


def copy_batch(conn: Any, batch_plan: Plan) -> None:
    """Run `batch_plan` on `conn` inside its open transaction (the caller commits)."""
    with conn.cursor() as cur:
        # A million rows take longer than a request's statement budget.
        cur.execute("SET LOCAL statement_timeout = 0")
        batch_plan.resolve(cur)
        chunks = batch_plan.chunks()
        reader = _Reader(chunks)
        try:
            cur.copy_expert(batch_plan.copy, reader)
        except Exception:
            if reader.error is not None:  # not the server's: a bug here, raised as it is
                raise reader.error from None
            raise
        finally:
            chunks.close()  # after an error: waits for the encoding thread, drops the rest
