"""Ingest reads its sources from s3:// (Ceph RGW on loopback, see rgw.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from components.common import storage
from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.ingest.ingest import ingest_table
from components.ingest.stage import ingest_tables
from tests.helpers.configs import table

pytestmark = pytest.mark.storage

CSV_PART_1 = "a,b\n1,x\n2,y\n"
CSV_PART_2 = "a,b\n3,z\n"


def _csv_table(uri: str):  # type: ignore[no-untyped-def]
    return table({"kind": "file", "uri": uri}, columns={"a": "int", "b": "string"})


def test_bundled_config_ingests_the_same_data_from_s3_as_from_disk(
    bucket: str, config: SeamlessConfig, demo_data: Path, tmp_path: Path
) -> None:
    for path in sorted(demo_data.iterdir()):
        if path.is_file():
            storage.put_file(path, f"s3://{bucket}/demo/{path.name}")
    remote = ingest_tables(config, f"s3://{bucket}/demo", tmp_path / "from-s3")
    local = ingest_tables(config, demo_data, tmp_path / "from-disk")
    assert remote["source_sha256"] == local["source_sha256"]
    labels = config.labels.table
    assert remote["tables"][labels]["source"] == f"s3://{bucket}/demo/{labels}.parquet"
    assert remote["tables"][labels]["rows"] == local["tables"][labels]["rows"]


def test_a_prefix_reads_every_data_object_under_it(bucket: str) -> None:
    storage.write_bytes(f"s3://{bucket}/parts/part-0001.csv", CSV_PART_1.encode())
    storage.write_bytes(f"s3://{bucket}/parts/part-0002.csv", CSV_PART_2.encode())
    storage.write_bytes(f"s3://{bucket}/parts/_SUCCESS", b"")
    df, info = ingest_table("t", _csv_table(f"s3://{bucket}/parts/"), None)
    assert df["a"].tolist() == [1, 2, 3]
    assert info["source"] == f"s3://{bucket}/parts/"


def test_gzipped_csv_objects_are_read(bucket: str) -> None:
    # pandas infers compression from a path only; an object arrives as bytes.
    storage.write_bytes(f"s3://{bucket}/gz/part-1.csv.gz", gzip.compress(CSV_PART_1.encode()))
    storage.write_bytes(f"s3://{bucket}/gz/part-2.csv.gz", gzip.compress(CSV_PART_2.encode()))
    df, _ = ingest_table("t", _csv_table(f"s3://{bucket}/gz/"), None)
    assert df["a"].tolist() == [1, 2, 3] and df["b"].tolist() == ["x", "y", "z"]
    cut = gzip.compress(CSV_PART_1.encode())[:-9]
    storage.write_bytes(f"s3://{bucket}/gz-cut/t.csv.gz", cut)
    with pytest.raises(SeamlessError) as err:
        ingest_table("t", _csv_table(f"s3://{bucket}/gz-cut/t.csv.gz"), None)
    assert "cannot be decompressed or read" in str(err.value)


def test_json_parts_under_a_prefix_may_order_or_leave_out_keys(bucket: str) -> None:
    # Records name their values: as within one file, a part's keys are its own.
    storage.write_bytes(f"s3://{bucket}/js/part-1.jsonl", b'{"a": 1, "b": "x"}\n{"a": 2}\n')
    storage.write_bytes(f"s3://{bucket}/js/part-2.jsonl.gz", gzip.compress(b'{"b": "z", "a": 3}\n'))
    df, _ = ingest_table("t", _csv_table(f"s3://{bucket}/js/"), None)
    assert df["a"].tolist() == [1, 2, 3] and df["b"].tolist() == ["x", None, "z"]


def test_an_empty_prefix_is_one_sentence(bucket: str) -> None:
    with pytest.raises(SeamlessError) as err:
        ingest_table("t", _csv_table(f"s3://{bucket}/nothing/"), None)
    assert str(err.value) == (
        f"Table 't': the prefix s3://{bucket}/nothing/ holds no CSV, Parquet or JSON object "
        "(0 other objects)."
    )


def test_missing_object_under_an_s3_data_dir_is_one_sentence(bucket: str) -> None:
    with pytest.raises(SeamlessError) as err:
        ingest_table("t", _csv_table("absent.csv"), f"s3://{bucket}/data")
    assert (
        str(err.value) == f"Table 't': cannot read s3://{bucket}/data/absent.csv: no such object."
    )


def test_missing_bucket_is_one_sentence(s3_env: dict[str, str]) -> None:
    with pytest.raises(SeamlessError) as err:
        ingest_table("t", _csv_table("s3://no-such-bucket-x/a.csv"), None)
    assert str(err.value) == (
        "Table 't': cannot read s3://no-such-bucket-x/a.csv: bucket 'no-such-bucket-x' "
        "does not exist."
    )


def test_relative_path_cannot_leave_an_s3_data_dir(bucket: str) -> None:
    with pytest.raises(SeamlessError) as err:
        ingest_table("t", _csv_table("../other/a.csv"), f"s3://{bucket}/data")
    assert str(err.value) == (
        f"Table 't': relative path ../other/a.csv points outside the data directory "
        f"s3://{bucket}/data."
    )
