"""Shared by the scaffold modules: the inference thresholds, number and list wording,
and small value helpers."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from components.common.config import TableConfig
from pipelines.output import counted

BUDGET = float(TableConfig.model_fields["max_invalid_fraction"].default)
"""Share of a column's values that may fail to parse for its type to be inferred
(ingest's default `max_invalid_fraction`; those values become null at ingest)."""
MAX_SET = 20
"""A string column with at most this many distinct values gets an allowed-set check."""
MAX_CATEGORIES = 100
"""A string column with more distinct values is left out of the features."""
MARGIN = 0.1
"""Numeric ranges are widened by this share of the observed range on each side."""
MIN_ROWS = 100
"""The critical row-count floor (or the profiled row count, if smaller)."""
PASSWORD_VAR = "SEAMLESS_DB_PASSWORD"
"""Environment variable the written config reads a database password from."""

INT_TEXT = re.compile(r"[+-]?\d+")
LEADING_ZERO = re.compile(r"[+-]?0\d+")


def n(count: int) -> str:
    return f"{count:,}"


def rows(count: int) -> str:
    return counted(count, "row")


def show(values: list[Any] | tuple[Any, ...], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def identifier(text: str, fallback: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_").lower()
    if not name:
        return fallback
    return f"t_{name}" if name[0].isdigit() else name


@contextmanager
def password_env(password: str | None) -> Iterator[None]:
    """`${SEAMLESS_DB_PASSWORD}` filled with the --from URL's password while the written
    config is loaded, unless the variable is set already."""
    if password is None or PASSWORD_VAR in os.environ:
        yield
        return
    os.environ[PASSWORD_VAR] = password
    try:
        yield
    finally:
        os.environ.pop(PASSWORD_VAR, None)
