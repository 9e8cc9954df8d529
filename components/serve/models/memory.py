"""glibc heap housekeeping for the long-lived serving process (no-ops elsewhere).

Loading and compiling a model allocates and frees hundreds of MB (unpickled trees, the
pickled copy sent to the converter, the ONNX bytes); glibc keeps freed heap pages, so
RSS would stay at the peak. `trim()` after a load hands them back. `limit_arenas()`
caps glibc's per-thread arenas: each request thread would otherwise keep its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def limit_arenas(n: int = 2) -> None:
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, n)


def trim() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
