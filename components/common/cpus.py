"""How many CPUs this process may really use, for sizing native thread pools.

OpenMP and BLAS size their pools by the machine's cores: a pod limited to 2 CPUs on a
64-core node would run 64 threads, throttled by its CFS quota into a fraction of the
speed. The answer here is the smallest of the CPU affinity set, the tightest CPU quota
over this process' cgroups (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`;
components/common/cgroups.py), and `OMP_NUM_THREADS` when the user set it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.common.cgroups import CGROUP, PROC_SELF_CGROUP, limit_dirs


def _v2_quota(folder: Path) -> float | None:
    try:
        fields = (folder / "cpu.max").read_text().split()
        return int(fields[0]) / int(fields[1]) if fields and fields[0] != "max" else None
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota(cgroup: Path, proc_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """CPUs the tightest quota over this process' cgroups allows (None: no limit)."""
    v2, v1 = limit_dirs("cpu", cgroup, proc_cgroup)
    quotas = [_v2_quota(d) for d in v2] + [_v1_quota(d) for d in v1]
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def available_cpus(cgroup: Path = CGROUP, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """At least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _quota(cgroup, proc_cgroup)
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
