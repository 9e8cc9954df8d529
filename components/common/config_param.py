"""The config as a pipeline parameter (`config_yaml`), small enough for a step's argument.

Every KFP step gets its parameters in one command-line argument (the executor input),
and Linux caps one argument at 128 KiB: a config written by `seamless init` for a wide
table (300 columns: 140 KB of columns, comments and expectations) would make the step
fail to start. Such a text travels gzip-compressed and base64-encoded behind a marker
(`packed`), which `unpacked` turns back into the same text; a config small enough to
read in the KFP UI travels as it is.
"""

from __future__ import annotations

import base64
import binascii
import gzip

from components.common.errors import SeamlessError

MARKER = "seamless-config-gzip-base64:"
PLAIN_MAX_BYTES = 48 * 1024
"""Larger texts are packed: room for JSON escaping and the other parameters."""
PACKED_MAX_BYTES = 96 * 1024
"""The most a packed config may take (Linux: 128 KiB for the whole executor input)."""


def packed(text: str, origin: str = "the config") -> str:
    """`text` as the `config_yaml` parameter: as it is when small, else packed."""
    raw = text.encode("utf-8")
    if len(raw) <= PLAIN_MAX_BYTES:
        return text
    value = MARKER + base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")
    if len(value) > PACKED_MAX_BYTES:
        raise SeamlessError(
            f"{origin} is {len(raw) // 1024} KiB ({len(value) // 1024} KiB compressed), over "
            f"the {PACKED_MAX_BYTES // 1024} KiB a pipeline step's argument can carry; "
            "remove comments and expectations, or declare fewer columns."
        )
    return value


def unpacked(value: str) -> str:
    """The config text a `config_yaml` parameter holds (see `packed`)."""
    if not value.startswith(MARKER):
        return value
    try:
        return gzip.decompress(base64.b64decode(value[len(MARKER) :], validate=True)).decode(
            "utf-8"
        )
    except (binascii.Error, OSError, EOFError, UnicodeDecodeError):
        raise SeamlessError(
            f"pipeline parameter config_yaml starts with {MARKER!r} but the rest is not a "
            "gzip-compressed, base64-encoded UTF-8 text."
        ) from None
