"""What both ingest engines (ingest.py, spark_ingest.py) stamp on the snapshot they write,
kept in one place so the two manifests cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig
from components.common.pii import dataset_record
from components.common.spark import engine_record
from components.common.tables import MANIFEST, dataset_hash, write_json_atomic


def utc_stamp(ingested_at: datetime | None) -> datetime:
    """The run's ingestion time: now when not given, a naive time read as UTC."""
    if ingested_at is None:
        return datetime.now(UTC)
    return ingested_at.replace(tzinfo=UTC) if ingested_at.tzinfo is None else ingested_at


def finish_manifest(
    config: SeamlessConfig, out_folder: str | Path, manifest: dict[str, Any], stamp: datetime
) -> dict[str, Any]:
    """Add the dataset-wide keys to a written dataset's manifest and rewrite it."""
    manifest["source_sha256"] = dataset_hash(
        {n: e["source_sha256"] for n, e in manifest["tables"].items()}
    )
    manifest["ingested_at"] = stamp.isoformat()
    manifest.update(engine_record(config))
    manifest.update(dataset_record(manifest["tables"]))
    # The dataset writers have no hook for top-level keys; rewriting the manifest is atomic.
    write_json_atomic(Path(out_folder) / MANIFEST, manifest)
    return manifest
