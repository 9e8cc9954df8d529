"""Columns written another way than ISO 8601 and plain numbers (`ColumnFormat`): US or
European dates, thousands separators, decimal commas. Same data, same snapshot hash; a
value not written that way is an unparseable value like any other, named in one sentence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from components.common.config import ColumnFormat, parse_config
from components.common.errors import SeamlessError
from components.common.tables import read_dataset
from components.ingest.normalize import convert
from components.ingest.stage import ingest_tables
from tests.helpers.configs import assert_one_sentence

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

CONFIG = """
name: formats
tables:
  customers:
    source: {{kind: file, uri: customers.csv}}
    entity_column: customer_id
    timestamp_column: signup
    columns:
      customer_id: int
      signup: {signup}
      charges: {charges}
      visits: {visits}
      churned: int
labels: {{table: customers, label_column: churned}}
features: {{service: svc, views: [{{name: v, table: customers, features: [charges, visits]}}]}}
model: {{name: m}}
"""

ISO = """customer_id,signup,charges,visits,churned
1,2024-01-05,1234.5,1200,0
2,2023-12-31 18:30,89.25,3,1
3,2024-02-29,1234567.0,1000000,0
"""
US = """customer_id,signup,charges,visits,churned
1,01/05/2024,"1,234.50","1,200",0
2,12/31/2023 18:30,89.25,3,1
3,2/29/2024,"1,234,567.00","1,000,000",0
"""
EUROPEAN = """customer_id;signup;charges;visits;churned
1;05.01.2024 00:00;1.234,5;1.200;0
2;31.12.2023 18:30;89,25;3;1
3;29.02.2024 00:00;1.234.567,0;1.000.000;0
"""


def _config(signup: str = "timestamp", charges: str = "float", visits: str = "int") -> str:
    return CONFIG.format(signup=signup, charges=charges, visits=visits)


def _ingest(tmp_path: Path, text: str, config: str, name: str) -> dict:
    (tmp_path / "customers.csv").write_text(text)
    return ingest_tables(parse_config(config), tmp_path, tmp_path / name, T0)


def test_european_writing_gives_the_iso_snapshot(tmp_path: Path) -> None:
    iso = _ingest(tmp_path, ISO, _config(), "iso")
    europe = _ingest(
        tmp_path,
        EUROPEAN,
        _config(
            '{type: timestamp, format: "%d.%m.%Y %H:%M"}',
            '{type: float, thousands: ".", decimal: ","}',
            '{type: int, thousands: "."}',
        ).replace("customers.csv}", "customers.csv, delimiter: ';'}"),
        "europe",
    )
    assert europe["tables"]["customers"]["sha256"] == iso["tables"]["customers"]["sha256"]
    frame = read_dataset(tmp_path / "europe")["customers"]
    assert frame["charges"].tolist() == [1234.5, 89.25, 1234567.0]
    assert frame["visits"].tolist() == [1200, 3, 1000000]
    assert frame["signup"].iloc[1] == pd.Timestamp("2023-12-31T18:30:00Z")


US_DATES_ONLY = US.replace("12/31/2023 18:30", "12/31/2023")


def test_us_dates_read_by_their_format(tmp_path: Path) -> None:
    cfg = _config(
        '{type: timestamp, format: "%m/%d/%Y"}',
        '{type: float, thousands: ","}',
        '{type: int, thousands: ","}',
    )
    manifest = _ingest(tmp_path, US_DATES_ONLY, cfg, "us")
    frame = read_dataset(tmp_path / "us")["customers"]
    assert [t.date().isoformat() for t in frame["signup"]] == [
        "2024-01-05",
        "2023-12-31",
        "2024-02-29",
    ]
    assert frame["charges"].tolist() == [1234.5, 89.25, 1234567.0]
    assert manifest["tables"]["customers"]["invalid_values"] == {}


def test_a_value_not_written_that_way_is_named(tmp_path: Path) -> None:
    cfg = _config(
        '{type: timestamp, format: "%m/%d/%Y"}',
        '{type: float, thousands: ","}',
        '{type: int, thousands: ","}',
    )
    with pytest.raises(SeamlessError) as info:
        _ingest(tmp_path, US, cfg, "us")  # the key column tolerates none
    assert_one_sentence(
        str(info.value), "key column 'signup'", "row 2", "'12/31/2023 18:30'", "like 11/28/2024"
    )
    # A group of two digits is not a thousands separator: 1,23 is refused, never 123.
    wrong = US_DATES_ONLY.replace('"1,234.50"', '"1,23"')
    with pytest.raises(SeamlessError) as info:
        _ingest(tmp_path, wrong, cfg, "wrong")
    assert_one_sentence(
        str(info.value), "column 'charges'", "1 of 3", "row 1", "'1,23'", "like 1,234,567.89"
    )
    assert not (tmp_path / "us").exists() and not (tmp_path / "wrong").exists()


CURRENCY = """customer_id,signup,charges,visits,churned
1,2024-01-05,"$1,234.50",1200%,0
2,2023-12-31 18:30,$89.25,3 %,1
3,2024-02-29,"$ 1,234,567",1000000%,0
"""


def test_currency_and_percent_values_give_the_iso_snapshot(tmp_path: Path) -> None:
    iso = _ingest(tmp_path, ISO, _config(), "iso")
    cfg = _config(
        "timestamp", '{type: float, prefix: "$", thousands: ","}', '{type: int, suffix: "%"}'
    )
    money = _ingest(tmp_path, CURRENCY, cfg, "money")
    assert money["tables"]["customers"]["sha256"] == iso["tables"]["customers"]["sha256"]
    fmt = ColumnFormat(prefix="$", thousands=",")
    signs = convert("float", pd.Series(["-$5.00", "$-5", "+$5", "-$-5", "5", "$5$"]), fmt)
    assert signs.tolist()[:3] == [-5.0, -5.0, 5.0] and signs[3:].isna().all()
    euro = convert("float", pd.Series(["12,50 €", "1.234,5€"]), ColumnFormat(
        suffix="€", thousands=".", decimal=","))  # fmt: skip
    assert euro.tolist() == [12.5, 1234.5]
    # A value without the symbol is not written that way: named with the expected form.
    with pytest.raises(SeamlessError) as info:
        _ingest(tmp_path, CURRENCY.replace("$89.25", "89.25"), cfg, "bare")
    assert_one_sentence(str(info.value), "column 'charges'", "row 2", "'89.25'", "$1,234,567.89")


def test_local_times_in_a_declared_zone_become_utc() -> None:
    berlin = ColumnFormat(timezone="Europe/Berlin")
    values = [
        "2024-01-15 10:00:00",  # winter: UTC+1
        "2024-07-15T10:00",  # summer: UTC+2
        "2024-03-31 02:30:00",  # skipped by the clocks: no such local time
        "2024-10-27 02:30:00",  # repeated by the clocks: two instants
        "2024-01-15T10:00:00Z",  # an offset is taken as written
    ]
    got = convert("timestamp", pd.Series(values), berlin)
    assert got[0] == pd.Timestamp("2024-01-15T09:00Z") and got[1] == pd.Timestamp(
        "2024-07-15T08:00Z"
    )
    assert got[2:4].isna().all() and got[4] == pd.Timestamp("2024-01-15T10:00Z")
    us = ColumnFormat(format="%m/%d/%Y %H:%M", timezone="America/New_York")
    assert convert("timestamp", pd.Series(["02/29/2024 00:00"]), us)[0] == pd.Timestamp(
        "2024-02-29T05:00Z"
    )
    # Typed values (Parquet, a database) are taken as they are: naive ones in UTC.
    typed = pd.Series(pd.to_datetime(["2024-01-15 10:00"]))
    assert convert("timestamp", typed, berlin)[0] == pd.Timestamp("2024-01-15T10:00Z")


def test_accounting_negatives_in_parentheses() -> None:
    # Accounting exports write -1,234.50 as (1,234.50), with the symbol inside or out.
    fmt = ColumnFormat(thousands=",", prefix="$", negative_parentheses=True)
    values = ["($1,234.50)", "$ (7.25)", "$(0.5)", "$3", "(-$5)", "($-5)", "(5)", "$()", "$(5"]
    got = convert("float", pd.Series(values), fmt).tolist()
    assert got[:4] == [-1234.5, -7.25, -0.5, 3.0] and pd.Series(got[4:]).isna().all()
    plain = convert("int", pd.Series(["(12)", "( 3 )", "(18%)"]), ColumnFormat(
        negative_parentheses=True))  # fmt: skip
    assert plain.tolist()[:2] == [-12, -3] and pd.isna(plain.iloc[2])
    # Without the key, parentheses do not parse (as before).
    assert convert("float", pd.Series(["(12)"]), ColumnFormat(thousands=",")).isna().all()


def test_typed_values_ignore_the_text_format() -> None:
    # Parquet or a database hands over typed values: the format is for text only.
    fmt = ColumnFormat(format="%m/%d/%Y", thousands=None)
    stamps = pd.Series(pd.to_datetime(["2024-01-05"]))
    assert convert("timestamp", stamps, fmt).iloc[0] == pd.Timestamp("2024-01-05T00:00:00Z")
    numbers = pd.Series([1234.5, None])
    assert convert("float", numbers, ColumnFormat(thousands=",")).tolist()[0] == 1234.5
    spaced = pd.Series(["1\u202f234,5", "3 456", "12 34"])
    out = convert("float", spaced, ColumnFormat(thousands=" ", decimal=","))
    assert out.tolist()[:2] == [1234.5, 3456.0] and pd.isna(out.iloc[2])
    offsets = convert(
        "timestamp", pd.Series(["05.01.2024 10:00+0100"]), ColumnFormat(format="%d.%m.%Y %H:%M%z")
    )
    assert offsets.iloc[0] == pd.Timestamp("2024-01-05T09:00:00Z")


@pytest.mark.parametrize(
    ("charges", "parts"),
    [
        ('{type: float, format: "%d"}', ("columns.charges", "format applies to timestamp")),
        ('{type: float, thousands: ",", decimal: ","}', ("charges", "',' is also the decimal")),
        ('{type: float, thousands: ";"}', ("thousands",)),
        ('{type: float, thousands: "."}', ("also the decimal mark", "set decimal")),
        ('{type: float, currency: "$"}', ("columns.charges", "unknown key 'currency'", "unit")),
        ("{type: float, unit: s}", ("columns.charges", "unit applies to timestamp")),
        ('{type: float, prefix: "-$"}', ("columns.charges", "without digits, signs")),
        ('{type: float, suffix: " "}', ("columns.charges", "text around the number")),
    ],
)
def test_a_format_that_cannot_apply_is_refused(charges: str, parts: tuple[str, ...]) -> None:
    with pytest.raises(SeamlessError) as info:
        parse_config(_config(charges=charges))
    for part in parts:
        assert part in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("signup", "visits", "parts"),
    [
        ('{type: timestamp, format: "%Q/%d"}', "int", ("columns.signup", "'%Q/%d'", "strptime")),
        ('{type: timestamp, format: "date"}', "int", ("no % code",)),
        ("timestamp", '{type: int, decimal: ","}', ("columns.visits", "decimal applies to float")),
        ('{type: timestamp, unit: s, format: "%d"}', "int", ("unit (Unix time) and format",)),
        ("{type: timestamp, unit: h}", "int", ("signup.unit", "'s', 'ms'")),
        ("timestamp", '{type: string, thousands: ","}', ("thousands applies to int and float",)),
        ('{type: timestamp, suffix: "Z"}', "int", ("suffix applies to int and float",)),
        ("{type: timestamp, negative_parentheses: true}", "int", ("negative_parentheses applies",)),
        ("{type: timestamp, timezone: Mars/Olympus}", "int", ("unknown time zone 'Mars/Olympus'",)),
        ("{type: timestamp, unit: s, timezone: UTC}", "int", ("unit (Unix time, always UTC)",)),
        ("timestamp", "{type: int, timezone: UTC}", ("timezone applies to timestamp",)),
    ],
)
def test_a_format_that_does_not_fit_its_type_is_refused(
    signup: str, visits: str, parts: tuple[str, ...]
) -> None:
    with pytest.raises(SeamlessError) as info:
        parse_config(_config(signup=signup, visits=visits))
    for part in parts:
        assert part in str(info.value), str(info.value)


def test_formats_written_on_the_table_or_the_column_agree() -> None:
    text = _config() + ""
    on_table = text.replace(
        "    columns:\n", '    formats: {signup: {format: "%m/%d/%Y"}}\n    columns:\n'
    )
    assert parse_config(on_table).tables["customers"].formats["signup"].format == "%m/%d/%Y"
    both = on_table.replace("signup: timestamp", 'signup: {type: timestamp, format: "%d/%m/%Y"}')
    with pytest.raises(SeamlessError) as info:
        parse_config(both)
    assert "formats.signup" in str(info.value) and "write it once" in str(info.value)
    undeclared = text.replace(
        "    columns:\n", "    formats: {when: {format: '%Y'}}\n    columns:\n"
    )
    with pytest.raises(SeamlessError) as info:
        parse_config(undeclared)
    assert "formats names 'when'" in str(info.value)


UNIX = {  # ISO's signup times as Unix time
    "s": ["1704412800", "1704047400", "1709164800"],
    "ms": ["1704412800000", "1704047400000.0", "1709164800000"],
    "ns": ["1704412800000000000", "1704047400000000000", "1709164800000000000"],
}


@pytest.mark.parametrize("unit", sorted(UNIX))
def test_unix_time_in_any_unit_gives_the_iso_snapshot(tmp_path: Path, unit: str) -> None:
    iso = _ingest(tmp_path, ISO, _config(), "iso")
    text = ISO
    iso_times = ("2024-01-05", "2023-12-31 18:30", "2024-02-29")
    for written, count in zip(iso_times, UNIX[unit], strict=True):
        text = text.replace(f",{written},", f",{count},")
    unix = _ingest(tmp_path, text, _config(f"{{type: timestamp, unit: {unit}}}"), unit)
    assert unix["tables"]["customers"]["sha256"] == iso["tables"]["customers"]["sha256"]
    # A Parquet int64 column of the same counts too.
    frame = pd.read_csv(tmp_path / "customers.csv")
    frame["signup"] = frame["signup"].astype("int64")
    frame.to_parquet(tmp_path / "customers.parquet")
    cfg = _config(f"{{type: timestamp, unit: {unit}}}").replace(".csv}", ".parquet}")
    typed = ingest_tables(parse_config(cfg), tmp_path, tmp_path / f"{unit}-pq", T0)
    assert typed["tables"]["customers"]["sha256"] == iso["tables"]["customers"]["sha256"]


def test_a_value_that_is_not_unix_time_is_named(tmp_path: Path) -> None:
    text = ISO.replace(",2024-01-05,", ",1704412800,").replace(",2024-02-29,", ",1709164800,")
    with pytest.raises(SeamlessError) as info:
        _ingest(tmp_path, text, _config("{type: timestamp, unit: s}"), "s")
    assert_one_sentence(
        str(info.value), "key column 'signup'", "row 2", "'2023-12-31 18:30'", "like 1732801506"
    )


def test_unix_time_fractions_signs_and_bounds() -> None:
    raw = pd.Series(
        ["1.5", "-0.5", "-1.25", "0.123456789", "0.1234567891", "99999999999", "1e9", "x", None]
    )
    out = convert("timestamp", raw, ColumnFormat(unit="s"))
    ns = [None if pd.isna(t) else t.value for t in out]
    # Digits below a nanosecond, years past 2262 and exponents do not parse.
    assert ns == [1_500_000_000, -500_000_000, -1_250_000_000, 123_456_789] + [None] * 5
    # Nanosecond counts stay exact beside a value that does not parse.
    ns_text = pd.Series(["1704412800123456789", "x", None, "-1"])
    exact = convert("timestamp", ns_text, ColumnFormat(unit="ns"))
    assert exact.iloc[0].value == 1704412800123456789 and exact.iloc[3].value == -1
    assert exact.iloc[1:3].isna().all()
    ms = convert("timestamp", pd.Series([1.5, None]), ColumnFormat(unit="ms"))
    assert ms.iloc[0].value == 1_500_000 and pd.isna(ms.iloc[1])
    assert convert("timestamp", pd.Series([True]), ColumnFormat(unit="s")).isna().all()
