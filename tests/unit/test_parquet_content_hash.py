"""A stored table's hash read batch by batch equals the whole-table hash.

The snapshot store checks every table it keeps against the manifest; it used to read
each table whole into pandas (gigabytes for tens of millions of rows), and now hashes the
file batch by batch. These tables hold every stored dtype, nulls, a categorical column,
and files whose batches would read back with different dtypes (hashed whole instead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.common.tables import content_hash, parquet_content_hash


def _stored_table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ids = pd.array(rng.integers(-(2**62), 2**62, rows), dtype="Int64")
    ids[::7] = pd.NA
    flags = pd.array(rng.integers(0, 2, rows).astype(bool), dtype="boolean")
    flags[::5] = pd.NA
    text = pd.Series(rng.choice(["a", "é", "long " * 20, ""], rows), dtype="object")
    text[::3] = None
    amounts = rng.normal(size=rows)
    amounts[::11] = np.nan
    return pd.DataFrame(
        {
            "id": ids,
            "amount": amounts,
            "flag": flags,
            "text": text,
            "ts": pd.date_range("2024-01-01", periods=rows, freq="37s", tz="UTC"),
            "kind": pd.Categorical(rng.choice(["x", "y", "z"], rows)),
        }
    )


@pytest.mark.parametrize("batch_rows", [1, 97, 1 << 17])
def test_batched_hash_equals_the_whole_table_hash(tmp_path: Path, batch_rows: int) -> None:
    path = tmp_path / "t.parquet"
    _stored_table(2_000).to_parquet(path, index=False, row_group_size=300)
    assert parquet_content_hash(path, batch_rows) == content_hash(pd.read_parquet(path))


def test_batches_with_other_dtypes_and_empty_files_are_hashed_whole(tmp_path: Path) -> None:
    # No pandas metadata: int64 in the first batch, float64 where the second has a null.
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(pa.table({"n": pa.array([1, 2, 3, None], pa.int64())}), mixed)
    assert pd.read_parquet(mixed)["n"].dtype == "float64"
    assert parquet_content_hash(mixed, batch_rows=2) == content_hash(pd.read_parquet(mixed))
    empty = tmp_path / "empty.parquet"
    _stored_table(10).iloc[:0].to_parquet(empty, index=False)
    assert parquet_content_hash(empty) == content_hash(pd.read_parquet(empty))


def test_a_changed_value_changes_the_hash(tmp_path: Path) -> None:
    table = _stored_table(500)
    table.to_parquet(tmp_path / "a.parquet", index=False)
    table.loc[250, "amount"] = 1.5
    table.to_parquet(tmp_path / "b.parquet", index=False)
    assert parquet_content_hash(tmp_path / "a.parquet", 64) != parquet_content_hash(
        tmp_path / "b.parquet", 64
    )
