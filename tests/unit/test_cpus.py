"""CPU counting for native thread pools: affinity, cgroup quota (v1 and v2), OMP_NUM_THREADS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.common.cpus import available_cpus, native_threads_capped

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_omp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def _affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_no_cgroup_files_means_the_affinity_set(tmp_path: Path) -> None:
    assert available_cpus(tmp_path) == _affinity()


def test_cgroup_v2_quota_caps_and_rounds_up(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == _affinity()


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert available_cpus(tmp_path) == _affinity()


def test_omp_num_threads_lowers_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cpus(tmp_path) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4096")
    assert available_cpus(tmp_path) == _affinity()


def test_the_cap_reaches_openmp() -> None:
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime)
    from threadpoolctl import threadpool_info

    with native_threads_capped() as cap:
        pools = [p for p in threadpool_info() if p["user_api"] == "openmp"]
        assert pools, "scikit-learn's OpenMP runtime is not loaded"
        assert all(p["num_threads"] <= cap for p in pools)
