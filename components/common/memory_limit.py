"""How much memory this process may use: the cgroup's limit when there is one, else RAM.

A pod sees its node's RAM in /proc/meminfo; only the cgroup says what it may really take
(v2 `memory.max`, v1 `memory/memory.limit_in_bytes`).
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def memory_limit_bytes(cgroup: Path = CGROUP) -> int:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (cgroup / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < physical:
            return int(text)
    return physical
