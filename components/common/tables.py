"""A dataset on disk: a folder of named Parquet tables plus a manifest with hashes.

Every stage passes data this way, so KFP `Dataset` artifacts are folders and a
dataset's identity is the sha256 of its normalized content, not its path or mtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.common.durable import write_atomic
from components.common.errors import SeamlessError

MANIFEST = "manifest.json"
# The table of the training-set dataset: written by features, read by train.
TRAINING_TABLE = "training_set"
# Declared column type -> its dtype in every stored table (ingest/normalize.py).
PANDAS_DTYPES: dict[str, str] = {
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "string": "object",
    "timestamp": "datetime64[ns, UTC]",
}


def content_hash(df: pd.DataFrame) -> str:
    """sha256 of the table's content, independent of row order, column order and index."""
    if df.empty and len(df.columns) == 0:
        return hashlib.sha256(b"").hexdigest()
    return hash_of_rows(column_dtypes(df), row_hashes(df))


def parquet_content_hash(path: Path, batch_rows: int = 1 << 17) -> str:
    """`content_hash(pd.read_parquet(path))`, read batch by batch: memory is one batch
    plus 8 bytes a row, not the whole table (a 50M-row table is gigabytes in pandas).
    A file whose batches do not all read back with the same dtypes (or has no rows) is
    hashed whole, so the answer is always the whole-table one."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    total = source.metadata.num_rows
    hashes = np.empty(total, dtype="uint64")
    dtypes: dict[str, str] | None = None
    rows = 0
    for batch in source.iter_batches(batch_size=batch_rows):
        df = batch.to_pandas()
        if dtypes is None:
            dtypes = column_dtypes(df)
        elif column_dtypes(df) != dtypes:
            dtypes = None
            break
        hashes[rows : rows + len(df)] = row_hashes(df)
        rows += len(df)
    if dtypes is None or rows != total:
        return content_hash(pd.read_parquet(path))
    return hash_of_rows(dtypes, hashes, in_place=True)


def column_dtypes(df: pd.DataFrame) -> dict[str, str]:
    """Column -> pandas dtype name, the part of a table's schema its hash covers."""
    return {str(c): str(df[c].dtype) for c in df.columns}


def row_hashes(df: pd.DataFrame) -> np.ndarray:
    """One uint64 per row over the columns in name order; the same for a row wherever
    it sits, so a table hashed in batches gives the hashes of the whole table."""
    cols = sorted(df.columns, key=str)
    norm = df[cols].reset_index(drop=True)
    return pd.util.hash_pandas_object(norm, index=False).to_numpy()


def hash_of_rows(dtypes: Mapping[str, str], hashes: np.ndarray, in_place: bool = False) -> str:
    """`content_hash` from the columns' dtypes and all rows' `row_hashes` (any order);
    `in_place` sorts `hashes` itself instead of a copy."""
    if in_place:
        hashes.sort()
    ordered = hashes if in_place else np.sort(hashes)
    h = hashlib.sha256()
    for c in sorted(dtypes, key=str):
        h.update(f"{c}:{dtypes[c]}\n".encode())
    h.update(ordered.tobytes())
    return h.hexdigest()


def dataset_hash(table_hashes: Mapping[str, str]) -> str:
    """One hash for a set of tables: sha256 over the sorted (name, table hash) pairs."""
    h = hashlib.sha256()
    for name in sorted(table_hashes):
        h.update(f"{name}={table_hashes[name]}\n".encode())
    return h.hexdigest()


TableWriter = Callable[[Path], dict[str, Any]]
"""Writes one table to the path given and returns its `rows`, `columns` and `sha256`."""


def pandas_writer(df: pd.DataFrame) -> TableWriter:
    def write(path: Path) -> dict[str, Any]:
        df.to_parquet(path, index=False)
        return {
            "rows": len(df),
            "columns": [str(c) for c in df.columns],
            "sha256": content_hash(df),
        }

    return write


def write_dataset(
    folder: str | Path,
    tables: Mapping[str, pd.DataFrame],
    info: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write tables as `<folder>/<name>.parquet` and a manifest; all or nothing."""
    return write_dataset_with(folder, {n: pandas_writer(df) for n, df in tables.items()}, info)


def write_dataset_with(
    folder: str | Path,
    writers: Mapping[str, TableWriter],
    info: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write each table with its writer as `<folder>/<name>.parquet`, then the manifest.

    Files are written to a temporary sibling folder that replaces `folder` in one
    rename, so a failure never leaves a half-written dataset behind.
    """
    target = Path(folder)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the dataset from other readers
    except OSError as exc:
        raise SeamlessError(f"Cannot write dataset {target}: {exc.strerror}.") from None
    try:
        entries: dict[str, dict[str, Any]] = {}
        for name, write in writers.items():
            entries[name] = {**write(tmp / f"{name}.parquet"), **dict((info or {}).get(name, {}))}
        manifest = {
            "tables": entries,
            "sha256": dataset_hash({n: e["sha256"] for n, e in entries.items()}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = exc.strerror or type(exc).__name__
        raise SeamlessError(f"Cannot write dataset {target}: {reason}.") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise SeamlessError(
            f"Dataset folder {folder} has no {MANIFEST}; it was not written by Seamless."
        )
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def read_dataset(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read every table of a dataset folder written by `write_dataset`."""
    manifest = read_manifest(folder)
    return {name: pd.read_parquet(Path(folder) / f"{name}.parquet") for name in manifest["tables"]}


def read_table(folder: str | Path, name: str) -> pd.DataFrame:
    path = Path(folder) / f"{name}.parquet"
    if not path.is_file():
        raise SeamlessError(f"Dataset folder {folder} has no table '{name}'.")
    return pd.read_parquet(path)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text so readers see the old file or the new one, never a torn one."""
    write_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write JSON so readers see the old file or the new one, never a torn one."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=str))
