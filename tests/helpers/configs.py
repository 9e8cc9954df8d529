"""Small builders for ingest tests: table configs, a whole config, message checks."""

from __future__ import annotations

from typing import Any

from components.common.config import SeamlessConfig, TableConfig

KEYED_COLUMNS = {
    "customer_id": "int",
    "event_timestamp": "timestamp",
    "age": "int",
    "income": "float",
    "member": "bool",
    "segment": "string",
}
"""The keyed table both ingest engines' tests read (entity and timestamp, one of each type)."""


def table(source: dict[str, Any], **kwargs: Any) -> TableConfig:
    """A TableConfig from a source mapping and TableConfig fields."""
    return TableConfig.model_validate({"source": source, **kwargs})


def config_for(tables: dict[str, TableConfig]) -> SeamlessConfig:
    """The smallest valid SeamlessConfig holding `tables`.

    Labels are on the first table, in its entity column (else its first declared one),
    since ingest requires the label column to exist.
    """
    first = next(iter(tables))
    label = tables[first].entity_column or next(iter(tables[first].columns))
    return SeamlessConfig.model_validate(
        {
            "name": "ingest_test",
            "tables": tables,
            "labels": {"table": first, "label_column": label},
            "features": {"views": [], "service": "svc"},
            "model": {"name": "m"},
        }
    )


def assert_one_sentence(message: str, *parts: str) -> None:
    """A user-facing error: one line, one final full stop, naming every one of `parts`."""
    assert "\n" not in message, message
    assert message.endswith((".", "?")), message
    assert "Traceback" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in: {message}"


def labels_only_config() -> SeamlessConfig:
    """A config whose one table is `labels` (customer_id, event_timestamp): what a batch
    scoring run's records need and nothing more."""
    labels = table(
        {"kind": "file", "uri": "x.parquet"},
        columns={"customer_id": "int", "event_timestamp": "timestamp"},
        entity_column="customer_id",
        timestamp_column="event_timestamp",
    )
    return config_for({"labels": labels})
