"""Content-addressed, immutable copies of dataset folders: `<workspace>/snapshots/<sha256>/`.

The address is the dataset's content hash from its manifest (`write_dataset`), the same
value the model versions carry in `seamless.data_sha256`, so a model can always be traced
back to the exact rows it was trained from. A snapshot is written once: files are copied
into a temporary sibling folder, checked against the hash, made read-only and renamed into
place in one step; storing the same content again returns the existing folder untouched.
Each snapshot also lists its files' byte digests (`FILES.sha256`) so `verify_snapshot`
finds any later change, down to the byte.

Validation reports that judged a snapshot are kept beside it, content-addressed too:
`<workspace>/snapshots/<sha256>.reports/<kind>-<report digest>.html`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.env import workspace
from components.common.errors import SeamlessError
from components.common.tables import (
    MANIFEST,
    content_hash,
    dataset_hash,
    read_dataset,
    read_manifest,
)

FILES = "FILES.sha256"
_FILE_MODE = 0o444
_DIR_MODE = 0o555


def snapshots_root() -> Path:
    return workspace() / "snapshots"


def _is_sha(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def snapshot_path(sha256: str, root: Path | None = None) -> Path:
    if not _is_sha(sha256):
        raise SeamlessError(f"Snapshot id must be 64 lowercase hex digits, got {sha256!r}.")
    return (root or snapshots_root()) / sha256


def _content_problems(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Recompute every table's content hash and the dataset hash from the Parquet files."""
    problems = []
    tables = manifest.get("tables") or {}
    table_hashes = {}
    for name, entry in tables.items():
        path = folder / f"{name}.parquet"
        if not path.is_file():
            problems.append(f"table '{name}' is missing")
            continue
        actual = content_hash(pd.read_parquet(path))
        table_hashes[name] = actual
        if actual != entry.get("sha256"):
            problems.append(f"table '{name}' content hash {actual[:12]} != manifest")
    if not problems and dataset_hash(table_hashes) != manifest.get("sha256"):
        problems.append("dataset hash does not match the tables' hashes")
    return problems


def store_snapshot(dataset_folder: str | Path, root: Path | None = None) -> Path:
    """Copy a dataset folder into the store (if not there yet); returns its snapshot folder."""
    source = Path(dataset_folder)
    manifest = read_manifest(source)
    sha = str(manifest.get("sha256", ""))
    target = snapshot_path(sha, root)
    if target.is_dir():
        return target  # same content, same path: never rewritten
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:16]}.", dir=target.parent))
    try:
        names = [MANIFEST, *(f"{n}.parquet" for n in manifest.get("tables", {}))]
        for name in names:
            if not (source / name).is_file():
                raise SeamlessError(f"Dataset folder {source} lists '{name}' but has no such file.")
            shutil.copyfile(source / name, tmp / name)
        problems = _content_problems(tmp, manifest)
        if problems:
            raise SeamlessError(
                f"Dataset folder {source} does not match its manifest hash {sha[:12]}: "
                f"{'; '.join(problems)}."
            )
        listing = "".join(f"{_file_digest(tmp / n)}  {n}\n" for n in sorted(names))
        (tmp / FILES).write_text(listing, encoding="utf-8")
        for name in [*names, FILES]:
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp / name, _FILE_MODE)
        os.chmod(tmp, _DIR_MODE)
        try:
            os.rename(tmp, target)  # atomic; fails if a concurrent writer got there first
        except OSError:
            if not target.is_dir():
                raise
            _remove(tmp)  # identical content is already stored
    except BaseException:
        if tmp.exists():
            _remove(tmp)
        raise
    return target


def _remove(folder: Path) -> None:
    os.chmod(folder, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def verify_snapshot(sha256: str, root: Path | None = None, content: bool = True) -> list[str]:
    """Problems found in a stored snapshot (empty when intact).

    Checks modes, the byte digests of every file and, with `content`, recomputes the
    content hash that is the snapshot's address.
    """
    folder = snapshot_path(sha256, root)
    if not folder.is_dir():
        return [f"snapshot {sha256[:12]} does not exist in {folder.parent}"]
    problems = []
    listing = folder / FILES
    if not listing.is_file():
        return [f"snapshot {sha256[:12]} has no {FILES}"]
    expected = {}
    for line in listing.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        expected[name] = digest
    present = {p.name for p in folder.iterdir()} - {FILES}
    for extra in sorted(present - set(expected)):
        problems.append(f"unexpected file {extra}")
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"file {name} is missing")
        elif _file_digest(path) != digest:
            problems.append(f"file {name} was modified")
        elif stat.S_IMODE(path.stat().st_mode) & 0o222:
            problems.append(f"file {name} is writable")
    if not problems and content:
        manifest = read_manifest(folder)
        if manifest.get("sha256") != sha256:
            problems.append("manifest hash is not the snapshot's address")
        else:
            problems += _content_problems(folder, manifest)
    return problems


def require_snapshot(sha256: str, root: Path | None = None) -> Path:
    """The snapshot folder after verifying it; one-sentence error otherwise."""
    problems = verify_snapshot(sha256, root)
    if problems:
        raise SeamlessError(f"Snapshot {sha256[:12]} failed verification: {'; '.join(problems)}.")
    return snapshot_path(sha256, root)


def load_snapshot(
    sha256: str, root: Path | None = None, verify: bool = True
) -> dict[str, pd.DataFrame]:
    """Every table of a stored snapshot (verified first unless `verify=False`)."""
    folder = require_snapshot(sha256, root) if verify else snapshot_path(sha256, root)
    if not folder.is_dir():
        raise SeamlessError(f"Snapshot {sha256[:12]} does not exist in {folder.parent}.")
    return read_dataset(folder)


def list_snapshots(root: Path | None = None) -> list[str]:
    base = root or snapshots_root()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and _is_sha(p.name))


def reports_dir(sha256: str, root: Path | None = None) -> Path:
    folder = snapshot_path(sha256, root)
    return folder.with_name(f"{folder.name}.reports")


def attach_report(
    sha256: str, report_path: str | Path, kind: str = "validation", root: Path | None = None
) -> Path:
    """Keep a copy of a report about snapshot `sha256`; same report, same path."""
    src = Path(report_path)
    if not src.is_file():
        raise SeamlessError(f"Report {src} does not exist.")
    digest = _file_digest(src)
    folder = reports_dir(sha256, root)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{kind}-{digest[:16]}{src.suffix or '.html'}"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(prefix=".report.", dir=folder)
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    return target


def reports_for(sha256: str, root: Path | None = None) -> list[Path]:
    folder = reports_dir(sha256, root)
    return sorted(folder.glob("*-*.*")) if folder.is_dir() else []
