"""Names the backends would confuse, refused in one sentence where the user can fix them:
columns equal but for case (DuckDB, Spark and Great Expectations match names without
case), a feature served twice; and the config as a pipeline parameter, packed when it is
too long for a step's argument."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from components.common.config import parse_config
from components.common.config_param import MARKER, PACKED_MAX_BYTES, packed, unpacked
from components.common.errors import SeamlessError
from components.common.stage import stage_config
from components.ingest.stage import ingest_tables
from pipelines.scaffold import build_scaffold
from tests.helpers.configs import assert_one_sentence

pytestmark = pytest.mark.unit

CONFIG = """
name: names
tables:
  a:
    source: {kind: file, uri: a.csv}
    entity_column: id
    columns: {id: int, age: int, y: int, EXTRA}
  b:
    source: {kind: file, uri: b.csv}
    entity_column: id
    columns: {id: int, score: float, Y: int, age: int}
labels: {table: a, label_column: y}
features:
  service: s
  views: [{name: va, table: a, features: [age]}, {name: vb, table: b, features: [FEATURES]}]
model: {name: m}
"""


def _config(extra: str = "note: string", features: str = "score") -> str:
    return CONFIG.replace("EXTRA", extra).replace("FEATURES", features)


@pytest.mark.parametrize(
    ("extra", "features", "parts"),
    [
        ("Age: int", "score", ("tables.a.columns 'age' and 'Age' differ only in case",)),
        ("ID: int", "score", ("tables.a.columns 'id' and 'ID'",)),
        ("note: string", "age", ("views 'vb' serves 'age'", "a feature of view 'va'")),
        ("note: string", "Y", ("views 'vb' serves 'Y'", "also the label column")),
    ],
)
def test_names_equal_but_for_case_are_refused(
    extra: str, features: str, parts: tuple[str, ...]
) -> None:
    with pytest.raises(SeamlessError) as info:
        parse_config(_config(extra, features))
    assert_one_sentence(str(info.value), *parts, "whatever their case")


def test_a_source_column_equal_but_for_case_to_a_declared_one_stops_ingest(
    tmp_path: Path,
) -> None:
    # 'AGE' is not declared, but Great Expectations would check it for 'age', and DuckDB
    # would rename one of them: refused before anything is written.
    (tmp_path / "a.csv").write_text("id,age,y,note,AGE\n1,30,0,x,3\n2,40,1,y,4\n")
    (tmp_path / "b.csv").write_text("id,score,Y,age\n1,0.5,0,3\n2,0.7,1,4\n")
    with pytest.raises(SeamlessError) as info:
        ingest_tables(parse_config(_config()), tmp_path, tmp_path / "out", datetime.now(UTC))
    assert_one_sentence(str(info.value), "Table 'a'", "'age' and 'AGE' differ only in case")
    assert not (tmp_path / "out").exists()


def test_init_refuses_such_a_table(tmp_path: Path) -> None:
    rows = "".join(f"{i},{20 + i % 50},{i % 5},{'yes' if i % 3 else 'no'}\n" for i in range(200))
    (tmp_path / "t.csv").write_text("id,Age,age,churn\n" + rows)
    with pytest.raises(SeamlessError) as info:
        build_scaffold(str(tmp_path / "t.csv"), "churn", name="t", data_dir=tmp_path)
    assert_one_sentence(str(info.value), "'Age' and 'age' differ only in case", "rename one")


def test_a_long_config_travels_packed_and_reads_back_the_same() -> None:
    text = _config() + "".join(f"# {i:06d} {'y' * 70}\n" for i in range(3000))
    value = packed(text)
    assert value.startswith(MARKER) and len(value) < len(text) / 4
    assert unpacked(value) == text
    assert stage_config(value) == parse_config(text)
    small = _config()
    assert packed(small) == small == unpacked(small)  # readable in the KFP UI


def test_a_config_too_long_even_packed_or_a_broken_one_is_one_sentence() -> None:
    import os

    noise = os.urandom(PACKED_MAX_BYTES).hex()  # does not compress
    with pytest.raises(SeamlessError) as info:
        packed(_config() + f"# {noise}\n", "churn.yaml")
    assert_one_sentence(str(info.value), "churn.yaml is", "KiB compressed", "remove comments")
    with pytest.raises(SeamlessError) as info:
        stage_config(MARKER + "not base64!")
    assert_one_sentence(str(info.value), "config_yaml", "gzip-compressed, base64-encoded")
