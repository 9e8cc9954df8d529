"""Ingest with `engine: spark` against the local engine: same snapshot, same hashes, same
sentences. Spark runs for real (local[2], Java from Debian); one session for the module."""

from __future__ import annotations

import gzip
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.common.config import FileSource, SeamlessConfig, TableConfig
from components.common.errors import SeamlessError
from components.common.spark_scratch import ROOT_NAME
from components.common.tables import read_dataset, read_manifest
from components.ingest.stage import ingest_tables
from tests.helpers.configs import KEYED_COLUMNS, assert_one_sentence, table

pytestmark = [pytest.mark.spark, pytest.mark.slow]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

CSV = """customer_id,event_timestamp,age,income,member,segment
1,2024-01-01T00:00:00Z,30,1000.5,true,A
2,2024-01-01 02:00:00,41,,no,B
3,2024-01-01T05:00:00+02:00,,2500,1,
4,2024-01-02,55,300.25,F,007
5,2024-01-03T00:00:00.123456Z,unknown,12,yes,C
"""


def config(tables: dict[str, TableConfig], engine: str, **labels: Any) -> SeamlessConfig:
    first = next(iter(tables))
    label_column = labels.pop("column", "customer_id")
    return SeamlessConfig.model_validate(
        {
            "name": "spark_ingest",
            "tables": tables,
            "labels": {"table": first, "label_column": label_column, **labels},
            "features": {"views": [], "service": "svc"},
            "model": {"name": "m"},
            "engine": engine,
            "spark": {"master": "local[2]", "conf": {"spark.driver.memory": "1g"}},
        }
    )


def keyed(uri: str, **kwargs: Any) -> TableConfig:
    return table(
        {"kind": "file", "uri": uri},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
        columns=KEYED_COLUMNS,
        **kwargs,
    )


def file_table(
    uri: str,
    entity: str,
    when: str,
    columns: dict[str, str],
    source: dict[str, Any] | None = None,
    **kwargs: Any,
) -> TableConfig:
    """A keyed file table; `source` adds source keys (delimiter, missing_values), `kwargs`
    table keys (formats, max_invalid_fraction)."""
    return table(
        {"kind": "file", "uri": uri, **(source or {})},
        entity_column=entity,
        timestamp_column=when,
        columns=columns,
        **kwargs,
    )


def both(tmp_path: Path, tables: dict[str, TableConfig], **labels: Any) -> tuple[dict, dict]:
    """Ingest with each engine; returns both manifests."""
    manifests = []
    for engine in ("local", "spark"):
        cfg = config(tables, engine, **dict(labels))
        manifests.append(ingest_tables(cfg, tmp_path, tmp_path / engine, T0))
    return manifests[0], manifests[1]


def both_fail(tmp_path: Path, tables: dict[str, TableConfig], **labels: Any) -> str:
    """Both engines refuse the input with the same sentence, and write nothing."""
    messages = []
    for engine in ("local", "spark"):
        with pytest.raises(SeamlessError) as info:
            ingest_tables(config(tables, engine, **dict(labels)), tmp_path, tmp_path / engine, T0)
        messages.append(str(info.value))
        assert not (tmp_path / engine).exists()
    assert messages[0] == messages[1]
    assert_one_sentence(messages[1])
    return messages[1]


def same_tables(tmp_path: Path, local: dict, spark: dict) -> None:
    assert spark["engine"] == "spark" and local["engine"] == "local"
    for name, entry in local["tables"].items():
        other = spark["tables"][name]
        for key in ("rows", "columns", "sha256", "source_sha256", "invalid_values"):
            assert other[key] == entry[key], (name, key)
    assert spark["sha256"] == local["sha256"]
    assert spark["source_sha256"] == local["source_sha256"]
    a, b = read_dataset(tmp_path / "local"), read_dataset(tmp_path / "spark")
    for name, df in a.items():
        pd.testing.assert_frame_equal(df, b[name])


# ---------------------------------------------------------------- same output


def test_csv_types_tolerated_values_and_hashes_match(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV)
    local, remote = both(tmp_path, {"t": keyed("t.csv", max_invalid_fraction=0.5)})
    same_tables(tmp_path, local, remote)
    entry = remote["tables"]["t"]
    assert entry["invalid_values"] == {"age": 1}
    assert entry["invalid_examples"] == {"age": ["unknown"]}
    df = read_dataset(tmp_path / "spark")["t"]
    assert str(df["age"].dtype) == "Int64" and str(df["member"].dtype) == "boolean"
    assert str(df["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["event_timestamp"].iloc[2] == pd.Timestamp("2024-01-01T03:00:00Z")
    assert df["event_timestamp"].iloc[4] == pd.Timestamp("2024-01-03T00:00:00.123456Z")


def test_column_formats_parse_alike(spark: Any, tmp_path: Path) -> None:
    # US dates, thousands separators and a decimal comma, read by each column's format
    # (tables.*.formats) in Spark's workers as in the local engine; a value not written
    # that way is counted, with the same example.
    (tmp_path / "f.csv").write_text(
        "customer_id;event_timestamp;age;income\n"
        "1;01/05/2024 07:30;1.200 %;1.234,5 €\n"
        "2;12/31/2023 18:30;3%;(89,25€)\n"
        "3;2/29/2024 00:00;1.000.000%;12,34,5 €\n"
    )
    types = {"customer_id": "int", "event_timestamp": "timestamp", "age": "int", "income": "float"}
    formats = {
        "event_timestamp": {"format": "%m/%d/%Y %H:%M", "timezone": "America/New_York"},
        "age": {"thousands": ".", "suffix": "%"},
        "income": {"thousands": ".", "decimal": ",", "suffix": "€", "negative_parentheses": True},
    }
    keys = ("customer_id", "event_timestamp")
    cfg = file_table("f.csv", *keys, types, {"delimiter": ";"}, formats=formats)
    cfg = cfg.model_copy(update={"max_invalid_fraction": 0.5})
    local, remote = both(tmp_path, {"t": cfg})
    same_tables(tmp_path, local, remote)
    assert remote["tables"]["t"]["invalid_examples"] == {"income": ["12,34,5 €"]}
    df = read_dataset(tmp_path / "spark")["t"]
    assert df["age"].tolist() == [1200, 3, 1000000]
    assert df["income"].tolist()[:2] == [1234.5, -89.25]  # an accounting negative
    assert df["event_timestamp"].iloc[2] == pd.Timestamp("2024-02-29T05:00:00Z")  # New York


def test_unix_time_parses_alike(spark: Any, tmp_path: Path) -> None:
    # Text counts in a CSV, and an int64 Parquet column (not a Spark timestamp: Python).
    (tmp_path / "u.csv").write_text(
        "customer_id,event_timestamp,age\n1,1704412800.25,3\n2,-1.5,4\n3,1709164800,x\n"
    )
    types = {"customer_id": "int", "event_timestamp": "timestamp", "age": "int"}
    formats = {"event_timestamp": {"unit": "s"}}
    keys = ("customer_id", "event_timestamp")
    cfg = file_table("u.csv", *keys, types, formats=formats, max_invalid_fraction=0.5)
    local, remote = both(tmp_path, {"t": cfg})
    same_tables(tmp_path, local, remote)
    df = read_dataset(tmp_path / "spark")["t"]
    assert df["event_timestamp"].iloc[0] == pd.Timestamp("2024-01-05T00:00:00.25Z")
    assert df["event_timestamp"].iloc[1] == pd.Timestamp("1969-12-31T23:59:58.5Z")
    (tmp_path / "pq").mkdir()
    frame = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [1704412800000, -1500]})
    frame["age"] = [3, 4]
    frame.to_parquet(tmp_path / "pq" / "u.parquet")
    cfg = file_table("u.parquet", *keys, types, formats={"event_timestamp": {"unit": "ms"}})
    local, remote = both(tmp_path / "pq", {"t": cfg})
    same_tables(tmp_path / "pq", local, remote)
    df = read_dataset(tmp_path / "pq" / "spark")["t"]
    assert df["event_timestamp"].tolist()[1] == pd.Timestamp("1969-12-31T23:59:58.5Z")


def test_spark_keeps_its_scratch_files_in_this_processs_swept_folder(spark: Any) -> None:
    from pyspark.sql import functions as F

    # A killed step's block-manager folders are removed by the next session
    # (tests/unit/test_spark_scratch.py); the session must write them there.
    folder = Path(spark.sparkContext.getConf().get("spark.local.dir"))
    assert folder.parent == Path(tempfile.gettempdir()) / ROOT_NAME
    assert folder.name.startswith(f"{os.getpid()}-")
    spark.range(1000).repartition(3).groupBy((F.col("id") % 7).alias("k")).count().collect()
    assert list(folder.glob("blockmgr-*")), "the shuffle wrote elsewhere"


def test_infinities_are_counted_alike(spark: Any, tmp_path: Path) -> None:
    # A typed double column holding inf goes through the local engine's converter.
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "event_timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
            "income": [1.5, float("inf"), float("-inf")],
            "plain": [1.0, 2.0, None],
        }
    )
    frame.to_parquet(tmp_path / "i.parquet")
    types = {"customer_id": "int", "event_timestamp": "timestamp", "income": "float"}
    cfg = file_table("i.parquet", "customer_id", "event_timestamp", {**types, "plain": "float"})
    cfg = cfg.model_copy(update={"max_invalid_fraction": 0.7})
    local, remote = both(tmp_path, {"t": cfg})
    same_tables(tmp_path, local, remote)
    assert remote["tables"]["t"]["invalid_values"] == {"income": 2}
    assert remote["tables"]["t"]["invalid_examples"] == {"income": ["inf", "-inf"]}


def test_a_column_equal_but_for_case_to_a_declared_one_is_refused_alike(
    spark: Any, tmp_path: Path
) -> None:
    lines = CSV.splitlines()
    (tmp_path / "c.csv").write_text("\n".join([lines[0] + ",AGE", *(x + ",1" for x in lines[1:])]))
    message = both_fail(tmp_path, {"t": keyed("c.csv", max_invalid_fraction=0.5)})
    assert "columns 'age' and 'AGE' differ only in case" in message


def test_a_header_with_a_name_twice_or_none_is_read_alike(spark: Any, tmp_path: Path) -> None:
    # Spark would name them 'age6' and '_c6', pandas 'age.1' and 'Unnamed: 6'.
    lines = CSV.splitlines()
    (tmp_path / "e.csv").write_text("".join(f"{x},\n" for x in lines))
    local, remote = both(tmp_path, {"t": keyed("e.csv", max_invalid_fraction=0.5)})
    same_tables(tmp_path, local, remote)
    assert list(read_dataset(tmp_path / "spark")["t"].columns)[:6] == lines[0].split(",")
    for case, header, expected in (
        ("twice", ",age", "two columns named 'age' (columns 3 and 7 of the header)"),
        ("holding", ",", "no name in the header but holds values"),
    ):
        (tmp_path / case).mkdir()
        (tmp_path / case / "d.csv").write_text(
            "\n".join([lines[0] + header, *(x + ",1" for x in lines[1:])])
        )
        message = both_fail(tmp_path / case, {"t": keyed("d.csv", max_invalid_fraction=0.5)})
        assert expected in message


def test_a_windows_encoded_csv_is_read_alike(spark: Any, tmp_path: Path) -> None:
    text = CSV.replace(",A\n", ",Zürich\n").replace(",B\n", ",Genève\n")
    (tmp_path / "w.csv").write_bytes(text.encode("cp1252"))
    source = {"kind": "file", "uri": "w.csv", "encoding": "cp1252"}
    cfg = keyed("w.csv", max_invalid_fraction=0.5).model_copy(
        update={"source": FileSource(**source)}
    )
    local, remote = both(tmp_path, {"t": cfg})
    same_tables(tmp_path, local, remote)
    assert read_dataset(tmp_path / "spark")["t"]["segment"].tolist()[:2] == ["Zürich", "Genève"]


def test_parquet_with_nanosecond_timestamps_and_generated_columns(
    spark: Any, tmp_path: Path
) -> None:
    frame = pd.DataFrame(
        {
            "a": pd.array([3, None, 5], dtype="Int64"),
            "b": ["x", None, "z"],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", None], utc=True),
        }
    )
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    cfg = table(
        {"kind": "file", "uri": "p.parquet"},
        columns={"a": "int", "b": "string", "when": "timestamp"},
    )
    local, remote = both(tmp_path, {"p": cfg}, column="a", positive_class=3)
    same_tables(tmp_path, local, remote)
    assert remote["tables"]["p"]["generated_columns"] == ["row_id", "ingested_at"]
    df = read_dataset(tmp_path / "spark")["p"]
    assert df["row_id"].tolist() == [0, 1, 2]
    assert (df["ingested_at"] == pd.Timestamp(T0)).all()


def test_gzip_and_semicolon_csv(spark: Any, tmp_path: Path) -> None:
    with gzip.open(tmp_path / "t.csv.gz", "wt") as fh:
        fh.write(CSV.replace(",", ";"))
    cfg = table(
        {"kind": "file", "uri": "t.csv.gz", "delimiter": ";"},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
        columns=KEYED_COLUMNS,
        max_invalid_fraction=0.5,
    )
    local, remote = both(tmp_path, {"t": cfg})
    same_tables(tmp_path, local, remote)


def test_labels_value_map_and_drop_match(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text(
        "id,when,outcome\n1,2024-01-01,yes\n2,2024-01-01,no\n3,2024-01-02,7\n"
        "4,2024-01-02,no\n5,2024-01-03,1\n"
    )
    cfg = file_table("l.csv", "id", "when", {"id": "int", "when": "timestamp", "outcome": "int"})
    labels = {
        "column": "outcome",
        "positive_class": 1,
        "value_map": {"yes": 1, "no": 0},
        "unknown_values": "drop",
    }
    local, remote = both(tmp_path, {"l": cfg}, **labels)
    same_tables(tmp_path, local, remote)
    info = remote["tables"]["l"]["labels"]
    assert info == local["tables"]["l"]["labels"]
    assert info["left_out"] == 1 and info["mapped"] == {"yes": 1, "no": 2}


def test_missing_value_markers_match(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "customer_id,event_timestamp,age,segment,note\n"
        "1,2024-01-01,NA,NA,null\n2,2024-01-02,41,x,NA\n3,2024-01-03,null,y,z\n"
    )
    cfg = file_table(
        "m.csv",
        "customer_id",
        "event_timestamp",
        {"customer_id": "int", "event_timestamp": "timestamp", "age": "int", "segment": "string"},
        source={"missing_values": ["NA", "null"]},
    )
    local, remote = both(tmp_path, {"m": cfg})
    same_tables(tmp_path, local, remote)
    entry = remote["tables"]["m"]
    assert entry["missing_markers"] == local["tables"]["m"]["missing_markers"]
    assert entry["missing_markers"] == {"age": {"NA": 1, "null": 1}, "segment": {"NA": 1}}
    assert read_dataset(tmp_path / "spark")["m"]["note"].isna().tolist() == [True, True, False]


def test_na_text_stays_a_value_by_default(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("customer_id,event_timestamp,segment\n1,2024-01-01,NA\n")
    cfg = table(
        {"kind": "file", "uri": "m.csv"},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
        columns={"customer_id": "int", "event_timestamp": "timestamp", "segment": "string"},
    )
    local, remote = both(tmp_path, {"m": cfg})
    same_tables(tmp_path, local, remote)
    assert read_dataset(tmp_path / "spark")["m"]["segment"].tolist() == ["NA"]


# ---------------------------------------------------------------- same refusals


def test_too_many_invalid_values(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV)
    message = both_fail(tmp_path, {"t": keyed("t.csv")})
    assert "column 'age' has 1 of 5 values" in message and "row 5: 'unknown'" in message


def test_bad_key_value_names_its_row(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV.replace("4,2024-01-02", "4,yesterday"))
    message = both_fail(tmp_path, {"t": keyed("t.csv", max_invalid_fraction=0.5)})
    assert "key column 'event_timestamp' has a value in row 4" in message


def test_empty_key(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV.replace("\n3,", "\n,"))
    message = both_fail(tmp_path, {"t": keyed("t.csv", max_invalid_fraction=0.5)})
    assert "key column 'customer_id' is empty in 1 row, the first being row 3" in message


def test_duplicate_keys_name_both_rows(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV + "2,2024-01-01T02:00:00Z,1,1,no,B\n")
    message = both_fail(tmp_path, {"t": keyed("t.csv", max_invalid_fraction=0.5)})
    assert "in rows 2 and 6" in message
    assert "event_timestamp=2024-01-01T02:00:00+00:00" in message


def test_duplicate_keys_where_one_row_has_a_dropped_label(spark: Any, tmp_path: Path) -> None:
    # The label policy drops row 3 (label 7); its key repeats row 2's. The local engine
    # checks keys before dropping, so Spark must look at every row read, not only those
    # written.
    (tmp_path / "l.csv").write_text(
        "id,when,outcome\n1,2024-01-01,1\n2,2024-01-01,0\n2,2024-01-01,7\n4,2024-01-02,0\n"
    )
    cfg = file_table("l.csv", "id", "when", {"id": "int", "when": "timestamp", "outcome": "int"})
    labels = {"column": "outcome", "positive_class": 1, "unknown_values": "drop"}
    message = both_fail(tmp_path, {"l": cfg}, **labels)
    assert "in rows 2 and 3" in message


def test_zero_and_negative_zero_keys_repeat(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(
        "k,when,x\n0.0,2024-01-01,1\n1.5,2024-01-01,2\n-0.0,2024-01-01,3\n"
    )
    cfg = file_table("f.csv", "k", "when", {"k": "float", "when": "timestamp", "x": "int"})
    assert "in rows 1 and 3" in both_fail(tmp_path, {"f": cfg}, column="x")


def test_repeated_key_hashes_without_repeated_keys_are_written(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Equal key hashes for different keys (a collision) make Spark look for the rows;
    # finding none, the table is written as it is.
    import components.common.spark_write as spark_write

    calls: list[int] = []

    def colliding(df: pd.DataFrame, keys: Any) -> np.ndarray:
        calls.append(len(df))
        return np.zeros(len(df), dtype="uint64")

    monkeypatch.setattr(spark_write, "_key_hashes", colliding)
    (tmp_path / "t.csv").write_text(CSV)
    local, remote = both(tmp_path, {"t": keyed("t.csv", max_invalid_fraction=0.5)})
    assert calls, "the Spark writer hashed no keys"
    same_tables(tmp_path, local, remote)


def test_missing_column_and_wrong_delimiter(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV.replace("segment", "segmnt"))
    assert "required column 'segment' is missing" in both_fail(tmp_path, {"t": keyed("t.csv")})
    (tmp_path / "s.csv").write_text(CSV.replace(",", ";"))
    message = both_fail(tmp_path, {"t": keyed("s.csv")})
    assert "looks like it is delimited by ';' not ','" in message


def test_missing_and_empty_files(spark: Any, tmp_path: Path) -> None:
    assert "does not exist" in both_fail(tmp_path, {"t": keyed("nope.csv")})
    (tmp_path / "e.csv").write_bytes(b"")
    assert "is empty (0 bytes)" in both_fail(tmp_path, {"t": keyed("e.csv")})


def test_malformed_row_is_refused_not_padded(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV + "6,2024-01-04,1,2,true,D,extra\n")
    with pytest.raises(SeamlessError) as info:
        ingest_tables(config({"t": keyed("t.csv")}, "spark"), tmp_path, tmp_path / "out", T0)
    # The local engine's sentence: the file's rows are counted when Spark's reader fails.
    assert_one_sentence(
        str(info.value), "Table 't'", "data row 6 of", "t.csv", "7 fields where the header has 6"
    )
    assert not (tmp_path / "out").exists()


def test_other_sources_fall_back_to_the_local_engine(spark: Any, tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("create table t (customer_id int, event_timestamp text, v real)")
        db.execute("insert into t values (1, '2024-01-01', 0.5), (2, '2024-01-02', 1.5)")
    cfg = table(
        {"kind": "sql", "url": "sqlite:///db.sqlite", "query": "select * from t"},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
        columns={"customer_id": "int", "event_timestamp": "timestamp", "v": "float"},
    )
    # JSON records: the local engine reads them (components/ingest/json_records.py).
    (tmp_path / "j.jsonl").write_text(
        '{"customer_id": 900000000000000001, "event_timestamp": "2024-01-01", "v": 0.5}\n'
        '{"event_timestamp": "2024-01-02", "customer_id": 2, "v": null}\n'
    )
    jcfg = cfg.model_copy(update={"source": FileSource(uri="j.jsonl")})
    local, remote = both(tmp_path, {"t": cfg, "j": jcfg})
    same_tables(tmp_path, local, remote)
    assert remote["tables"]["t"]["engine"] == remote["tables"]["j"]["engine"] == "local"
    assert read_manifest(tmp_path / "spark")["engine"] == "spark"
    ids = read_dataset(tmp_path / "spark")["j"]["customer_id"].tolist()
    assert ids == [900000000000000001, 2]


# ---------------------------------------------------------------- Spark's own limit


def test_sub_microsecond_timestamps_are_refused_not_cut(spark: Any, tmp_path: Path) -> None:
    """Spark stores microseconds; the local engine keeps nanoseconds. Cutting silently
    would change the data, so the Spark engine refuses, naming column and row or value."""
    (tmp_path / "t.csv").write_text(CSV.replace("00:00:00.123456Z", "00:00:00.123456789Z"))
    cfg = {"t": keyed("t.csv", max_invalid_fraction=0.5)}
    with pytest.raises(SeamlessError) as info:
        ingest_tables(config(cfg, "spark"), tmp_path, tmp_path / "out", T0)
    message = str(info.value)
    assert_one_sentence(message)
    assert "column 'event_timestamp' has 1 timestamp finer than a microsecond" in message
    assert "row 5" in message and "123456789" in message
    assert not (tmp_path / "out").exists()
    # Parquet (pandas writes nanoseconds): the value is shown, the file named.
    when = pd.to_datetime(
        ["2024-01-01T00:00:00.000000001Z", "2024-01-02T00:00:00Z"], utc=True, format="ISO8601"
    )
    pd.DataFrame({"a": [1, 2], "when": when}).to_parquet(tmp_path / "p.parquet", index=False)
    cfg = {
        "p": table({"kind": "file", "uri": "p.parquet"}, columns={"a": "int", "when": "timestamp"})
    }
    with pytest.raises(SeamlessError) as info:
        ingest_tables(
            config(cfg, "spark", column="a", positive_class=1), tmp_path, tmp_path / "o", T0
        )
    message = str(info.value)
    assert "p.parquet" in message and "2024-01-01T00:00:00.000000001+00:00" in message
    assert "column 'when' has 1 timestamp" in message


def test_long_integers_with_nulls_in_parquet_match(spark: Any, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    accounts = pa.array([9007199254740993, None, 1234567890123456789], type=pa.int64())
    when = pa.array(pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True))
    pq.write_table(
        pa.table({"k": [1, 2, 3], "when": when, "acct": accounts}), tmp_path / "a.parquet"
    )
    cfg = file_table("a.parquet", "k", "when", {"k": "int", "when": "timestamp", "acct": "int"})
    local, remote = both(tmp_path, {"a": cfg}, column="k")
    same_tables(tmp_path, local, remote)
    assert read_dataset(tmp_path / "local")["a"]["acct"].iloc[2] == 1234567890123456789


def test_parquet_microseconds_survive_exactly(spark: Any, tmp_path: Path) -> None:
    """Today's instants in nanoseconds exceed a double's exact range (about 4% of random
    microsecond instants came out 1 us early through a double); the conversion to Spark's
    microseconds is integer arithmetic."""
    rng = np.random.default_rng(7)
    micros = rng.integers(-(10**15), 2 * 10**15, size=2000) * 1000
    when = pd.to_datetime(micros, unit="ns", utc=True)
    frame = pd.DataFrame({"a": np.arange(2000), "when": when})
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    cfg = {
        "p": table({"kind": "file", "uri": "p.parquet"}, columns={"a": "int", "when": "timestamp"})
    }
    local, remote = both(tmp_path, cfg, column="a", positive_class=1)
    same_tables(tmp_path, local, remote)
    assert read_dataset(tmp_path / "spark")["p"]["when"].tolist() == list(when)


# ---------------------------------------------------------------- personal data (pii tags)


def test_pseudonyms_and_dropped_columns_match_the_local_engine(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tagged columns on both conversion paths (CSV text through the Python converters,
    Parquet int64 natively), ids past 2**53 and nulls: the same pseudonyms, hashes and
    `pii` record from both engines, the dropped column nowhere."""
    monkeypatch.setenv("SEAMLESS_PII_KEY", "spark-tier-" + "k" * 32)
    big = 2**60 + 12345
    lines = CSV.splitlines()
    rows = [f"{line},{'email' if i == 0 else f'p{i}@x.invalid'}" for i, line in enumerate(lines)]
    (tmp_path / "t.csv").write_text("\n".join(rows).replace("\n1,", f"\n{big},") + "\n")
    pd.DataFrame(
        {
            "id": pd.array([big, 2, 3, 4], dtype="Int64"),
            "ref": pd.array([7, None, 7, 2**62], dtype="Int64"),
            "tag": ["a", None, "b", "a"],
            "when": pd.to_datetime(["2024-01-01"] * 4, utc=True),
        }
    ).to_parquet(tmp_path / "p.parquet", index=False)
    tagged = {**KEYED_COLUMNS, "customer_id": {"type": "int", "pii": "pseudonymize"}}
    tagged["segment"] = {"type": "string", "pii": "pseudonymize"}
    tagged["email"] = {"type": "string", "pii": "drop"}
    csv_cfg = {
        "source": {"kind": "file", "uri": "t.csv"},
        "entity_column": "customer_id",
        "timestamp_column": "event_timestamp",
        "columns": tagged,
        "max_invalid_fraction": 0.5,
    }
    parquet_cfg = {
        "source": {"kind": "file", "uri": "p.parquet"},
        "columns": {
            "id": "int",
            "ref": {"type": "int", "pii": "pseudonymize"},
            "tag": {"type": "string", "pii": "pseudonymize"},
            "when": "timestamp",
        },
    }
    manifests = []
    for engine in ("local", "spark"):
        cfg = SeamlessConfig.model_validate(
            {
                "name": "spark_pii",
                "tables": {"t": csv_cfg, "p": parquet_cfg},
                "labels": {"table": "p", "label_column": "id"},
                "features": {"views": [], "service": "svc"},
                "model": {"name": "m"},
                "engine": engine,
                "spark": {"master": "local[2]", "conf": {"spark.driver.memory": "1g"}},
            }
        )
        manifests.append(ingest_tables(cfg, tmp_path, tmp_path / engine, T0))
    local, remote = manifests
    same_tables(tmp_path, local, remote)
    assert remote["pii"] == local["pii"] and remote["pii"]["dropped"] == {"t": ["email"]}
    for name in ("t", "p"):
        assert remote["tables"][name]["pii"] == local["tables"][name]["pii"]
    t, p = read_dataset(tmp_path / "spark")["t"], read_dataset(tmp_path / "spark")["p"]
    assert "email" not in t.columns and "email" not in remote["tables"]["t"]["columns"]
    assert "x.invalid" not in (tmp_path / "spark" / "manifest.json").read_text()
    assert big not in set(t["customer_id"]) and 2**62 not in set(p["ref"].dropna())
    assert p["ref"].isna().tolist() == [False, True, False, False]
    assert p["ref"][0] == p["ref"][2] and p["tag"][0] == p["tag"][3] and p["tag"][1] is None
    assert remote["tables"]["p"]["pii"]["pseudonymized"]["ref"] == {
        "type": "int",
        "values": 3,
        "distinct": 2,
    }


def test_parquet_lists_structs_and_maps_read_alike(spark: Any, tmp_path: Path) -> None:
    # Nested Parquet values are canonical JSON text, declared or not: such a file is read
    # by the local engine (Spark's to_json writes them otherwise).
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "customer_id": pa.array([1, 2, 3]),
        "event_timestamp": pa.array(["2024-01-01", "2024-01-02", "2024-01-03"]),
        "tags": pa.array([[], ["x"], None], pa.list_(pa.string())),
        "addr": pa.array([{"city": "X", "n": [1, 2]}, None, {"city": "Y", "n": []}]),
        "attrs": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
    }
    pq.write_table(pa.table(columns), tmp_path / "p.parquet")
    types = {"customer_id": "int", "event_timestamp": "timestamp", "tags": "string"}
    cfg = file_table("p.parquet", "customer_id", "event_timestamp", types)
    local, remote = both(tmp_path, {"p": cfg})
    same_tables(tmp_path, local, remote)
    assert remote["tables"]["p"]["engine"] == "local"
    df = read_dataset(tmp_path / "spark")["p"]
    assert df["tags"].tolist() == ["[]", '["x"]', None]
    assert df["addr"].tolist()[0] == '{"city": "X", "n": [1, 2]}'


def test_quoted_values_with_line_breaks_read_alike(spark: Any, tmp_path: Path) -> None:
    # Spark's parallel CSV reader splits records at line ends; a file whose quoted values
    # hold line breaks is read again record by record (one task), as pandas reads it.
    text = CSV.replace(",A\n", ',"A\nsecond line"\n').replace(",007\n", ',"0\r\n07"\n')
    (tmp_path / "t.csv").write_text(text)
    local, remote = both(tmp_path, {"t": keyed("t.csv", max_invalid_fraction=0.5)})
    same_tables(tmp_path, local, remote)
    segment = read_dataset(tmp_path / "spark")["t"]["segment"].tolist()
    assert segment[0] == "A\nsecond line" and segment[3] == "0\r\n07"
    # A row that is malformed either way is still one sentence, the same in both engines.
    (tmp_path / "bad").mkdir()
    bad = text.replace("4,2024-01-02,55,", "4,2024-01-02,55,1,")
    (tmp_path / "bad" / "t.csv").write_text(bad)
    message = both_fail(tmp_path / "bad", {"t": keyed("t.csv", max_invalid_fraction=0.5)})
    assert "data row 4 of" in message and "7 fields where the header has 6" in message


def test_a_csv_without_a_header_row_and_spaced_markers_read_alike(
    spark: Any, tmp_path: Path
) -> None:
    # UCI style: no header row, ", " between values, " ?" for a missing value.
    (tmp_path / "a.data").write_text(
        "\ufeff1, 2024-01-01, 39, State-gov, x\n2, 2024-01-02, ?, ?, ?\n"
        "3, 2024-01-03, 38, Private, ?\n"
    )
    types = {"customer_id": "int", "event_timestamp": "timestamp", "age": "int", "work": "string"}
    headerless = {"column_names": [*types, "note"], "missing_values": ["?"]}
    cfg = file_table("a.data", "customer_id", "event_timestamp", types, source=headerless)
    local, remote = both(tmp_path, {"a": cfg})
    same_tables(tmp_path, local, remote)
    assert remote["tables"]["a"]["missing_markers"] == {"age": {"?": 1}, "work": {"?": 1}}
    got = read_dataset(tmp_path / "spark")["a"]
    assert got["customer_id"].tolist() == [1, 2, 3] and got["note"].isna().tolist() == [
        False, True, True
    ]  # fmt: skip
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "a.data").write_text("1, 2024-01-01, 39, State-gov\n")
    message = both_fail(tmp_path / "short", {"a": cfg})
    assert "data row 1 of" in message and "4 fields where column_names lists 5" in message
