"""Entity keys written without protos (`direct_store.KeyEncoder`) are byte for byte the
ones Feast's own `serialize_entity_key` / `_redis_key` write, for every key type and
serialization version the installed Feast takes; anything else goes through Feast."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pytest
from feast.value_type import ValueType

from components.serve.lookup import direct_store
from components.serve.lookup.direct_store import KeyEncoder, Plan, redis_keys, sqlite_keys

pytestmark = pytest.mark.unit

VERSIONS = (1, 2, 3)


def plan(kind: ValueType, version: int, key: str = "customer_id") -> Plan:
    return Plan("credit_risk", key, kind, version, (), 0)


def int_ids(bits: int) -> list[int]:
    rng = random.Random(bits)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    edges = [0, 1, -1, 127, 128, 255, 256, 65535, lo, hi, lo + 1, hi - 1]
    return edges + [rng.randint(lo, hi) for _ in range(3000)] + list(range(-50, 2000))


def str_ids() -> list[str]:
    rng = random.Random(7)
    alphabet = "abcXYZ019-_ éü∂漢🙂\x00\n\"\\'"
    made = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    return ["", "0", "customer-1", "x" * 5000, *made, *map(str, range(1000))]


def feast(slow: Any, p: Plan, ids: list[Any]) -> list[bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # versions < 3 warn on every call
        return list(slow(p, ids))


CASES = [
    (ValueType.INT64, int_ids(64)),
    (ValueType.INT32, int_ids(32)),
    (ValueType.STRING, str_ids()),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("kind", "ids"), CASES, ids=["int64", "int32", "string"])
@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_keys_equal_feasts(kind: ValueType, ids: list[Any], version: int, store: str) -> None:
    p = plan(kind, version)
    if kind == ValueType.INT64 and version <= 1:
        ids = [i for i in ids if -(2**31) <= i < 2**31]  # Feast packs "<l" (4 bytes) there
    slow, suffix = (sqlite_keys, b"") if store == "sqlite" else (redis_keys, b"credit_risk")
    enc = KeyEncoder(p, slow, suffix)
    assert enc._one is not None, "the direct encoder must serve these keys"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert enc(ids) == feast(slow, p, ids)
        assert [enc([i])[0] for i in ids[:200]] == feast(slow, p, ids[:200])


def test_non_ascii_key_name_and_every_id_type_mismatch_go_through_feast() -> None:
    p = plan(ValueType.INT64, 3, key="clïent id")
    enc = KeyEncoder(p, sqlite_keys)
    assert enc([1, 2]) == feast(sqlite_keys, p, [1, 2])
    calls = []

    def spy(plan_: Plan, ids: Any) -> list[bytes]:
        calls.append(list(ids))
        return sqlite_keys(plan_, ids)

    enc = KeyEncoder(p, spy)
    calls.clear()
    enc([1, 2])
    assert calls == [], "plain ints are encoded directly"
    for odd in ([True], [1, "2"], [1.0], [None]):
        calls.clear()
        assert outcome(enc, odd) == outcome(lambda ids: sqlite_keys(p, ids), odd)
        assert calls == [odd], "other types are Feast's to accept or refuse"


def outcome(fn: Any, ids: list[Any]) -> Any:
    """fn(ids), or the type of what it raised."""
    try:
        return fn(ids)
    except Exception as exc:
        return type(exc)


def test_out_of_range_ids_fail_as_feast_fails() -> None:
    p = plan(ValueType.INT64, 3)
    enc = KeyEncoder(p, sqlite_keys)
    for bad in (2**63, -(2**63) - 1):
        theirs = outcome(lambda ids: sqlite_keys(p, ids), [bad])
        assert isinstance(theirs, type) and outcome(enc, [bad]) is theirs


def test_an_encoder_that_disagrees_with_feast_is_not_used(monkeypatch: Any) -> None:
    real = direct_store._direct_encoder

    def off_by_one(p: Plan, suffix: bytes) -> Any:
        kind, one = real(p, suffix)
        return kind, lambda v: one(v) + b"!"

    monkeypatch.setattr(direct_store, "_direct_encoder", off_by_one)
    enc = KeyEncoder(plan(ValueType.INT64, 3), sqlite_keys)
    assert enc._one is None
    assert enc([5]) == sqlite_keys(plan(ValueType.INT64, 3), [5])


def test_other_key_types_use_feast() -> None:
    p = plan(ValueType.BYTES, 3)
    enc = KeyEncoder(p, sqlite_keys)
    assert enc._one is None
    assert enc([b"ab"]) == sqlite_keys(p, [b"ab"])
