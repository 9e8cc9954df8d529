"""Rows of Feast's SQLite online store straight from an Arrow batch, column by column.

Why: Feast's materialization turns every value of a batch into a `ValueProto` (one
Python call chain per value, `_convert_arrow_to_proto`), then its SQLite writer
serializes each one again. At 1M label rows that is 3.25M values and most of what is
left of the `materialize` step (docs/benchmarks.md). Here each *column* is converted at
once: the bytes are the protobuf encoding of a one-field `Value` message (a tag, then
the field: 8 little-endian bytes for a double, a varint for an integer or bool, a
length-prefixed UTF-8 string), built with NumPy for the whole column.

Exactness: the rows equal, byte for byte, what Feast's conversion followed by
`BatchedSqliteOnlineStore.online_write_batch` writes (tests/unit/test_arrow_rows.py
compares both on every supported type with nulls, NaN, signed zero, extremes and
Unicode). Only the kinds checked there take this path: a single join key of type
INT64 or STRING, feature columns DOUBLE, INT64, STRING or BOOL from the matching Arrow
types, non-negative event times read in a UTC local zone. Any other column is converted
by Feast's own `python_values_to_proto_values`, so a type this module does not know
is still written as Feast writes it; a view this module cannot key returns None and
the caller hands the batch to Feast whole.

`BatchRows.side` gives the batch's rows of the stream consumer's side table of precise
times (components/features/sqlite_writer.py), column-wise too: each entity's event time
in microseconds and the digest of its rows. The writer asks for them only where that
table exists.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key_prefix
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.type_map import python_values_to_proto_values
from feast.utils import _coerce_datetime
from feast.value_type import ValueType

from components.features.sqlite_writer import (
    DIGEST_HEAD,
    SideRow,
    StoreRow,
    _epoch,
    digest,
    micros,
    name_part,
)

# Field tags of Feast's `Value` message (field number << 3 | wire type).
_TAG_INT64 = 0x20  # int64_val = 4, varint
_TAG_DOUBLE = 0x29  # double_val = 5, 64-bit
_TAG_STRING = 0x12  # string_val = 2, length-delimited
_TAG_BOOL = 0x38  # bool_val = 7, varint
_EXACT_DOUBLE_INT = 2**53  # ints Feast routes through float64 stay exact below this


def store_rows(
    batch: pa.RecordBatch, view: FeatureView, join_keys: dict[str, ValueType], version: int
) -> list[StoreRow] | None:
    """The batch's rows for `BatchedSqliteOnlineStore.write_rows`, or None when its key,
    or its event times, are of a kind only Feast's conversion handles."""
    built = batch_rows(batch, view, join_keys, version)
    return None if built is None else built.rows


@dataclass
class BatchRows:
    """A batch's rows, sorted by primary key, and what its side rows are made of."""

    rows: list[StoreRow]
    batch: pa.RecordBatch
    view: FeatureView
    keys: list[bytes]  # per batch row
    events: Sequence[int]  # per batch row, epoch seconds as stored
    columns: dict[str, list[bytes]]  # feature name -> each batch row's value

    def side(self, table: str) -> list[SideRow]:
        """The batch's entities' side rows (of a key twice in the batch, the later),
        column by column: the digest's heads for all rows at once with NumPy, then one
        hash per entity over its names, heads and values (sqlite_writer.rows_digest)."""
        assert self.view.batch_source is not None
        names = sorted(self.columns)
        n, width = len(self.keys), DIGEST_HEAD.size * len(names)
        heads = np.empty((n, len(names), 2), dtype="<i8")
        for j, name in enumerate(names):
            heads[:, j, 0] = np.fromiter(map(len, self.columns[name]), np.int64, n)
        heads[:, :, 1] = np.asarray(self.events, dtype=np.int64)[:, None]
        raw = heads.tobytes()
        prefix = name_part(names)
        times = _micros(self.batch.column(self.view.batch_source.timestamp_field))
        values = zip(*(self.columns[name] for name in names), strict=True)
        side: dict[bytes, SideRow] = {}
        for i, (key, us, row) in enumerate(zip(self.keys, times, values, strict=True)):
            side[key] = (table, key, us, digest(prefix, raw[i * width : (i + 1) * width], row))
        return list(side.values())


def batch_rows(
    batch: pa.RecordBatch, view: FeatureView, join_keys: dict[str, ValueType], version: int
) -> BatchRows | None:
    """`store_rows`, with what the side rows need kept (None as there)."""
    if len(join_keys) != 1 or version < 3 or view.batch_source is None:
        return None
    ((key_name, key_type),) = join_keys.items()
    keys = _entity_keys(batch.column(key_name), key_name, key_type)
    source = view.batch_source
    events = _epochs(batch.column(source.timestamp_field))
    if keys is None or events is None:
        return None
    created: Sequence[int | None] = [None] * batch.num_rows
    if source.created_timestamp_column:
        created_epochs = _epochs(batch.column(source.created_timestamp_column))
        if created_epochs is None:
            return None
        created = created_epochs
    # Rows in primary-key order (entity key, feature name), as the writer sorts them:
    # sorting the entities here costs a fraction of sorting every row there.
    names = sorted(f.name for f in view.features)
    columns = {
        f.name: column_values(batch.column(f.name), f.dtype.to_value_type()) for f in view.features
    }
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rows: list[StoreRow] = [
        (keys[i], name, columns[name][0][i], columns[name][1][i], events[i], created[i])
        for i in order
        for name in names
    ]
    values = {name: column[0] for name, column in columns.items()}
    return BatchRows(rows, batch, view, keys, events, values)


def column_values(column: pa.Array, value_type: ValueType) -> tuple[list[bytes], list[str | None]]:
    """Each value's serialized `Value` and its `value_text`, as Feast's SQLite store
    writes them."""
    fast = _fast_values(column, value_type)
    if fast is not None:
        return fast
    protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)
    return (
        [p.SerializeToString() for p in protos],
        [extract_text_and_num(p, False)[0] for p in protos],
    )


def _fast_values(
    column: pa.Array, value_type: ValueType
) -> tuple[list[bytes], list[str | None]] | None:
    kind = column.type
    nulls = column.null_count > 0
    if value_type == ValueType.DOUBLE and (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        if pa.types.is_integer(kind) and _beyond_exact_double(column):
            return None
        floats = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        present = ~np.isnan(floats)  # Feast writes NaN as it writes null: an empty Value
        fixed = np.empty((len(floats), 9), dtype=np.uint8)
        fixed[:, 0] = _TAG_DOUBLE
        fixed[:, 1:] = floats.astype("<f8").view(np.uint8).reshape(-1, 8)
        lengths = np.where(present, 9, 0)
        texts = [
            str(v) if ok else None for v, ok in zip(floats.tolist(), present.tolist(), strict=True)
        ]
        return _slices(fixed.tobytes(), 9, lengths), texts
    if value_type == ValueType.INT64 and pa.types.is_integer(kind):
        if kind == pa.uint64() or (nulls and _beyond_exact_double(column)):
            return None  # Feast reads a column with nulls as float64 first
        present = column.is_valid().to_numpy(zero_copy_only=False)
        ints = column.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        values = _varint_values(_TAG_INT64, ints, present)
        texts = [
            str(v) if ok else None for v, ok in zip(ints.tolist(), present.tolist(), strict=True)
        ]
        return values, texts
    if value_type == ValueType.BOOL and pa.types.is_boolean(kind):
        values_py = column.to_pylist()
        flags = {True: bytes([_TAG_BOOL, 1]), False: bytes([_TAG_BOOL, 0]), None: b""}
        return [flags[v] for v in values_py], [None if v is None else str(v) for v in values_py]
    if value_type == ValueType.STRING and (
        pa.types.is_string(kind) or pa.types.is_large_string(kind)
    ):
        strings = column.to_pylist()
        lengths = pc.binary_length(column).fill_null(0).to_numpy(zero_copy_only=False)
        heads = _varint_values(_TAG_STRING, lengths.astype(np.int64), np.ones(len(strings), bool))
        values = [b"" if s is None else h + s.encode() for h, s in zip(heads, strings, strict=True)]
        return values, strings
    return None


def _beyond_exact_double(column: pa.Array) -> bool:
    if column.type == pa.uint64():
        return True
    bounds = pc.min_max(column.cast(pa.int64()))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return low is not None and (low < -_EXACT_DOUBLE_INT or high > _EXACT_DOUBLE_INT)


def _varint_values(tag: int, ints: np.ndarray, present: np.ndarray) -> list[bytes]:
    """`tag` then each integer as a protobuf varint (two's complement, 64-bit: a negative
    one takes ten bytes); an absent value is empty."""
    unsigned = ints.astype(np.int64).view(np.uint64)
    shifts = np.arange(10, dtype=np.uint64) * np.uint64(7)
    groups = ((unsigned[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    bits = np.zeros(len(unsigned), dtype=np.int64)
    nonzero = unsigned != 0
    bits[nonzero] = np.floor(np.log2(unsigned[nonzero].astype(np.float64))).astype(np.int64) + 1
    # log2 in float64 can round up just below a power of two: check against the value.
    too_high = nonzero & (bits > 1) & ((unsigned >> (bits - 1).astype(np.uint64)) == 0)
    bits[too_high] -= 1
    width = np.maximum(1, (bits + 6) // 7)
    more = np.arange(10)[None, :] < (width - 1)[:, None]
    groups[more] |= 0x80
    encoded = np.zeros((len(unsigned), 11), dtype=np.uint8)
    encoded[:, 0] = tag
    encoded[:, 1:] = groups
    return _slices(encoded.tobytes(), 11, np.where(present, width + 1, 0))


def _slices(buffer: bytes, stride: int, lengths: np.ndarray) -> list[bytes]:
    starts = range(0, len(buffer), stride)
    return [buffer[s : s + n] for s, n in zip(starts, lengths.tolist(), strict=True)]


def _entity_keys(column: pa.Array, name: str, value_type: ValueType) -> list[bytes] | None:
    """Feast's `serialize_entity_key` (version 3) of a one-key entity, for each row: the
    key-name prefix (Feast's own helper), then the value's type, length and bytes."""
    if column.null_count:
        return None
    prefix = serialize_entity_key_prefix([name], 3)
    if value_type == ValueType.INT64 and pa.types.is_integer(column.type):
        if column.type == pa.uint64():
            return None
        head = prefix + np.array([ValueType.INT64.value, 8], dtype="<u4").tobytes()
        ints = column.cast(pa.int64()).to_numpy(zero_copy_only=False).astype("<i8")
        raw = ints.tobytes()
        return [head + raw[i : i + 8] for i in range(0, len(raw), 8)]
    if value_type == ValueType.STRING and (
        pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    ):
        head = prefix + np.array([ValueType.STRING.value], dtype="<u4").tobytes()
        out = []
        for text in column.to_pylist():
            encoded = text.encode()
            out.append(head + len(encoded).to_bytes(4, "little") + encoded)
        return out
    return None


def _utc_local_zone() -> bool:
    # Feast's SQLite store stores `int(naive_utc.timestamp())`, which reads the naive
    # time in the machine's zone; only a UTC zone makes that the plain epoch.
    return time.timezone == 0 and (not time.daylight or time.altzone == 0)


def _epochs(column: pa.Array) -> list[int] | None:
    """Each time as Feast's SQLite store stores it (epoch seconds), parsed as Feast parses
    it (`pd.to_datetime` of the column: Feast's engine hands over strings as well as
    timestamps); None when a time is missing (Feast's conversion fails on it, and should
    say so itself)."""
    if column.null_count:
        return None
    times = pd.to_datetime(column.to_numpy(zero_copy_only=False))
    if isinstance(times, pd.DatetimeIndex) and _utc_local_zone():
        # Naive times are UTC to Feast; `int(dt.timestamp())` truncates, which is the
        # floor for times after 1970 (earlier ones take the per-value path below).
        utc = times.tz_convert(None) if times.tz is not None else times
        seconds = utc.values.astype("datetime64[s]").astype(np.int64)
        if not len(seconds) or seconds.min() >= 0:
            return seconds.tolist()  # type: ignore[no-any-return]
    return [_epoch(_coerce_datetime(t)) for t in times]  # type: ignore[misc]


def _micros(column: pa.Array) -> list[int]:
    """Each time in microseconds since the epoch, as Feast's conversion makes it (the
    column through `pd.to_datetime`, then a Python datetime: nanoseconds dropped)."""
    times = pd.to_datetime(column.to_numpy(zero_copy_only=False))
    if isinstance(times, pd.DatetimeIndex):
        utc = times.tz_convert(None) if times.tz is not None else times
        ns = utc.values.astype("datetime64[ns]").astype(np.int64)
        if not len(ns) or ns.min() >= 0:
            return (ns // 1000).tolist()  # type: ignore[no-any-return]
    return [micros(_coerce_datetime(t)) for t in times]  # type: ignore[misc]
