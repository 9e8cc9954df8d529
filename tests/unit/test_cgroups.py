"""Memory and CPU limits found where the process' own cgroup is, not only at the mount.

Layouts built in tmp_path: a host or systemd unit (the whole tree mounted, the own cgroup
named by /proc/self/cgroup), a pod with its own cgroup namespace, and a v1 container
without one (its path in /proc/self/cgroup does not exist under the mount).
"""

from __future__ import annotations

from pathlib import Path

from components.common.cgroups import limit_dirs
from components.common.cpus import available_cpus
from components.common.memory_limit import memory_limit_bytes

GIB = 2**30
UNLIMITED_V1 = "9223372036854771712"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _proc(tmp_path: Path, text: str) -> Path:
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(text)
    return proc


def test_v1_host_reads_the_own_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    _write(root / "memory" / "memory.limit_in_bytes", UNLIMITED_V1)
    _write(root / "memory" / "batch" / "memory.limit_in_bytes", UNLIMITED_V1)
    _write(root / "memory" / "batch" / "job7" / "memory.limit_in_bytes", str(2 * GIB))
    proc = _proc(tmp_path, "4:memory:/batch/job7\n1:cpu,cpuacct:/batch/job7\n0::/\n")
    assert memory_limit_bytes(root, proc) == 2 * GIB
    # A parent's tighter limit applies to the job too.
    _write(root / "memory" / "batch" / "memory.limit_in_bytes", str(1 * GIB))
    assert memory_limit_bytes(root, proc) == 1 * GIB


def test_v2_host_reads_the_own_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    _write(root / "cgroup.controllers", "cpu memory")
    _write(root / "system.slice" / "memory.max", "max")
    _write(root / "system.slice" / "train.service" / "memory.max", str(3 * GIB))
    _write(root / "system.slice" / "cpu.max", "150000 100000")
    _write(root / "system.slice" / "train.service" / "cpu.max", "max 100000")
    proc = _proc(tmp_path, "0::/system.slice/train.service\n")
    assert memory_limit_bytes(root, proc) == 3 * GIB
    assert available_cpus(root, proc) == min(2, available_cpus(tmp_path / "none"))


def test_own_namespace_and_v1_container_read_the_mount(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    _write(root / "memory.max", str(4 * GIB))
    assert memory_limit_bytes(root, _proc(tmp_path, "0::/\n")) == 4 * GIB
    # v1 container: /proc/self/cgroup names the host's path, the mount is its own cgroup.
    v1 = tmp_path / "v1"
    _write(v1 / "memory" / "memory.limit_in_bytes", str(2 * GIB))
    _write(v1 / "cpu" / "cpu.cfs_quota_us", "100000")
    _write(v1 / "cpu" / "cpu.cfs_period_us", "100000")
    proc = _proc(tmp_path, "9:memory:/kubepods/burstable/pod1/abc\n3:cpu:/kubepods/pod1/abc\n")
    assert memory_limit_bytes(v1, proc) == 2 * GIB
    assert available_cpus(v1, proc) == 1
    assert limit_dirs("memory", v1, proc)[1] == [v1 / "memory"]


def test_no_cgroup_files_mean_the_machine(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "garbage\n::\n0::/../../etc\n")
    assert memory_limit_bytes(tmp_path / "none", proc) > 2**28
    assert memory_limit_bytes(tmp_path / "none", tmp_path / "missing") > 2**28
    assert limit_dirs("memory", tmp_path, proc)[0] == [tmp_path]
