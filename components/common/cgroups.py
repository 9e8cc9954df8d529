"""The cgroup folders whose limits apply to this process (cgroup v2 and v1).

A container with a cgroup namespace of its own (a pod on cgroup v2, the usual case) sees
its cgroup at the mount's root: `/sys/fs/cgroup` on v2, `/sys/fs/cgroup/<controller>` on
v1. A process that shares the host's namespace (a systemd unit, a batch job's slice, a
container run with the host's cgroups) sees the whole tree there, and its own cgroup at
the path `/proc/self/cgroup` names; every ancestor's limit applies to it as well. Readers
take the smallest limit over the folders returned here.
"""

from __future__ import annotations

from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def _own_paths(proc_cgroup: Path) -> dict[str, str]:
    """controller (or "" for v2) -> this process' cgroup path, from /proc/self/cgroup."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return {}
    paths: dict[str, str] = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths[""] = path
        for name in controllers.split(","):
            if name:
                paths[name] = path
    return paths


def _chain(mount: Path, path: str) -> list[Path]:
    """`mount` and each folder from it down to `path` below it that exists."""
    dirs = [mount]
    current = mount
    for part in [p for p in path.split("/") if p and p not in (".", "..")]:
        current = current / part
        if not current.is_dir():
            break
        dirs.append(current)
    return dirs


def limit_dirs(
    controller: str, root: Path = CGROUP, proc_cgroup: Path = PROC_SELF_CGROUP
) -> tuple[list[Path], list[Path]]:
    """(v2 folders, v1 folders) to read `controller`'s limits from: the mount roots, then
    this process' own cgroup and its ancestors where they exist below them."""
    own = _own_paths(proc_cgroup)
    v2 = _chain(root, own.get("", ""))
    if (root / "unified").is_dir():  # a hybrid host: v2's tree beside v1's controllers
        v2 += _chain(root / "unified", own.get("", ""))
    return v2, _chain(root / controller, own.get(controller, ""))
