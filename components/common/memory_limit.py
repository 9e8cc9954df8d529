"""How much memory this process may use: the smallest cgroup limit over its own cgroup
and the ones above it (components/common/cgroups.py), else RAM.

A pod sees its node's RAM in /proc/meminfo; only the cgroup says what it may really take
(v2 `memory.max`, v1 `memory.limit_in_bytes`).
"""

from __future__ import annotations

import os
from pathlib import Path

from components.common.cgroups import CGROUP, PROC_SELF_CGROUP, limit_dirs


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None  # "max": no limit


def memory_limit_bytes(cgroup: Path = CGROUP, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    v2, v1 = limit_dirs("memory", cgroup, proc_cgroup)
    limits = [_read_limit(d / "memory.max") for d in v2]
    limits += [_read_limit(d / "memory.limit_in_bytes") for d in v1]
    return min([physical, *(limit for limit in limits if limit is not None)])
