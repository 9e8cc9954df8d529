"""The hot path's shortcuts keep their guarantees: the SQLite file is checked at most every
`FILE_CHECK_S` (a deleted store still becomes a 503, a replaced one is reopened, a
readiness probe checks at once), stored values decode as protobuf decodes them, and the
prediction log's group commit shares one fsync among the requests of a loop iteration."""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

from components.predictions.files import AppendLog, read_records
from components.predictions.records import ReadStats
from components.serve.lookup import features as features_mod
from components.serve.lookup.direct_store import decoder
from components.serve.lookup.features import FILE_CHECK_S

pytestmark = pytest.mark.serving


def by_protobuf(raw: bytes | None) -> Any:
    """What `decoder()` returned before its shortcuts: protobuf all the way."""
    if not raw:
        return None
    v = Value()
    v.ParseFromString(raw)
    kind = v.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind in {"int32_val", "int64_val", "double_val", "float_val", "string_val", "bool_val"}:
        return getattr(v, kind)
    return feast_value_type_to_python_type(v)


def values() -> list[Value]:
    rng = random.Random(3)
    ints = [0, 1, 5, 127, 128, 255, 300, -1, -128, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
    ints += [rng.randint(-(2**40), 2**40) for _ in range(500)] + list(range(0, 200))
    doubles = [0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, math.inf, -math.inf, math.nan]
    doubles += [rng.uniform(-1e6, 1e6) for _ in range(500)] + [float(i) for i in range(50)]
    texts = ["", "a", "MORTGAGE", "é∂🙂", "x" * 125, "x" * 126, "x" * 127, "x" * 128, "y" * 300]
    texts += ["".join(rng.choice("ab é漢") for _ in range(rng.randint(0, 140))) for _ in range(300)]
    out = [Value(int64_val=i) for i in ints]
    out += [Value(int32_val=i) for i in ints if -(2**31) <= i < 2**31]
    out += [Value(double_val=d) for d in doubles] + [Value(float_val=d) for d in doubles]
    out += [Value(string_val=t) for t in texts]
    out += [Value(bool_val=True), Value(bool_val=False), Value(), Value(null_val=0)]
    out += [Value(bytes_val=b"\x00\xff"), Value(unix_timestamp_val=1_700_000_000)]
    out += [Value(int64_list_val={"val": [1, 2]}), Value(double_list_val={"val": [0.5]})]
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b and (not isinstance(a, float) or str(a) == str(b))


@pytest.mark.unit
def test_decoder_equals_protobuf() -> None:
    decode = decoder()
    raws = [v.SerializeToString() for v in values()]
    raws += [b"", None, b"\x12\x02\xff\xfe", b")" + struct.pack("<d", 2.5) + b" \x01"]
    for raw in raws:
        try:
            want: Any = by_protobuf(raw)
        except Exception as exc:
            want = type(exc)
        try:
            got: Any = decode(raw)  # type: ignore[arg-type]
        except Exception as exc:
            got = type(exc)
        assert same(got, want), (raw, got, want)


# ---- the SQLite file check ---------------------------------------------------------


def _predict(client: TestClient, entity: int) -> int:
    return client.post("/v1/predict", json={"entity_ids": [entity]}).status_code


def test_the_store_file_is_checked_once_per_interval(
    client: TestClient, built: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    entity = built["entities"][0]
    assert _predict(client, entity) == 200
    stats: list[str] = []
    real_stat = os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("online_store.db"):
            stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(features_mod.os, "stat", counting_stat)
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < FILE_CHECK_S * 4:
        assert _predict(client, entity) == 200
        n += 1
    elapsed = time.monotonic() - started
    assert n > len(stats) >= 2, (n, len(stats))  # checked, but not per request
    assert len(stats) <= elapsed / FILE_CHECK_S + 2
    stats.clear()
    assert client.get("/readyz").status_code == 200
    assert stats, "a readiness probe checks the file at once"


def test_a_replaced_store_file_is_reopened(client: TestClient, built: dict, ws: Path) -> None:
    features = client.app.state.service.features  # type: ignore[attr-defined]
    entity = built["entities"][1]
    assert _predict(client, entity) == 200
    before = features._inode
    db = ws / "feast" / "online_store.db"
    fresh = db.with_suffix(".fresh")
    shutil.copy2(db, fresh)
    os.replace(fresh, db)  # a new inode under the same name
    time.sleep(FILE_CHECK_S * 1.5)
    assert _predict(client, entity) == 200
    assert _predict(client, entity) == 200
    assert features._inode is not None and features._inode != before
    assert features.read_path == "sqlite"


def test_a_deleted_store_is_a_503_within_the_interval(
    client: TestClient, built: dict, ws: Path
) -> None:
    entity = built["entities"][2]
    assert _predict(client, entity) == 200
    db = ws / "feast" / "online_store.db"
    db.rename(db.with_suffix(".gone"))
    try:
        started = time.monotonic()
        while _predict(client, entity) == 200:
            assert time.monotonic() - started < FILE_CHECK_S + 1.0, "never noticed"
        assert time.monotonic() - started <= FILE_CHECK_S + 0.5
        assert _predict(client, entity) == 503
        assert not db.exists(), "the outage must not create an empty store"
    finally:
        db.with_suffix(".gone").rename(db)
    assert _predict(client, entity) == 200


# ---- the prediction log's group commit ----------------------------------------------


@pytest.fixture()
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors os.fsync is called on from now (each call still syncs)."""
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    return calls


@pytest.mark.unit
def test_requests_of_one_loop_iteration_share_one_fsync(tmp_path: Path, fsyncs: list[int]) -> None:
    log = AppendLog(tmp_path, "p")
    log.open()

    async def main() -> None:
        await log.append_async([{"warm": 1}])
        fsyncs.clear()
        # Written in the same iteration: committed together, one fsync.
        await asyncio.gather(*(log.append_async([{"i": i}]) for i in range(20)))

    asyncio.run(main())
    assert len(fsyncs) == 1
    log.close()
    records = list(read_records(tmp_path, "p", ReadStats()))
    assert sorted(r["i"] for r in records if "i" in r) == list(range(20))


@pytest.mark.unit
def test_a_request_written_before_close_is_acknowledged_by_the_close_fsync(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    log = AppendLog(tmp_path, "p")
    log.open()

    async def main() -> None:
        await log.append_async([{"warm": 1}])
        pending = asyncio.ensure_future(log.append_async([{"late": 1}]))
        await asyncio.sleep(0)  # written, its commit not run yet
        log.close()  # fsyncs every line written, the late one included
        fsyncs.clear()
        await pending  # acknowledged: its line is on disk; no fsync of a closed file
        assert fsyncs == []

    asyncio.run(main())
    assert [r for r in read_records(tmp_path, "p", ReadStats()) if "late" in r] == [{"late": 1}]
