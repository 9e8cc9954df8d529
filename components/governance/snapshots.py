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

With `SEAMLESS_SNAPSHOT_ROOT` set to an object store URI (`s3://bucket/snapshots`), every
stored snapshot is also published there as write-once objects `<root>/<sha256>/<file>`,
and a snapshot missing locally (another node, a fresh pod) is fetched from there and
verified; the local folder is then a cache. Each object is one PUT or multipart upload,
so no partial object is ever visible under its key; each is read back and checked
against its digest, and `FILES.sha256` goes up last: a snapshot without it in the store
is incomplete and never read. A local path in `SEAMLESS_SNAPSHOT_ROOT` moves the store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from components.common import storage
from components.common.env import workspace
from components.common.errors import SeamlessError
from components.common.tables import (
    MANIFEST,
    dataset_hash,
    parquet_content_hash,
    read_dataset,
    read_manifest,
)

FILES = "FILES.sha256"
_FILE_MODE = 0o444
_DIR_MODE = 0o555


ROOT_ENV = "SEAMLESS_SNAPSHOT_ROOT"


def require_durable_root() -> None:
    """On a pod's disk (SEAMLESS_EPHEMERAL_DISK) the store must be an object store: a local
    snapshot would vanish with the pod while lineage still names it."""
    storage.require_remote_root(ROOT_ENV, "the dataset snapshots")


def remote_root() -> str | None:
    """The object store the snapshots are published to (`SEAMLESS_SNAPSHOT_ROOT`), if any."""
    root = os.environ.get(ROOT_ENV, "").strip()
    return root.rstrip("/") if root and storage.is_remote(root) else None


def snapshots_root() -> Path:
    """The local snapshot folder: a local `SEAMLESS_SNAPSHOT_ROOT`, else the workspace's."""
    root = os.environ.get(ROOT_ENV, "").strip()
    if root and not storage.is_remote(root):
        return Path(root).expanduser().resolve()
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
        actual = parquet_content_hash(path)
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
    if not target.is_dir():
        _store_local(source, manifest, sha, target)
    remote = remote_root() if root is None else None
    if remote:
        publish_snapshot(sha, remote, target)
    return target


def _store_local(source: Path, manifest: dict[str, Any], sha: str, target: Path) -> None:
    with _staged(target, sha) as tmp:
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


@contextmanager
def _staged(target: Path, sha: str) -> Iterator[Path]:
    """A temporary sibling of `target` for the body to fill; then sealed (every file
    fsynced and read-only) and renamed into place atomically. If a concurrent writer got
    there first, its copy (same address, same content) stays and this one is dropped."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:16]}.", dir=target.parent))
    try:
        yield tmp
        for path in tmp.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(path, _FILE_MODE)
        os.chmod(tmp, _DIR_MODE)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            _remove(tmp)
    except BaseException:
        if tmp.exists():
            _remove(tmp)
        raise


def _listing(text: str) -> dict[str, str]:
    """`FILES.sha256` content as {file name: sha256}."""
    out = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        out[name] = digest
    return out


def publish_snapshot(sha256: str, root_uri: str, folder: Path | None = None) -> str:
    """Publish the local snapshot `sha256` to `<root_uri>/<sha256>/`; returns that prefix.

    Write-once: an object already there is checked, never replaced; a mismatch is an
    error. Every uploaded object is read back and its digest compared before the next;
    `FILES.sha256` is uploaded last and marks the snapshot complete.
    """
    local = folder or snapshot_path(sha256)
    base = storage.join(root_uri, sha256)
    listing_uri = storage.join(base, FILES)
    if storage.exists(listing_uri):
        return base  # complete already: same address, same content
    expected = _listing((local / FILES).read_text(encoding="utf-8"))
    for name, digest in sorted(expected.items()):
        uri = storage.join(base, name)
        if not storage.exists(uri):
            storage.put_file(local / name, uri)
            what = "was read back with another digest than the one uploaded"
        else:  # left by an interrupted publish, or written by someone else
            what = "already exists with other content; snapshots are write-once"
        if storage.sha256(uri) != digest:
            raise SeamlessError(f"Snapshot {sha256[:12]}: {uri} {what}.")
    storage.put_file(local / FILES, listing_uri)
    return base


def fetch_snapshot(sha256: str, root_uri: str, root: Path | None = None) -> Path:
    """The local copy of snapshot `sha256`, downloaded from `root_uri` when missing.

    Downloads into a temporary sibling, checks every file's digest, and renames it into
    place like `store_snapshot`; an incomplete snapshot in the store is not there.
    """
    target = snapshot_path(sha256, root)
    if target.is_dir():
        return target
    base = storage.join(root_uri, sha256)
    listing_uri = storage.join(base, FILES)
    if not storage.exists(listing_uri):
        raise SeamlessError(f"Snapshot {sha256[:12]} does not exist in {root_uri}.")
    with _staged(target, sha256) as tmp:
        storage.get_file(listing_uri, tmp / FILES)
        for name, digest in _listing((tmp / FILES).read_text(encoding="utf-8")).items():
            storage.get_file(storage.join(base, name), tmp / name)
            if _file_digest(tmp / name) != digest:
                raise SeamlessError(
                    f"Snapshot {sha256[:12]}: {storage.join(base, name)} does not match its "
                    f"digest in {listing_uri}."
                )
    return target


def verify_remote_snapshot(sha256: str, root_uri: str) -> list[str]:
    """Problems found in a published snapshot (empty when complete and intact)."""
    base = storage.join(root_uri, sha256)
    listing_uri = storage.join(base, FILES)
    if not storage.exists(listing_uri):
        return [f"snapshot {sha256[:12]} is not complete in {root_uri} (no {FILES})"]
    problems = []
    expected = _listing(storage.read_bytes(listing_uri).decode("utf-8"))
    present = {u.rsplit("/", 1)[-1] for u in storage.list_files(base + "/")} - {FILES}
    problems += [f"unexpected object {extra}" for extra in sorted(present - set(expected))]
    for name, digest in expected.items():
        uri = storage.join(base, name)
        if name not in present:
            problems.append(f"object {name} is missing")
        elif storage.sha256(uri) != digest:
            problems.append(f"object {name} was modified")
    return problems


def _ensure_local(sha256: str, root: Path | None) -> None:
    """Fetch a snapshot missing here from the object store, when one is configured."""
    remote = remote_root() if root is None else None
    if remote and not snapshot_path(sha256, root).is_dir():
        fetch_snapshot(sha256, remote, root)


def _remove(folder: Path) -> None:
    os.chmod(folder, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def verify_snapshot(sha256: str, root: Path | None = None, content: bool = True) -> list[str]:
    """Problems found in a stored snapshot (empty when intact).

    Checks modes, the byte digests of every file and, with `content`, recomputes the
    content hash that is the snapshot's address. A snapshot missing here is fetched
    first from `SEAMLESS_SNAPSHOT_ROOT` when that is an object store (a fresh pod).
    """
    folder = snapshot_path(sha256, root)
    try:
        _ensure_local(sha256, root)
    except SeamlessError as exc:
        text = str(exc).rstrip(".")
        return [text[:1].lower() + text[1:]]
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
    _ensure_local(sha256, root)
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
