"""Helpers every component body uses: config parsing and one-sentence failures."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from components.common.config import SeamlessConfig, parse_config
from components.common.config_param import unpacked
from components.common.env import disable_telemetry
from components.common.errors import SeamlessError


def stage_config(config_yaml: str) -> SeamlessConfig:
    """Parse the pipeline's `config_yaml` parameter; errors name that parameter."""
    disable_telemetry()
    return parse_config(unpacked(config_yaml), origin="pipeline parameter config_yaml")


@contextmanager
def clean_errors(stage: str) -> Iterator[None]:
    """Turn a SeamlessError into one line on stderr and exit status 1 (no traceback)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        yield
    except SeamlessError as exc:
        message = f"seamless {stage} failed: {exc}"
        print(message, file=sys.stderr, flush=True)
        # The local runner shows this sentence instead of digging it out of step logs.
        error_file = os.environ.get("SEAMLESS_ERROR_FILE")
        if error_file:
            with open(error_file, "a", encoding="utf-8") as fh:
                fh.write(message + "\n")
        raise SystemExit(1) from None
