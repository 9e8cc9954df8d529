"""Ingest from JSON files (JSON lines, a JSON array): the values a CSV of the same table
gives, exact long ids, nested values, and every malformed file named to its line."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.config import TableConfig
from components.common.errors import SeamlessError
from components.ingest.ingest import ingest_table
from tests.helpers.configs import KEYED_COLUMNS, assert_one_sentence, table
from tests.helpers.http_api import json_api

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BIG = 900_000_000_000_000_001  # past 2**53: a float64 would make it ...000
RECORDS: list[dict[str, Any]] = [
    {"customer_id": BIG, "event_timestamp": "2024-01-01T00:00:00Z", "age": 30,
     "income": 1000.5, "member": True, "segment": "A"},
    {"customer_id": BIG + 2, "event_timestamp": "2024-01-01T05:00:00+02:00", "age": None,
     "income": 2500, "member": False, "segment": "007"},
    {"customer_id": BIG + 4, "event_timestamp": "2024-01-02", "age": 55,
     "income": 300.25, "member": True, "segment": None},
]  # fmt: skip
CSV = """customer_id,event_timestamp,age,income,member,segment
900000000000000001,2024-01-01T00:00:00Z,30,1000.5,true,A
900000000000000003,2024-01-01T05:00:00+02:00,,2500,false,007
900000000000000005,2024-01-02,55,300.25,true,
"""


def keyed(uri: str, columns: dict[str, str] = KEYED_COLUMNS, **source: Any) -> TableConfig:
    return table(
        {"kind": "file", "uri": uri, **source},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
        columns=columns,
    )


def lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def tolerant(columns: dict[str, str]) -> TableConfig:
    """c.jsonl, half of whose values may be invalid."""
    return table(
        {"kind": "file", "uri": "c.jsonl"},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
        columns=columns,
        max_invalid_fraction=0.5,
    )


def ingest_error(cfg: TableConfig, data_dir: Path) -> str:
    with pytest.raises(SeamlessError) as info:
        ingest_table("customers", cfg, data_dir, T0)
    return str(info.value)


def test_json_lines_and_a_json_array_read_as_the_csv_does(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(CSV)
    (tmp_path / "c.jsonl").write_text(lines(RECORDS))
    (tmp_path / "c.json").write_text(json.dumps(RECORDS, indent=2))
    (tmp_path / "c.ndjson.gz").write_bytes(gzip.compress(lines(RECORDS).encode()))
    (tmp_path / "noext").write_text("\ufeff\n" + lines(RECORDS) + "\n\n")  # BOM, blank lines
    want, _ = ingest_table("customers", keyed("c.csv"), tmp_path, T0)
    assert want["customer_id"].tolist() == [BIG, BIG + 2, BIG + 4]
    for name in ("c.jsonl", "c.json", "c.ndjson.gz", "noext"):
        got, info = ingest_table("customers", keyed(name), tmp_path, T0)
        pd.testing.assert_frame_equal(got, want)
        assert info["invalid_values"] == {}


def test_keys_a_record_lacks_are_null_and_nested_values_are_json_text(tmp_path: Path) -> None:
    records = [dict(r) for r in RECORDS]
    del records[0]["age"], records[1]["customer_id"]
    records[1]["customer_id"] = BIG + 2  # a key moved to the end of its record
    records[2]["segment"] = {"tier": "gold", "codes": [1, 2]}  # nested, declared string
    records[2]["extra"] = [1, {"b": 2}]  # nested, undeclared
    (tmp_path / "c.jsonl").write_text(lines(records))
    df, _ = ingest_table("customers", keyed("c.jsonl"), tmp_path, T0)
    assert df["customer_id"].tolist() == [BIG, BIG + 2, BIG + 4]
    assert df["age"].isna().tolist() == [True, True, False]
    assert df["segment"].tolist() == ["A", "007", '{"codes": [1, 2], "tier": "gold"}']
    assert df["extra"].isna().tolist() == [True, True, False] and df["extra"][2] == '[1, {"b": 2}]'


def test_a_nested_value_in_a_typed_column_is_an_invalid_value(tmp_path: Path) -> None:
    records = [dict(r) for r in RECORDS]
    records[1]["member"] = {"since": 2020}
    (tmp_path / "c.jsonl").write_text(lines(records))
    msg = ingest_error(keyed("c.jsonl"), tmp_path)
    assert_one_sentence(msg, "column 'member'", "row 2", "{'since': 2020}", "true/false")
    df, info = ingest_table("customers", tolerant(KEYED_COLUMNS), tmp_path, T0)
    assert df["member"].isna().tolist() == [False, True, False]
    assert info["invalid_values"] == {"member": 1}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (lines(RECORDS[:2]) + '{"customer_id": 7, "age": }\n', ["line 3 of", "not one JSON value"]),
        (lines(RECORDS[:1]) + "\n[1, 2]\n", ["line 3 of", "is a JSON array, not an object"]),
        ('{\n  "customer_id": 1\n}\n', ["line 1 of", "several lines"]),
        (lines(RECORDS[:1]) + '{"a": 1} {"a": 2}\n', ["line 2 of", "not one JSON value"]),
        ("[" + json.dumps(RECORDS[0]) + ", 5]", ["array element 2 of", "a JSON number"]),
        ("[" + json.dumps(RECORDS[0]) + ",", ["not valid JSON at line 1"]),
        (" \n\n", ["holds no JSON records"]),
        (json.dumps({"data": RECORDS, "next": None}), ["one JSON object whose 'data' holds 3"]),
        # A repeated key: Python's json kept the last value and dropped the first silently.
        (
            lines(RECORDS[:1]) + '{"customer_id": 7, "age": 1, "age": 2}\n',
            ["line 2 of", "'age' twice"],
        ),
        ('{"customer_id": 7, "meta": {"a": 1, "a": 2}}\n', ["line 1 of", "'a' twice"]),
        (
            "[\n" + json.dumps(RECORDS[0]) + ',\n {"age": 1,\n "age": 2}]',
            ["element 2 (line 3)", "'age' twice"],
        ),
    ],
)
def test_a_malformed_json_file_is_named_to_its_line(
    tmp_path: Path, content: str, words: list[str]
) -> None:
    (tmp_path / "c.jsonl").write_text(content)
    assert_one_sentence(ingest_error(keyed("c.jsonl"), tmp_path), "c.jsonl", *words)


def test_true_or_false_among_numbers_is_an_invalid_value(tmp_path: Path) -> None:
    # pd.to_numeric read a JSON true as 1, so it was stored as age 1 and not counted.
    records = [dict(r) for r in RECORDS]
    records[1]["age"] = True
    (tmp_path / "c.jsonl").write_text(lines(records))
    msg = ingest_error(keyed("c.jsonl"), tmp_path)
    assert_one_sentence(msg, "column 'age'", "row 2", "True")
    columns = {**KEYED_COLUMNS, "income": "float", "flag": "int"}
    for r, flag in zip(records, (True, None, False), strict=True):
        r["flag"] = flag  # only true/false: a flag kept as 1/0 is the user's choice
    records[2]["income"] = False
    (tmp_path / "c.jsonl").write_text(lines(records))
    df, info = ingest_table("customers", tolerant(columns), tmp_path, T0)
    assert df["age"].isna().tolist() == [False, True, False]
    assert df["income"].isna().tolist() == [False, False, True]
    assert df["flag"].tolist() == [1, pd.NA, 0]
    assert info["invalid_values"] == {"age": 1, "income": 1}


def test_an_api_record_repeating_a_key_is_refused(tmp_path: Path) -> None:
    with json_api(RECORDS) as api:
        api.files["dup.json"] = (
            b'[{"customer_id": 1, "age": 3}, {"customer_id": 2, "age": 4, "age": 5}]'
        )
        cfg = table(
            {
                "kind": "api",
                "url": api.url("/files/dup.json"),
                "pagination": "none",
                "records_key": None,
            },
            entity_column="customer_id",
            columns={"customer_id": "int", "age": "int"},
        )
        msg = ingest_error(cfg, tmp_path)
    assert_one_sentence(msg, "dup.json", "'age' twice in one object")


def test_a_json_file_in_another_encoding(tmp_path: Path) -> None:
    records = [{**RECORDS[0], "segment": "Zürich"}]
    (tmp_path / "c.jsonl").write_bytes(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("cp1252")
    )
    msg = ingest_error(keyed("c.jsonl"), tmp_path)
    assert_one_sentence(msg, "c.jsonl", "is not utf-8 text", "byte 0xfc", "set the source's")
    df, _ = ingest_table("customers", keyed("c.jsonl", encoding="cp1252"), tmp_path, T0)
    assert df["segment"].tolist() == ["Zürich"]


def test_line_separators_inside_values_stay_in_their_value(tmp_path: Path) -> None:
    # JSON lets a string hold U+2028, U+0085 or a form feed as they are; a reader that
    # splits lines at every Unicode line boundary cut such a record in two.
    records = [{**RECORDS[0], "segment": "a\u2028b\x85c\x0cd"}, RECORDS[1]]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in records)
    (tmp_path / "c.jsonl").write_text(text, newline="")
    df, _ = ingest_table("customers", keyed("c.jsonl"), tmp_path, T0)
    assert df["segment"].tolist() == ["a\u2028b\x85c\x0cd", "007"]


def test_a_declared_format_is_taken_as_written(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text(lines(RECORDS))
    df, _ = ingest_table("customers", keyed("c.txt", format="json"), tmp_path, T0)
    assert df["customer_id"].tolist() == [BIG, BIG + 2, BIG + 4]


def test_json_lines_over_http_and_long_ids_from_an_api_stay_exact(tmp_path: Path) -> None:
    with json_api(RECORDS) as api:
        api.files["c.jsonl.gz"] = gzip.compress(lines(RECORDS).encode())
        df, _ = ingest_table("customers", keyed(api.url("/files/c.jsonl.gz")), tmp_path, T0)
        assert df["customer_id"].tolist() == [BIG, BIG + 2, BIG + 4]
        # An API's records with a missing value: pandas' record frame made the column
        # float64 and rounded every id to ...000.
        source = {"kind": "api", "url": api.url("/list"), "pagination": "none"}
        cfg = table(
            {**source, "records_key": None},
            entity_column="customer_id",
            columns={"customer_id": "int", "age": "int"},
        )
        df, _ = ingest_table("customers", cfg, tmp_path, T0)
    assert df["customer_id"].tolist() == [BIG, BIG + 2, BIG + 4]
    assert df["age"].tolist()[0] == 30 and pd.isna(df["age"][1])
