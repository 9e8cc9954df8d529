"""The ingest stage as the component calls it: the config's engine picks the implementation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig


def ingest_tables(
    config: SeamlessConfig,
    data_dir: str | Path | None,
    out_folder: str | Path,
    ingested_at: datetime | None = None,
) -> dict[str, Any]:
    """Ingest every table of `config` into the dataset folder `out_folder`; return its manifest.

    `data_dir` anchors relative file paths and SQLite files (None: the current directory).
    `ingested_at` (default now; naive means UTC) fills `ingested_at` in tables without a
    timestamp column. Nothing is written unless every table succeeds. Both engines write
    the same snapshot (ingest.py for `engine: local`, spark_ingest.py for `engine: spark`).
    """
    if config.engine == "spark":
        from components.ingest.spark_ingest import ingest_tables_spark

        return ingest_tables_spark(config, data_dir, out_folder, ingested_at)
    from components.ingest.ingest import ingest_tables_local

    return ingest_tables_local(config, data_dir, out_folder, ingested_at)
