"""Batch scoring reads its input from and writes its scores to a real S3 server (Ceph
RGW), as on a cluster whose pods have no lasting disk."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.batch.stage import run_batch_scoring
from components.common.config import SeamlessConfig
from components.common.storage import EPHEMERAL_DISK_ENV, read_bytes, write_bytes
from tests.serving.workspace import built, cfg, trained

pytestmark = [pytest.mark.storage, pytest.mark.slow]
__all__ = ["built", "cfg", "trained"]  # module fixtures


def test_input_and_scores_in_object_storage(
    built: dict[str, Any],
    cfg: SeamlessConfig,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root: Path = built["workspace"]
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("SEAMLESS_FEAST_REPO", str(root / "feast"))
    key, ts = cfg.entity_key(), cfg.timestamp_key(cfg.labels.table)
    rows = built["training"][[key, ts]].head(300).reset_index(drop=True)
    # A Parquet folder of two parts, as Spark or pyarrow datasets write them.
    for n, part in enumerate((rows.iloc[:150], rows.iloc[150:])):
        buf = io.BytesIO()
        part.to_parquet(buf, index=False)
        write_bytes(f"s3://{bucket}/in/rows/part-{n}.parquet", buf.getvalue())
    local = tmp_path / "local.parquet"
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    run_batch_scoring(cfg, str(tmp_path / "rows.parquet"), str(local), timestamp_column=ts)

    monkeypatch.setenv(EPHEMERAL_DISK_ENV, "true")  # a pod: only object storage lasts
    out = f"s3://{bucket}/scores/2025-12-31.parquet"
    result = run_batch_scoring(cfg, f"s3://{bucket}/in/rows", out, timestamp_column=ts)
    remote = pd.read_parquet(io.BytesIO(read_bytes(out)))
    want = pd.read_parquet(local)
    assert result.rows == 300 and result.output == out
    assert remote[key].tolist() == want[key].tolist()  # the parts in order
    assert remote["score"].tolist() == want["score"].tolist()
