"""The column-wise online-store rows equal Feast's conversion plus its SQLite row format,
byte for byte, on every type and edge the fast path takes (and on those it leaves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from feast import Entity, FeatureView, Field, FileSource
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.Value_pb2 import Value
from feast.types import Bool, Float64, Int64, String, UnixTimestamp
from feast.utils import _convert_arrow_to_proto
from feast.value_type import ValueType

from components.features.arrow_rows import _varint_values, batch_rows, column_values, store_rows
from components.features.sqlite_writer import micros, rows_from_protos, side_rows

pytestmark = pytest.mark.unit

N = 12
T0 = datetime(2025, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC)

FEATURES = {
    # name: (Feast type, Arrow values)
    "dbl": (
        Float64,
        pa.array(
            [
                1.5,
                None,
                float("nan"),
                -0.0,
                0.0,
                float("inf"),
                -float("inf"),
                1e300,
                5e-324,
                0.1,
                -2.25,
                3.0,
            ],
            pa.float64(),
        ),
    ),
    "dbl_from_int": (Float64, pa.array([0, 1, -1, 2**53, -(2**53), 7, 8, 9, 10, 11, 12, 13])),
    "i64": (
        Int64,
        pa.array([0, 1, -1, 127, 128, 2**14 - 1, 2**14, 2**63 - 1, -(2**63), 300, -300, 2**35]),
    ),
    "i64_nulls": (Int64, pa.array([None, 0, 5, -5, None, 2**40, 1, 2, 3, 4, 5, 6])),
    "i32": (Int64, pa.array([1, -1, 0, 2**31 - 1, -(2**31), 5, 6, 7, 8, 9, 10, 11], pa.int32())),
    "s": (
        String,
        pa.array(["a", "", None, "é€😀", "x" * 127, "y" * 128, "z" * 20000] + ["k"] * 5),
    ),
    "b": (Bool, pa.array([True, False] * 6)),
    "b_nulls": (Bool, pa.array([True, None, False] + [True] * 9)),
    # Left to Feast's own conversion (no fast path for timestamps): the same bytes.
    "when": (
        UnixTimestamp,
        pa.array([T0 + timedelta(days=i) for i in range(N)], pa.timestamp("us", tz="UTC")),
    ),
}


def _view(key: str, key_type: ValueType, key_dtype: object, created: bool) -> FeatureView:
    source = FileSource(
        path="unused.parquet",
        timestamp_field="event_ts",
        created_timestamp_column="created_ts" if created else "",
    )
    entity = Entity(name="who", join_keys=[key], value_type=key_type)
    schema = [Field(name=key, dtype=key_dtype)]  # type: ignore[arg-type]
    schema += [Field(name=n, dtype=t) for n, (t, _) in FEATURES.items()]  # type: ignore[arg-type]
    return FeatureView(name="edge", entities=[entity], schema=schema, source=source)


def _batch(key: str, keys: pa.Array, event_unit: str = "us") -> pa.RecordBatch:
    events = pa.array(
        [T0 + timedelta(seconds=37 * i, microseconds=999 * i) for i in range(N)],
        pa.timestamp("us", tz="UTC"),
    )
    if event_unit == "string":  # as Feast's local engine hands them over
        events = pa.array([t.strftime("%Y-%m-%d %H:%M:%S.%f000Z") for t in events.to_pylist()])
    else:
        events = events.cast(pa.timestamp(event_unit, tz="UTC"), safe=False)
    columns = {
        key: keys,
        "event_ts": events,
        "created_ts": pa.array([T0] * N, pa.timestamp("ns", tz="UTC")),
        **{n: values for n, (_, values) in FEATURES.items()},
    }
    return pa.RecordBatch.from_pydict(columns)


def _feasts_rows(batch: pa.RecordBatch, view: FeatureView, join_keys: dict) -> list:
    return rows_from_protos(_convert_arrow_to_proto(batch, view, join_keys), 3)


@pytest.mark.parametrize("created", [True, False])
@pytest.mark.parametrize("event_unit", ["s", "ms", "us", "ns", "string"])
def test_int_keyed_rows_equal_feasts(created: bool, event_unit: str) -> None:
    keys = pa.array([3, -3, 0, 2**62, -(2**63), 2**63 - 1, 10, 11, 12, 13, 14, 15])
    view = _view("customer_id", ValueType.INT64, Int64, created)
    join_keys = {"customer_id": ValueType.INT64}
    batch = _batch("customer_id", keys, event_unit)

    ours = store_rows(batch, view, join_keys, 3)

    assert ours is not None
    assert len(ours) == N * len(FEATURES)
    assert ours == sorted(ours, key=lambda r: (r[0], r[1]))  # the writer's key order
    assert sorted(ours, key=repr) == sorted(_feasts_rows(batch, view, join_keys), key=repr)


@pytest.mark.parametrize("event_unit", ["s", "ms", "us", "ns", "string"])
def test_side_rows_equal_those_of_feasts_conversion(event_unit: str) -> None:
    """The side table's rows built column by column (times to the microsecond, digests)
    equal those the batched writer makes from Feast's converted rows, one per entity:
    of a key twice in the batch, the later row's."""
    keys = pa.array([3, -3, 0, 2**62, 3, 7, 10, 11, 12, 13, 14, 15])
    view = _view("customer_id", ValueType.INT64, Int64, created=False)
    join_keys = {"customer_id": ValueType.INT64}
    batch = _batch("customer_id", keys, event_unit)
    if event_unit == "ns":  # nanoseconds Feast's datetime drops
        ns = pa.array([t.value + 789 for t in batch.column("event_ts").to_pandas()],
                      pa.int64()).cast(pa.timestamp("ns", tz="UTC"))  # fmt: skip
        batch = batch.set_column(batch.schema.get_field_index("event_ts"), "event_ts", ns)

    built = batch_rows(batch, view, join_keys, 3)
    assert built is not None
    ours = built.side("p_edge")

    converted = _convert_arrow_to_proto(batch, view, join_keys)
    rows = sorted(rows_from_protos(converted, 3), key=lambda r: (r[0], r[1]))
    times = {serialize_entity_key(k, entity_key_serialization_version=3): micros(ts)
             for k, _, ts, _ in converted}  # fmt: skip
    assert sorted(ours) == side_rows("p_edge", rows, times)
    assert len(ours) == N - 1
    if event_unit in ("us", "ns", "string"):
        assert any(us % 1_000_000 for _, _, us, _ in ours)


def test_string_keyed_rows_equal_feasts() -> None:
    keys = pa.array(["c-1", "", "é", "x" * 300] + [f"k{i}" for i in range(N - 4)])
    view = _view("account", ValueType.STRING, String, created=False)
    join_keys = {"account": ValueType.STRING}
    batch = _batch("account", keys)

    ours = store_rows(batch, view, join_keys, 3)

    assert ours is not None
    assert sorted(ours, key=repr) == sorted(_feasts_rows(batch, view, join_keys), key=repr)


def test_keys_the_fast_path_cannot_serialize_are_left_to_feast() -> None:
    view = _view("customer_id", ValueType.INT64, Int64, created=False)
    join_keys = {"customer_id": ValueType.INT64}
    with_null_key = _batch("customer_id", pa.array([None, *list(range(N - 1))], pa.int64()))
    assert store_rows(with_null_key, view, join_keys, 3) is None
    two_keys = {"customer_id": ValueType.INT64, "region": ValueType.STRING}
    assert store_rows(_batch("customer_id", pa.array(range(N))), view, two_keys, 3) is None
    assert store_rows(_batch("customer_id", pa.array(range(N))), view, join_keys, 2) is None


def test_a_column_of_another_arrow_type_takes_feasts_conversion() -> None:
    # Strings declared DOUBLE are Feast's to convert (or refuse): the same outcome here.
    values = pa.array(["1.5", "2"])
    with pytest.raises(AssertionError):
        column_values(values, ValueType.DOUBLE)
    decimals = pa.array([1, None, 3], pa.decimal128(10, 2))
    ours = column_values(decimals, ValueType.STRING)
    assert ours == ([b"\x12\x041.00", b"", b"\x12\x043.00"], ["1.00", None, "3.00"])


def test_varints_equal_protobufs_encoding() -> None:
    rng = np.random.default_rng(7)
    edges = [0, 1, -1, 2**63 - 1, -(2**63)]
    edges += [s * (2 ** (7 * k) + d) for k in range(1, 10) for d in (-1, 0, 1) for s in (1, -1)]
    ints = np.array(
        [e for e in edges if -(2**63) <= e < 2**63]
        + rng.integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64).tolist(),
        dtype=np.int64,
    )
    present = np.ones(len(ints), bool)
    present[::7] = False

    encoded = _varint_values(0x20, ints, present)

    for value, ok, got in zip(ints.tolist(), present.tolist(), encoded, strict=True):
        assert got == (Value(int64_val=value).SerializeToString() if ok else b"")


def test_outside_utc_event_times_are_stored_as_feasts_store_stores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Feast's SQLite store reads the naive UTC time in the machine's zone; the fast
    # epoch arithmetic holds only in UTC, so elsewhere the rows take Feast's own path.
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        view = _view("customer_id", ValueType.INT64, Int64, created=True)
        join_keys = {"customer_id": ValueType.INT64}
        batch = _batch("customer_id", pa.array(range(N)))
        ours = store_rows(batch, view, join_keys, 3)
        assert ours is not None
        assert ours[0][4] != int(batch.column("event_ts")[0].value) // 10**6
        assert sorted(ours, key=repr) == sorted(_feasts_rows(batch, view, join_keys), key=repr)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
