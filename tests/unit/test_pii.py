"""Personal data (config `pii` tags): keyed pseudonyms, dropped columns, the key's checks
and fingerprint, and the sentences for every misuse (components/common/pii.py)."""

from __future__ import annotations

import logging
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from components.common.config import default_config_path, parse_config
from components.common.errors import SeamlessError
from components.common.pii import (
    KEY_ENV,
    MIN_KEY_BYTES,
    WITHHELD,
    Pseudonymizer,
    check_distinct,
)
from components.common.tables import read_dataset
from components.ingest.stage import ingest_tables
from components.validate.builtin import declared_columns
from tests.helpers.configs import assert_one_sentence

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = "k" * 16 + "0123456789abcdef0123"  # 36 bytes
OTHER_KEY = "z" * 40

PEOPLE = """customer_id,event_timestamp,age,email,tax_id
900000000000000001,2024-01-01,30,ann@example.invalid,TX-0001
900000000000000002,2024-01-01,41,bob@example.invalid,
900000000000000003,2024-01-02,,cy@example.invalid,TX-0003
"""
LABELS = """customer_id,event_timestamp,label
900000000000000001,2024-02-01,1
900000000000000002,2024-02-01,0
900000000000000003,2024-02-02,0
"""
CONFIG = """
name: pii_test
tables:
  people:
    source: {kind: file, uri: people.csv}
    entity_column: customer_id
    timestamp_column: event_timestamp
    columns:
      customer_id: {type: int, pii: pseudonymize}
      event_timestamp: timestamp
      age: int
      email: {type: string, pii: drop}
      tax_id: {type: string, pii: pseudonymize}
  labels:
    source: {kind: file, uri: labels.csv}
    entity_column: customer_id
    timestamp_column: event_timestamp
    columns:
      customer_id: {type: int, pii: pseudonymize}
      event_timestamp: timestamp
      label: int
labels: {table: labels, label_column: label}
features:
  service: svc
  views: [{name: people, table: people, features: [age]}]
model: {name: m}
"""


def _config(text: str = CONFIG) -> Any:
    return parse_config(text, origin="pii.yaml")


def _raw() -> dict[str, Any]:
    return yaml.safe_load(CONFIG)


def _refused(raw: dict[str, Any]) -> str:
    with pytest.raises(SeamlessError) as info:
        parse_config(yaml.safe_dump(raw), origin="pii.yaml")
    message = str(info.value)
    assert_one_sentence(message, "pii.yaml")
    return message


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    (tmp_path / "people.csv").write_text(PEOPLE)
    (tmp_path / "labels.csv").write_text(LABELS)
    return tmp_path


# ---------------------------------------------------------------- the pseudonyms


def test_pseudonyms_are_deterministic_typed_and_keyed() -> None:
    a, b = Pseudonymizer(KEY.encode()), Pseudonymizer(KEY.encode())
    other = Pseudonymizer(OTHER_KEY.encode())
    ids = [*range(100_000, 101_000), 2**63 - 1, -5, 0]
    first = [a.of_int(v) for v in ids]
    assert first == [b.of_int(v) for v in ids]  # another instance, same key: same
    assert all(isinstance(p, int) and 0 <= p < 2**63 for p in first)
    assert len(set(first)) == len(ids)
    assert not set(first) & set(ids)
    assert all(x != y for x, y in zip(first, [other.of_int(v) for v in ids], strict=True))
    text = a.of_text("ann@example.invalid")
    assert text == b.of_text("ann@example.invalid") != other.of_text("ann@example.invalid")
    assert text.startswith("ps_") and len(text) == 35 and int(text[3:], 16) >= 0
    # The int's text is what is keyed: a feedback's "123" is the id 123.
    assert a.value("123", "int") == a.of_int(123) == a.value(123, "int")
    assert a.value(None, "int") is None and a.value(None, "string") is None
    # Spark pickles it to its workers; the copy makes the same pseudonyms.
    assert pickle.loads(pickle.dumps(a)).of_int(7) == a.of_int(7)


def test_series_keep_nulls_and_dtype_and_count_distinct_values() -> None:
    p = Pseudonymizer(KEY.encode())
    ints = pd.Series([5, None, 5, 2**62], dtype="Int64")
    out, before, after = p.series(ints, "int")
    assert str(out.dtype) == "Int64" and out.isna().tolist() == [False, True, False, False]
    assert out[0] == out[2] == p.of_int(5) and out[3] == p.of_int(2**62)
    assert (before, after) == (2, 2)
    text = pd.Series(["x", None, "y", "x"], dtype=object)
    out, before, after = p.series(text, "string")
    assert out.dtype == object and out[1] is None and out[0] == out[3] == p.of_text("x")
    assert (before, after) == (2, 2)


def test_fingerprint_tells_keys_apart_and_reveals_nothing() -> None:
    for key in (KEY, OTHER_KEY, "a" * MIN_KEY_BYTES):
        p = Pseudonymizer(key.encode())
        assert len(p.fingerprint) == 8 and int(p.fingerprint, 16) >= 0
        assert p.fingerprint != key and p.fingerprint not in key and key not in p.fingerprint
        assert key not in repr(p) and p.fingerprint in repr(p)
    assert Pseudonymizer(KEY.encode()).fingerprint != Pseudonymizer(OTHER_KEY.encode()).fingerprint
    assert Pseudonymizer(KEY.encode()).fingerprint == Pseudonymizer(KEY.encode()).fingerprint


def test_two_values_sharing_a_pseudonym_fail_the_table() -> None:
    with pytest.raises(SeamlessError) as info:
        check_distinct("Table 'people' (file people.csv)", "customer_id", 3, 2)
    assert_one_sentence(str(info.value), "Table 'people'", "'customer_id'", "3 distinct values")
    check_distinct("Table 'people'", "customer_id", 3, 3)  # as many out as in: fine


# ---------------------------------------------------------------- ingest


def test_ingest_pseudonymizes_drops_and_records(
    data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(KEY_ENV, f"  {KEY}\n")  # a Secret file's newline is not key
    config = _config()
    caplog.set_level(logging.INFO)
    manifest = ingest_tables(config, data, data / "out", T0)
    tables = read_dataset(data / "out")
    people, labels = tables["people"], tables["labels"]
    p = Pseudonymizer(KEY.encode())
    raw_ids = [900000000000000001, 900000000000000002, 900000000000000003]
    assert people["customer_id"].tolist() == [p.of_int(v) for v in raw_ids]
    assert str(people["customer_id"].dtype) == "Int64"
    # Joins still work: the same id has the same pseudonym in every table.
    assert set(labels["customer_id"]) == set(people["customer_id"])
    assert people["tax_id"].tolist() == [p.of_text("TX-0001"), None, p.of_text("TX-0003")]
    assert "email" not in people.columns
    assert people["age"].tolist()[:2] == [30, 41]  # untagged columns unchanged
    entry = manifest["tables"]["people"]
    assert "email" not in entry["columns"]
    assert entry["pii"] == {
        "method": "hmac-sha256",
        "key_fingerprint": p.fingerprint,
        "pseudonymized": {
            "customer_id": {"type": "int", "values": 3, "distinct": 3},
            "tax_id": {"type": "string", "values": 2, "distinct": 2},
        },
        "dropped": ["email"],
    }
    assert manifest["pii"] == {
        "method": "hmac-sha256",
        "key_fingerprint": p.fingerprint,
        "pseudonymized": {"labels": ["customer_id"], "people": ["customer_id", "tax_id"]},
        "dropped": {"people": ["email"]},
    }
    assert "email" not in declared_columns(config, "people")  # validate expects it gone
    stored = (data / "out" / "manifest.json").read_text() + caplog.text
    for secret in (KEY, "ann@example", "TX-0001", "900000000000000001"):
        assert secret not in stored
    assert f"with key {p.fingerprint}" in caplog.text


def test_another_key_gives_another_snapshot(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    first = ingest_tables(_config(), data, data / "a", T0)
    monkeypatch.setenv(KEY_ENV, OTHER_KEY)
    second = ingest_tables(_config(), data, data / "b", T0)
    assert first["pii"]["key_fingerprint"] != second["pii"]["key_fingerprint"]
    assert first["source_sha256"] != second["source_sha256"]
    ids = [set(read_dataset(data / d)["people"]["customer_id"]) for d in ("a", "b")]
    assert not ids[0] & ids[1]


def test_untagged_config_is_unchanged(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    plain = CONFIG.replace("{type: int, pii: pseudonymize}", "int")
    plain = plain.replace("{type: string, pii: drop}", "string")
    plain = plain.replace("{type: string, pii: pseudonymize}", "string")
    manifest = ingest_tables(_config(plain), data, data / "out", T0)
    assert "pii" not in manifest and "pii" not in manifest["tables"]["people"]
    people = read_dataset(data / "out")["people"]
    assert people["customer_id"].iloc[0] == 900000000000000001
    assert people["email"].iloc[0] == "ann@example.invalid"


@pytest.mark.parametrize("value", [None, "", "   ", "short-key"])
def test_missing_or_short_key_is_one_sentence_and_nothing_is_written(
    data: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(SeamlessError) as info:
        ingest_tables(_config(), data, data / "out", T0)
    message = str(info.value)
    assert_one_sentence(message, "Table 'people'", "'customer_id'", KEY_ENV)
    assert ("is not set" if not (value or "").strip() else "shorter than 32 bytes") in message
    if value and value.strip():
        assert value.strip() not in message
    assert not (data / "out").exists()


def test_tagged_values_stay_out_of_messages(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    (data / "people.csv").write_text(PEOPLE + PEOPLE.splitlines()[1] + "\n")  # a duplicate
    with pytest.raises(SeamlessError) as info:
        ingest_tables(_config(), data, data / "out", T0)
    message = str(info.value)
    assert_one_sentence(message, "duplicate key", f"customer_id={WITHHELD}")
    assert "900000000000000001" not in message
    # A tolerated bad value in a pseudonymized column: counted, its text withheld.
    text = CONFIG.replace("age: int", "age: {type: int, pii: pseudonymize}")
    text = text.replace("features: [age]", "features: []")
    (data / "people.csv").write_text(PEOPLE.replace(",30,", ",thirty,"))
    raw = yaml.safe_load(text)
    raw["tables"]["people"]["max_invalid_fraction"] = 0.5
    manifest = ingest_tables(
        parse_config(yaml.safe_dump(raw), origin="pii.yaml"), data, data / "out", T0
    )
    entry = manifest["tables"]["people"]
    assert entry["invalid_values"] == {"age": 1}
    assert entry["invalid_examples"] == {"age": [WITHHELD]}


# ---------------------------------------------------------------- config sentences


def test_pii_tag_written_either_way_loads_the_same() -> None:
    raw = _raw()
    people = raw["tables"]["people"]
    people["columns"] = {
        c: (v["type"] if isinstance(v, dict) else v) for c, v in people["columns"].items()
    }
    people["pii"] = {"customer_id": "pseudonymize", "email": "drop", "tax_id": "pseudonymize"}
    same = parse_config(yaml.safe_dump(raw), origin="pii.yaml")
    assert same.tables["people"] == _config().tables["people"]
    assert same.tables["people"].stored_columns() == {
        "customer_id": "int",
        "event_timestamp": "timestamp",
        "age": "int",
        "tax_id": "string",
    }
    # `keep` is the default, written or not.
    keep = _raw()
    keep["tables"]["people"]["columns"]["age"] = {"type": "int", "pii": "keep"}
    assert (
        parse_config(yaml.safe_dump(keep), origin="k.yaml").tables["people"].pii.get("age") is None
    )
    bundled = parse_config(default_config_path().read_text(), origin="bundled")
    assert all(not t.pii for t in bundled.tables.values()) and bundled.entity_pii() == "keep"


@pytest.mark.parametrize("kind", ["float", "timestamp", "bool"])
def test_a_type_that_cannot_be_pseudonymized_is_refused(kind: str) -> None:
    raw = _raw()
    raw["tables"]["people"]["columns"]["score"] = {"type": kind, "pii": "pseudonymize"}
    message = _refused(raw)
    assert "tables.people.columns.score" in message and f"declared {kind}" in message


def _with(table: str, column: str, spec: Any, **edits: Any) -> dict[str, Any]:
    raw = _raw()
    raw["tables"][table]["columns"][column] = spec
    for path, value in edits.items():
        raw[path] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_with("people", "age", {"type": "int", "pii": "maybe"}),
         ["tables.people.columns.age", "pseudonymize, drop or keep", "'maybe'"]),
        (_with("people", "age", {"type": "int", "pii": "drop", "note": 1}),
         ["tables.people.columns.age", "unknown key 'note'"]),
        (_with("people", "age", {"pii": "drop"}), ["tables.people.columns.age", "needs a type"]),
        (_with("people", "age", {"type": "int", "pii": "drop"}),
         ["tables.people.columns.age", "feature of features.views 'people'"]),
        (_with("people", "customer_id", {"type": "int", "pii": "drop"}),
         ["tables.people.columns.customer_id", "entity_column", "pseudonymize it instead"]),
        (_with("people", "event_timestamp", {"type": "timestamp", "pii": "drop"}),
         ["tables.people.columns.event_timestamp", "timestamp_column"]),
        (_with("labels", "label", {"type": "int", "pii": "pseudonymize"}),
         ["tables.labels.columns.label", "label column"]),
        (_with("labels", "customer_id", "int"),
         ["entity key 'customer_id'", "keep in tables.labels", "pseudonymize in tables.people"]),
        (_with("people", "email", {"type": "string", "pii": "drop"},
               validation={"expectations": [{"table": "people", "type": "x",
                                             "kwargs": {"column": "email"}}]}),
         ["validation.expectations[0]", "'email'", "pii: drop"]),
    ],
)  # fmt: skip
def test_misplaced_tags_are_one_sentence_naming_the_key(
    raw: dict[str, Any], words: list[str]
) -> None:
    message = _refused(raw)
    for word in words:
        assert word in message, (word, message)


def test_tag_on_an_undeclared_column_and_conflicting_tags_are_refused() -> None:
    raw = _raw()
    raw["tables"]["people"]["pii"] = {"phone": "drop"}
    assert "tables.people.pii names 'phone'" in _refused(raw)
    raw = _raw()
    raw["tables"]["people"]["pii"] = {"email": "pseudonymize"}
    assert "tables.people.pii.email says 'pseudonymize'" in _refused(raw)


# ---------------------------------------------------------------- serving and batch scoring


def test_serving_and_batch_scoring_refuse_to_start_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pseudonymized entity key needs the key wherever raw ids come in; without it the
    server and a batch run stop before anything is read, with one sentence."""
    from components.batch.scoring import read_entities
    from components.serve.api.app import create_app
    from components.serve.settings import ServeSettings

    monkeypatch.delenv(KEY_ENV, raising=False)
    config = _config()
    settings = ServeSettings(
        poll_seconds=0,
        auth_disabled=True,
        predictions_dir=tmp_path / "p",
        feedback_dir=tmp_path / "f",
    )
    for start in (
        lambda: create_app(settings, config),
        lambda: read_entities(config, str(tmp_path / "absent.csv"), as_of="2025-01-01"),
    ):
        with pytest.raises(SeamlessError) as info:
            start()
        assert_one_sentence(str(info.value), "'customer_id'", "pii: pseudonymize", KEY_ENV)
    assert not (tmp_path / "p").exists()


def test_serving_pseudonymizes_ids_like_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.serve.service import Service
    from components.serve.settings import ServeSettings

    monkeypatch.setenv(KEY_ENV, KEY)
    settings = ServeSettings(
        poll_seconds=0,
        auth_disabled=True,
        predictions_dir=tmp_path / "p",
        feedback_dir=tmp_path / "f",
    )
    service = Service(settings, _config())
    p = Pseudonymizer(KEY.encode())
    assert service.stored_ids([900000000000000001, 5]) == [
        p.of_int(900000000000000001),
        p.of_int(5),
    ]
    assert service.readiness()[1]["pii_key_fingerprint"] == p.fingerprint
