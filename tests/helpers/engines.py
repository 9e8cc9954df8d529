"""Configs for tests that run the same work on both engines."""

from __future__ import annotations

from components.common.config import SeamlessConfig, default_config_path, load_config


def engine_config(engine: str) -> SeamlessConfig:
    """The bundled demo config on `engine`, Spark in local[2]."""
    base = load_config(default_config_path())
    spark = base.spark.model_copy(update={"master": "local[2]"})
    return base.model_copy(update={"engine": engine, "spark": spark})
