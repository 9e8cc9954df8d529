"""How many CPUs this process may really use, for sizing native thread pools.

OpenMP and BLAS size their pools by the machine's cores: a pod limited to 2 CPUs on a
64-core node would run 64 threads, throttled by its CFS quota into a fraction of the
speed. The answer here is the smallest of the CPU affinity set, the cgroup's CPU quota
(v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), and `OMP_NUM_THREADS`
when the user set it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _quota(cgroup: Path) -> float | None:
    """CPUs the cgroup's quota allows (None: no limit or no cgroup files)."""
    try:
        fields = (cgroup / "cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(cgroup: Path = CGROUP) -> int:
    """At least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _quota(cgroup)
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        count = min(count, int(omp))
    return max(1, count)


@contextmanager
def native_threads_capped() -> Iterator[int]:
    """Cap OpenMP/BLAS pools (scikit-learn's HistGradientBoosting, numpy) to
    `available_cpus()` for the block; yields the cap."""
    from threadpoolctl import threadpool_limits

    cap = available_cpus()
    with threadpool_limits(limits=cap):
        yield cap
