"""Dry validation: ingest + validate with the written config in a temporary folder."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig, load_config
from pipelines.scaffold.common import password_env


@dataclass(frozen=True)
class DryRun:
    """Ingest + validate with the written config, as the training run's first steps do."""

    config: SeamlessConfig
    manifest: dict[str, Any]
    result: Any
    """components.validate.results.ValidationResult"""

    @property
    def rows(self) -> int:
        return sum(int(t["rows"]) for t in self.manifest["tables"].values())

    def coerced(self) -> list[tuple[str, str, int, list[str]]]:
        """(table, column, values turned null at ingest, examples of their text)."""
        out = []
        for table, info in self.manifest["tables"].items():
            examples = info.get("invalid_examples") or {}
            for col, count in (info.get("invalid_values") or {}).items():
                out.append((table, col, int(count), list(examples.get(col, []))))
        return out

    def label_changes(self) -> dict[str, Any]:
        """Mapped label values of the labels table, and those training leaves out
        (empty when none)."""
        info = self.manifest["tables"][self.config.labels.table].get("labels") or {}
        return {k: info[k] for k in ("mapped", "left_out", "left_out_values") if info.get(k)}


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Ingest's warnings about coerced values are in the DryRun; not on the console too."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def dry_validate(config_path: Path, data_dir: Path, password: str | None = None) -> DryRun:
    """Load the config, ingest its tables into a temporary folder and validate them.

    Raises SeamlessError when the config does not load or ingest stops (its sentence).
    `password` fills `${SEAMLESS_DB_PASSWORD}` for this call if the variable is unset.
    """
    from components.common.tables import read_dataset
    from components.ingest.stage import ingest_tables
    from components.validate.validation import validate_tables

    with password_env(password), _quiet("components.ingest"):
        config = load_config(config_path)
        with tempfile.TemporaryDirectory(prefix="seamless-init-") as tmp:
            folder = Path(tmp) / "dataset"
            manifest = ingest_tables(config, data_dir, folder)
            result = validate_tables(config, read_dataset(folder), manifest)
    return DryRun(config, manifest, result)
