"""Ingest from CSV/Parquet files: normalization, generated columns, hashes and every bad input."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from components.common.config import INGESTED_AT, ROW_ID, TableConfig
from components.common.errors import SeamlessError
from components.common.tables import read_dataset, read_manifest
from components.ingest.ingest import ingest_table
from components.ingest.normalize import normalize_table
from components.ingest.sources import read_source, sniff_delimiter
from components.ingest.stage import ingest_tables
from tests.helpers.configs import KEYED_COLUMNS, assert_one_sentence, config_for, table
from tests.helpers.http_api import json_api

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)

CSV = """customer_id,event_timestamp,age,income,member,segment,note
1,2024-01-01T00:00:00Z,30,1000.5,true,A,x
2,2024-01-01 02:00:00,41,,no,B,
3,2024-01-01T05:00:00+02:00,,2500,1,,z
4,2024-01-02,55,300.25,F,007,w
"""


def keyed(uri: str, **kwargs: object) -> TableConfig:
    return table(
        {"kind": "file", "uri": uri, **kwargs},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
        columns=KEYED_COLUMNS,
    )


def plain(uri: str, **kwargs: object) -> TableConfig:
    return table({"kind": "file", "uri": uri}, columns={"a": "int", "b": "string"}, **kwargs)


def ingest_error(name: str, cfg: TableConfig, data_dir: Path) -> str:
    with pytest.raises(SeamlessError) as info:
        ingest_table(name, cfg, data_dir, T0)
    return str(info.value)


# ---------------------------------------------------------------- happy paths


def test_csv_relative_to_data_dir_gets_declared_types(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text(CSV)
    df, info = ingest_table("customers", keyed("customers.csv"), tmp_path, T0)

    assert str(df["customer_id"].dtype) == "Int64"
    assert str(df["age"].dtype) == "Int64" and df["age"].isna().tolist() == [0, 0, 1, 0]
    assert df["income"].dtype == "float64" and pd.isna(df.loc[1, "income"])
    assert df["member"].tolist() == [True, False, True, False]
    assert df["segment"].tolist() == ["A", "B", None, "007"]  # text kept, never 7
    assert str(df["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    # naive means UTC; offsets converted; a bare date is midnight UTC
    assert [t.isoformat() for t in df["event_timestamp"]] == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T02:00:00+00:00",
        "2024-01-01T03:00:00+00:00",
        "2024-01-02T00:00:00+00:00",
    ]
    assert "note" in df.columns  # undeclared columns pass through
    assert info["source"] == str(tmp_path / "customers.csv")
    assert info["source_kind"] == "file" and info["generated_columns"] == []


def test_floats_read_back_exactly_as_python_and_pandas_write_them(tmp_path: Path) -> None:
    # pandas' fast text parser was one unit in the last place off on about a third of
    # these, declared or not: a CSV round trip changed the data.
    import numpy as np

    values = np.random.default_rng(0).random(2000)
    frame = pd.DataFrame({"a": range(2000), "b": "x", "f": values, "g": values * 1e-7})
    frame.to_csv(tmp_path / "f.csv", index=False)
    cfg = table({"kind": "file", "uri": "f.csv"}, columns={"a": "int", "f": "float"})
    df, _ = ingest_table("f", cfg, tmp_path, T0)
    assert (df["f"].to_numpy() == values).all()
    assert (df["g"].to_numpy() == values * 1e-7).all()  # undeclared: read_csv's parser


def test_naive_value_after_offset_value_is_still_utc(tmp_path: Path) -> None:
    # pandas alone would apply the +02:00 of the first value to the naive second one
    raw = pd.DataFrame({"t": ["2024-01-01T05:00:00+02:00", "2024-01-01 03:04:05"]})
    out = normalize_table(
        raw, table({"kind": "file", "uri": "x"}, columns={"t": "timestamp"}), "t", "o"
    )
    assert out["t"].tolist() == [
        pd.Timestamp("2024-01-01T03:00:00Z"),
        pd.Timestamp("2024-01-01T03:04:05Z"),
    ]


def test_parquet_through_file_uri(tmp_path: Path) -> None:
    src = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "event_timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-02 00:00"]),
            "age": [30, 40],
            "income": [1.5, 2.5],
            "member": [True, False],
            "segment": ["A", "B"],
        }
    )
    src.to_parquet(tmp_path / "c.parquet")
    df, _ = ingest_table("c", keyed((tmp_path / "c.parquet").as_uri()), None, T0)
    assert df["event_timestamp"].dt.tz is not None
    assert df["event_timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert str(df["member"].dtype) == "boolean"


def test_long_integers_with_nulls_in_parquet_stay_exact(tmp_path: Path) -> None:
    # pandas reads an int64 column with a null as float64, which rounds 2**53 + 1 and
    # 19-digit account numbers; ingest reads it as a nullable integer instead.
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = [9007199254740993, None, 1234567890123456789]
    accounts = pa.array(values, type=pa.int64())
    pq.write_table(pa.table({"a": [1, 2, 3], "acct": accounts}), tmp_path / "p.parquet")
    cfg = table({"kind": "file", "uri": "p.parquet"}, columns={"a": "int", "acct": "int"})
    df, _ = ingest_table("p", cfg, tmp_path, T0)
    assert df["acct"].tolist() == [9007199254740993, pd.NA, 1234567890123456789]


def test_parquet_lists_structs_maps_and_decimals_are_read(tmp_path: Path) -> None:
    # pyarrow hands lists over as numpy arrays: a string column holding one crashed
    # ingest (and init) with "The truth value of an empty array is ambiguous".
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "a": pa.array([1, 2, 3]),
        "tags": pa.array([[], ["x"], None], pa.list_(pa.string())),
        "addr": pa.array([{"city": "X", "n": [1, 2]}, None, {"city": "Y", "n": []}]),
        "attrs": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
        "amount": pa.array([decimal.Decimal("636.69"), None, decimal.Decimal("-1.10")]),
        "plan": pa.array(["b", "a", "b"]).dictionary_encode(),
        "day": pa.array([date(2024, 1, 2), None, date(2024, 2, 29)]),
    }
    pq.write_table(pa.table(columns), tmp_path / "p.parquet")
    declared = {"a": "int", "tags": "string", "addr": "string", "amount": "float"}
    declared |= {"plan": "string", "day": "timestamp"}
    cfg = table({"kind": "file", "uri": "p.parquet"}, columns=declared)
    df, info = ingest_table("p", cfg, tmp_path, T0)
    assert df["tags"].tolist() == ["[]", '["x"]', None]
    assert df["addr"].tolist() == ['{"city": "X", "n": [1, 2]}', None, '{"city": "Y", "n": []}']
    assert df["attrs"].tolist()[:2] == ['[["k", 1]]', "[]"]  # undeclared: JSON text too
    assert df["amount"].tolist()[::2] == [636.69, -1.1] and pd.isna(df["amount"][1])
    assert df["plan"].tolist() == ["b", "a", "b"]
    assert df["day"].tolist()[2] == pd.Timestamp("2024-02-29T00:00:00Z")
    assert info["invalid_values"] == {}


def test_csv_over_http(tmp_path: Path) -> None:
    with json_api() as api:
        api.files["customers.csv"] = CSV.encode()
        df, info = ingest_table("c", keyed(api.url("/files/customers.csv")), tmp_path, T0)
    assert len(df) == 4 and info["source"].endswith("/files/customers.csv")


def test_plain_table_gets_row_id_and_ingested_at(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("a,b\n5,x\n6,y\n7,z\n")
    df, info = ingest_table("p", plain("p.csv"), tmp_path, datetime(2024, 5, 1, 12))  # naive=UTC
    assert df[ROW_ID].tolist() == [0, 1, 2]
    assert (df[INGESTED_AT] == pd.Timestamp("2024-05-01T12:00:00Z")).all()
    assert str(df[INGESTED_AT].dtype) == "datetime64[ns, UTC]"
    assert info["generated_columns"] == [ROW_ID, INGESTED_AT]


def test_tolerated_invalid_values_become_null_and_are_reported(tmp_path: Path) -> None:
    rows = "".join(f"{i},v{i}\n" for i in range(99)) + "oops,last\n"
    (tmp_path / "p.csv").write_text("a,b\n" + rows)
    df, info = ingest_table("p", plain("p.csv"), tmp_path, T0)  # 1 of 100 = the 1% tolerated
    assert str(df["a"].dtype) == "Int64"
    assert df["a"].isna().sum() == 1 and pd.isna(df["a"].iloc[99])
    assert info["invalid_values"] == {"a": 1}


def test_long_integer_ids_stay_exact_with_bad_values_present(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("a,b\n12345678901234567,x\nbad,y\n")
    cfg = plain("p.csv", max_invalid_fraction=0.5)
    df, _ = ingest_table("p", cfg, tmp_path, T0)
    assert df["a"].iloc[0] == 12345678901234567


def test_ingest_tables_writes_dataset_and_manifest(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text(CSV)
    (tmp_path / "p.csv").write_text("a,b\n1,x\n")
    cfg = config_for({"customers": keyed("customers.csv"), "plain": plain("p.csv")})
    out = tmp_path / "out"
    manifest = ingest_tables(cfg, tmp_path, out, T0)

    assert manifest == read_manifest(out)
    assert manifest["tables"]["customers"]["rows"] == 4
    assert manifest["tables"]["plain"]["source_kind"] == "file"
    assert set(manifest) >= {"tables", "sha256", "source_sha256", "ingested_at"}
    back = read_dataset(out)
    assert str(back["customers"]["age"].dtype) == "Int64"  # survives Parquet
    assert str(back["customers"]["event_timestamp"].dtype) == "datetime64[ns, UTC]"


def test_a_failing_table_leaves_nothing_written(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("a,b\n1,x\n")
    cfg = config_for({"good": plain("p.csv"), "bad": plain("missing.csv")})
    with pytest.raises(SeamlessError):
        ingest_tables(cfg, tmp_path, tmp_path / "out", T0)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- hashes


def test_same_plain_csv_twice_gives_same_source_hash(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("a,b\n1,x\n2,y\n3,z\n")
    cfg = config_for({"p": plain("p.csv")})
    first = ingest_tables(cfg, tmp_path, tmp_path / "o1", T0)
    second = ingest_tables(cfg, tmp_path, tmp_path / "o2", T1)
    assert first["source_sha256"] == second["source_sha256"]
    assert first["tables"]["p"]["source_sha256"] == second["tables"]["p"]["source_sha256"]
    # the stored content differs only by ingested_at
    assert first["sha256"] != second["sha256"]
    assert ingest_tables(cfg, tmp_path, tmp_path / "o3", T0)["sha256"] == first["sha256"]


def test_shuffled_rows_give_same_hashes(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    lines = CSV.strip().split("\n")
    (tmp_path / "b.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    (tmp_path / "pa.csv").write_text("a,b\n1,x\n2,y\n3,z\n")
    (tmp_path / "pb.csv").write_text("a,b\n3,z\n1,x\n2,y\n")
    m1 = ingest_tables(
        config_for({"t": keyed("a.csv"), "p": plain("pa.csv")}), tmp_path, tmp_path / "o1", T0
    )
    m2 = ingest_tables(
        config_for({"t": keyed("b.csv"), "p": plain("pb.csv")}), tmp_path, tmp_path / "o2", T0
    )
    assert m1["tables"]["t"]["sha256"] == m2["tables"]["t"]["sha256"]
    assert m1["source_sha256"] == m2["source_sha256"]


def test_csv_and_parquet_of_the_same_data_hash_the_same(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    pd.read_csv(tmp_path / "a.csv", dtype=str).to_parquet(tmp_path / "a.parquet")
    _, from_csv = ingest_table("t", keyed("a.csv"), tmp_path, T0)
    _, from_parquet = ingest_table("t", keyed("a.parquet"), tmp_path, T0)
    assert from_csv["source_sha256"] == from_parquet["source_sha256"]


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    msg = ingest_error("customers", keyed("nope.csv"), tmp_path)
    assert_one_sentence(msg, "Table 'customers'", str(tmp_path / "nope.csv"), "does not exist")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    msg = ingest_error("customers", keyed("e.csv"), tmp_path)
    assert_one_sentence(msg, "Table 'customers'", str(tmp_path / "e.csv"), "is empty")


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text(CSV.split("\n")[0] + "\n")
    msg = ingest_error("customers", keyed("h.csv"), tmp_path)
    assert_one_sentence(msg, "Table 'customers'", "h.csv", "has no rows")


def test_corrupt_parquet(tmp_path: Path) -> None:
    pd.DataFrame({"a": range(100)}).to_parquet(tmp_path / "c.parquet")
    data = (tmp_path / "c.parquet").read_bytes()
    (tmp_path / "c.parquet").write_bytes(data[: len(data) // 2])
    msg = ingest_error("customers", keyed("c.parquet"), tmp_path)
    assert_one_sentence(msg, "Table 'customers'", "c.parquet", "not a readable Parquet file")


def test_csv_with_wrong_delimiter(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text(CSV.replace(",", ";"))
    msg = ingest_error("customers", keyed("s.csv"), tmp_path)
    assert_one_sentence(msg, "s.csv", "looks like it is delimited by ';' not ','")
    ok, _ = ingest_table("customers", keyed("s.csv", delimiter=";"), tmp_path, T0)
    assert len(ok) == 4


def test_a_file_with_one_space_between_values_is_named_and_read(tmp_path: Path) -> None:
    # german.data's shape: values separated by one space, no quotes. Text with spaces in
    # a comma file never counts as space-delimited: ',' already splits it.
    rows = [line.split(",") for line in CSV.splitlines()]
    rows[2][1] = "2024-01-01T02:00:00Z"  # the one timestamp written with a space
    (tmp_path / "g.csv").write_text("\n".join(" ".join(row) for row in rows) + "\n")
    msg = ingest_error("customers", keyed("g.csv"), tmp_path)
    assert_one_sentence(msg, "g.csv", "looks like it is delimited by ' ' not ','")
    ok, _ = ingest_table("customers", keyed("g.csv", delimiter=" "), tmp_path, T0)
    assert len(ok) == 4 and ok["segment"].tolist()[:2] == ["A", "B"]
    assert sniff_delimiter("a,b c\n1,two words\n2,three more\n", ",") is None


@pytest.mark.parametrize("bad", ["", ";;", '"', "\n"])
def test_a_delimiter_is_one_character(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a delimiter: give one character"):
        keyed("c.csv", delimiter=bad)


def test_semicolon_csv_with_commas_in_values_gets_the_hint_and_the_line(tmp_path: Path) -> None:
    # A ';' file whose values hold commas: ',' splits some lines, so the parser fails
    # (not the single-column header check); the hint must still name ';' and the line.
    text = (
        "customer_id;event_timestamp;income;city\n"
        "1;2024-01-01T00:00:00Z;10.5;Oslo\n"
        '2;2024-01-02T00:00:00Z;20.0;"Rome, Italy"\n'
        "3;2024-01-03T00:00:00Z;7.25;Lima, Peru\n"
    )
    (tmp_path / "c.csv").write_text(text)
    msg = ingest_error("customers", keyed("c.csv"), tmp_path)
    assert_one_sentence(msg, "c.csv", "line 3", "delimited by ';' not ','", "delimiter to ';'")


def test_a_row_too_wide_without_a_better_delimiter_is_named(tmp_path: Path) -> None:
    text = "customer_id,event_timestamp,income\n1,2024-01-01T00:00:00Z,3\n2,x,4,5\n"
    (tmp_path / "r.csv").write_text(text)
    msg = ingest_error("customers", keyed("r.csv"), tmp_path)
    assert_one_sentence(
        msg, "data row 2 of", "r.csv", "has 4 fields where the header has 3", "without quotes"
    )
    assert "delimited by" not in msg


def test_a_name_given_twice_in_the_header_is_refused(tmp_path: Path) -> None:
    # pandas would read the second 'age' as 'age.1', Spark as 'age7'.
    lines = CSV.splitlines()
    (tmp_path / "d.csv").write_text("\n".join([lines[0] + ",age", *(x + ",33" for x in lines[1:])]))
    msg = ingest_error("customers", keyed("d.csv"), tmp_path)
    assert_one_sentence(
        msg, "d.csv", "two columns named 'age' (columns 3 and 8 of the header)", "rename one"
    )


def test_a_column_with_neither_name_nor_value_is_left_out_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A delimiter ending every line: pandas would add 'Unnamed: 7', Spark '_c7'.
    (tmp_path / "t.csv").write_text("".join(line + ",\n" for line in CSV.splitlines()))
    (tmp_path / "p.csv").write_text(CSV)
    df, info = ingest_table("customers", keyed("t.csv"), tmp_path, T0)
    _, plain_info = ingest_table("customers", keyed("p.csv"), tmp_path, T0)
    assert info["source_sha256"] == plain_info["source_sha256"]
    assert [c for c in df.columns if c.startswith("Unnamed")] == []
    assert "left out column 8 of" in caplog.text and "no value in any row" in caplog.text


def test_a_nameless_column_holding_values_is_refused(tmp_path: Path) -> None:
    # pandas' to_csv writes its row index under an empty name.
    pd.read_csv(io.StringIO(CSV), dtype=str).to_csv(tmp_path / "i.csv")
    msg = ingest_error("customers", keyed("i.csv"), tmp_path)
    assert_one_sentence(msg, "column 1 of", "i.csv", "no name in the header but holds values")


def test_rows_with_more_or_fewer_fields_than_the_header_are_refused(tmp_path: Path) -> None:
    # pandas took the first column as the index and shifted every value one column over.
    lines = CSV.splitlines()
    (tmp_path / "r.csv").write_text("\n".join([lines[0], *(f"{x}," for x in lines[1:])]))
    msg = ingest_error("customers", keyed("r.csv"), tmp_path)
    assert_one_sentence(
        msg,
        "data row 1 of",
        "has 8 fields where the header has 7",
        "a delimiter ending every data line but not the header",
        "3 other rows too",
    )
    # A file cut off in its last line: pandas padded the row with nulls.
    (tmp_path / "c.csv").write_text(CSV.rstrip("\n")[:-12])
    msg = ingest_error("customers", keyed("c.csv"), tmp_path)
    assert_one_sentence(msg, "data row 4 of", "has 4 fields where the header has 7", "cut short")


def test_missing_required_column(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(CSV.replace(",income", ",salary"))
    msg = ingest_error("customers", keyed("m.csv"), tmp_path)
    assert_one_sentence(msg, "Table 'customers'", "m.csv", "'income'", "missing", "salary")


def test_non_numeric_values_beyond_tolerance(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text(CSV.replace(",41,", ",forty-one,").replace(",55,", ",n/a-ish,"))
    msg = ingest_error("customers", keyed("n.csv"), tmp_path)
    assert_one_sentence(msg, "column 'age'", "2 of 4", "row 2", "'forty-one'", "integers")


def test_infinities_are_unparseable_in_text_and_typed_columns(tmp_path: Path) -> None:
    # "inf" parsed as a float reached the model and crashed init's range expectations.
    (tmp_path / "i.csv").write_text(
        CSV.replace(",1000.5,", ",inf,").replace(",300.25,", ",-Infinity,")
    )
    cfg = keyed("i.csv").model_copy(update={"max_invalid_fraction": 0.5})
    df, info = ingest_table("customers", cfg, tmp_path, T0)
    assert info["invalid_values"] == {"income": 2}
    assert info["invalid_examples"]["income"] == ["inf", "-Infinity"]
    assert df["income"].isna().sum() == 3  # the two, and row 2's empty value
    frame = pd.read_csv(io.StringIO(CSV))
    frame.loc[0, "income"] = float("inf")
    frame.to_parquet(tmp_path / "i.parquet")
    cfg = keyed("i.parquet").model_copy(update={"max_invalid_fraction": 0.5})
    _, info = ingest_table("customers", cfg, tmp_path, T0)
    assert info["invalid_values"] == {"income": 1} and info["invalid_examples"]["income"] == ["inf"]
    msg = ingest_error("customers", keyed("i.parquet"), tmp_path)
    assert_one_sentence(msg, "column 'income'", "1 of 4", "row 1", "inf")


def test_float_in_int_column_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("a,b\n1,x\n2.5,y\n")
    msg = ingest_error("p", plain("f.csv"), tmp_path)
    assert_one_sentence(msg, "column 'a'", "row 2", "'2.5'")


def test_duplicate_entity_timestamp_keys(tmp_path: Path) -> None:
    dup = CSV + "2,2024-01-01T02:00:00+00:00,42,1.0,yes,C,q\n"
    (tmp_path / "d.csv").write_text(dup)
    msg = ingest_error("customers", keyed("d.csv"), tmp_path)
    assert_one_sentence(
        msg,
        "duplicate key customer_id=2, event_timestamp=2024-01-01T02:00:00+00:00",
        "rows 2 and 5",
    )


def test_unparseable_timestamp(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV.replace("2024-01-02,", "next tuesday,"))
    msg = ingest_error("customers", keyed("t.csv"), tmp_path)
    assert_one_sentence(msg, "column 'event_timestamp'", "row 4", "'next tuesday'", "timestamp")


def test_unparseable_timestamp_in_plain_column(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,seen\n1,x,2024-01-01\n2,y,2024-13-45\n")
    cfg = table({"kind": "file", "uri": "t.csv"}, columns={"a": "int", "seen": "timestamp"})
    msg = ingest_error("p", cfg, tmp_path)
    assert_one_sentence(msg, "column 'seen'", "row 2", "'2024-13-45'", "ISO 8601")


def test_empty_key_value(tmp_path: Path) -> None:
    (tmp_path / "k.csv").write_text(CSV.replace("\n3,", "\n,"))
    msg = ingest_error("customers", keyed("k.csv"), tmp_path)
    assert_one_sentence(msg, "key column 'customer_id'", "row 3")


def test_generated_column_already_present(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_text("a,b,row_id\n1,x,9\n")
    msg = ingest_error("p", plain("g.csv"), tmp_path)
    assert_one_sentence(msg, "'row_id'", "entity_column")


@pytest.mark.parametrize("name", ["t.xlsx", "t.data"])
def test_a_spreadsheet_is_named_so(tmp_path: Path, name: str) -> None:
    # Read as CSV, it failed on some later line with a pyarrow message.
    (tmp_path / name).write_bytes(b"PK\x03\x04rest")
    msg = ingest_error("customers", keyed(name), tmp_path)
    assert_one_sentence(msg, name, "is a spreadsheet or ZIP archive", "export it as CSV")
    ok = tmp_path / "c.data"
    ok.write_text(CSV)
    assert len(ingest_table("customers", keyed("c.data"), tmp_path, T0)[0]) == 4


def test_not_utf8_csv(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_bytes(b"a,b\n1,\xff\xfe\n")
    msg = ingest_error("p", plain("x.csv"), tmp_path)
    assert_one_sentence(msg, "x.csv", "not UTF-8", "set the source's encoding", "cp1252")


def test_a_declared_encoding_reads_the_same_values_as_utf8(tmp_path: Path) -> None:
    text = CSV.replace(",A,x", ",Zürich,é").replace(",B,", ",Genève,")
    (tmp_path / "u.csv").write_text(text, encoding="utf-8")
    (tmp_path / "w.csv").write_bytes(text.encode("cp1252"))
    utf8, utf8_info = ingest_table("customers", keyed("u.csv"), tmp_path, T0)
    win, win_info = ingest_table("customers", keyed("w.csv", encoding="cp1252"), tmp_path, T0)
    assert win["segment"].tolist()[:2] == ["Zürich", "Genève"]
    assert win_info["source_sha256"] == utf8_info["source_sha256"]
    pd.testing.assert_frame_equal(win, utf8)
    # The wrong encoding declared: one sentence naming it.
    msg = ingest_error("customers", keyed("u.csv", encoding="ascii"), tmp_path)
    assert_one_sentence(msg, "u.csv", "is not ascii text", "offset")


@pytest.mark.parametrize(
    ("encoding", "why"),
    [("utf-16", "does not write the delimiters and digits as ASCII does"), ("kl", "unknown")],
)
def test_an_encoding_that_cannot_read_a_csv_is_refused(encoding: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        keyed("x.csv", encoding=encoding)


def test_http_file_not_found(tmp_path: Path) -> None:
    with json_api() as api:
        url = api.url("/files/absent.csv")
        msg = ingest_error("p", plain(url), tmp_path)
    assert_one_sentence(msg, "Table 'p'", url, "HTTP 404")


def test_unsupported_uri_scheme(tmp_path: Path) -> None:
    msg = ingest_error("p", plain("s3://bucket/p.csv"), tmp_path)
    assert_one_sentence(msg, "Table 'p'", "s3")


def test_read_source_returns_raw_text_for_declared_columns(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("a,b\n007,x\n")
    raw = read_source(plain("r.csv").source, tmp_path, "p", ["a"])
    assert raw["a"].tolist() == ["007"]


# ---------------------------------------------------------------- missing-value markers


MARKED = "a,b,c,d\n1,NA,null,2.5\n2,x,NA,NA\nNA,y,,3\n"


def test_na_text_is_a_value_unless_declared_a_marker(tmp_path: Path) -> None:
    """pandas' default list ("NA", "null", ...) would erase real values such as Namibia's
    code; by default only an empty field is missing."""
    (tmp_path / "m.csv").write_text(MARKED)
    cfg = table({"kind": "file", "uri": "m.csv"}, columns={"b": "string"})
    df, info = ingest_table("m", cfg, tmp_path, T0)
    assert df["b"].tolist() == ["NA", "x", "y"]
    assert df["c"].tolist()[:2] == ["null", "NA"] and pd.isna(df["c"].iloc[2])
    assert "missing_markers" not in info


def test_na_in_a_typed_column_is_an_invalid_value_by_default(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(MARKED)
    cfg = table({"kind": "file", "uri": "m.csv"}, columns={"a": "int"})
    message = ingest_error("m", cfg, tmp_path)
    assert "column 'a' has 1 of 3 values" in message and "'NA'" in message


def test_declared_markers_are_missing_and_counted(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(MARKED)
    cfg = table(
        {"kind": "file", "uri": "m.csv", "missing_values": ["NA", "null"]},
        columns={"a": "int", "b": "string"},
    )
    df, info = ingest_table("m", cfg, tmp_path, T0)
    assert info["missing_values"] == ["NA", "null"]
    assert info["missing_markers"] == {"a": {"NA": 1}, "b": {"NA": 1}}
    assert info["invalid_values"] == {}
    assert df["a"].tolist()[:2] == [1, 2] and pd.isna(df["a"].iloc[2])
    assert pd.isna(df["b"].iloc[0])
    # Undeclared columns read the markers as missing too, and keep pandas' inferred type.
    assert df["c"].isna().all()
    assert str(df["d"].dtype) == "float64" and pd.isna(df["d"].iloc[1])


def test_run_summary_shows_the_markers_read_as_missing(tmp_path: Path) -> None:
    from pipelines.run_summary import data_lines, data_summary

    (tmp_path / "m.csv").write_text(MARKED)
    cfg = table(
        {"kind": "file", "uri": "m.csv", "missing_values": ["NA", "null"]},
        columns={"a": "int", "b": "string"},
    )
    config = config_for({"m": cfg})
    ingest_tables(config, tmp_path, tmp_path / "run" / "ingest" / "dataset", T0)
    summary = data_summary(tmp_path / "run")
    assert summary["tables"]["m"]["missing_markers"] == {"a": {"NA": 1}, "b": {"NA": 1}}
    assert "m.a: 'NA' x1 read as missing (missing_values)" in data_lines(summary)


def test_markers_with_spaces_around_them_are_missing_too(tmp_path: Path) -> None:
    # The UCI files write ", " between values: " ?" stayed a category "?" in a string
    # column, and an invalid value in a number column, though "?" was declared missing.
    (tmp_path / "m.csv").write_text("a,b,c\n1, ?, 7\n ?, x, ?\n3, y,\t?\n")
    cfg = table(
        {"kind": "file", "uri": "m.csv", "missing_values": ["?"]},
        columns={"a": "int", "b": "string"},
    )
    df, info = ingest_table("m", cfg, tmp_path, T0)
    assert info["missing_markers"] == {"a": {"?": 1}, "b": {"?": 1}}
    assert info["invalid_values"] == {}
    assert df["a"].isna().tolist() == [False, True, False]
    assert df["b"].tolist() == [None, " x", " y"]  # a string keeps its spaces
    assert df["c"].isna().tolist() == [False, True, True]  # undeclared


# ---------------------------------------------------------------- no header row

HEADERLESS = "39, State-gov, 77516, <=50K\n50, ?, 83311, >50K\n38, Private, 215646, <=50K\n"
NAMES = ["age", "workclass", "fnlwgt", "income"]


def headerless(uri: str = "adult.data", **source: object) -> TableConfig:
    return table(
        {"kind": "file", "uri": uri, "column_names": NAMES, **source},
        columns={"age": "int", "workclass": "string", "income": "string"},
    )


def test_a_csv_without_a_header_row_reads_every_line_with_the_given_names(
    tmp_path: Path,
) -> None:
    (tmp_path / "adult.data").write_text(HEADERLESS)
    (tmp_path / "with_header.csv").write_text(",".join(NAMES) + "\n" + HEADERLESS)
    df, info = ingest_table("adult", headerless(missing_values=["?"]), tmp_path, T0)
    assert df["age"].tolist() == [39, 50, 38]  # the first line is data, not lost
    assert df["workclass"].tolist() == [" State-gov", None, " Private"]
    assert info["missing_markers"] == {"workclass": {"?": 1}}
    want, _ = ingest_table(
        "adult",
        table(
            {"kind": "file", "uri": "with_header.csv", "missing_values": ["?"]},
            columns={"age": "int", "workclass": "string", "income": "string"},
        ),
        tmp_path,
        T0,
    )
    pd.testing.assert_frame_equal(df, want)
    # Over HTTP (bytes, as an object store's) too.
    with json_api([]) as api:
        api.files["adult.data"] = HEADERLESS.encode()
        got, _ = ingest_table("adult", headerless(api.url("/files/adult.data")), tmp_path, T0)
    assert got["age"].tolist() == [39, 50, 38]


def test_a_headerless_csv_is_named_when_column_names_are_not_given(tmp_path: Path) -> None:
    (tmp_path / "adult.data").write_text(HEADERLESS)
    cfg = table(
        {"kind": "file", "uri": "adult.data"},
        columns={"age": "int", "workclass": "string", "income": "string"},
    )
    msg = ingest_error("adult", cfg, tmp_path)
    assert_one_sentence(msg, "adult.data", "looks like data", "column_names")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (HEADERLESS + "41, Private\n", ["data row 4 of", "2 fields where column_names lists 4"]),
        ("39, State-gov, 77516, <=50K, extra\n" + HEADERLESS, ["data row 1 of", "5 fields"]),
        ("", ["is empty"]),
        (
            HEADERLESS.replace(", ", ";"),
            ["data row 1", "1 fields", "set the source's delimiter to ';'"],
        ),
    ],
)
def test_a_headerless_row_of_another_width_is_refused(
    tmp_path: Path, content: str, words: list[str]
) -> None:
    (tmp_path / "adult.data").write_text(content)
    assert_one_sentence(ingest_error("adult", headerless(), tmp_path), *words)


def test_column_names_are_refused_for_parquet_and_bad_names(tmp_path: Path) -> None:
    pd.DataFrame({"age": [1], "workclass": ["x"], "fnlwgt": [2], "income": ["y"]}).to_parquet(
        tmp_path / "a.parquet"
    )
    msg = ingest_error("adult", headerless("a.parquet"), tmp_path)
    assert_one_sentence(msg, "a Parquet file, which names its own columns", "column_names")
    for names, words in (([], "at least one"), (["a", "a"], "'a' is given twice")):
        with pytest.raises(ValueError, match=words):
            table({"kind": "file", "uri": "x.csv", "column_names": names})
