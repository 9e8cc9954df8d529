"""Find given values anywhere under a folder: as text, as packed int64 bytes, and inside
the containers a workspace holds (Parquet values, SQLite cells, zip members, gzip).

Raw bytes are not enough on their own: Parquet pages are compressed and SQLite stores an
integer in 1 to 8 big-endian bytes, so those files are also read value by value. What
the scan looks for (`Needles`):
- each int as its decimal digits (a digit run of its own, not part of a longer number),
  as its float text (`8.1e+18` forms) and as 8 packed bytes, little- and big-endian;
- each text as its UTF-8 bytes, anywhere.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import sqlite3
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_DIGITS = re.compile(rb"(?<![0-9])[0-9]{6,20}(?![0-9])")
_SQLITE = b"SQLite format 3\x00"
_PARQUET = b"PAR1"


@dataclass
class Needles:
    ints: set[int] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._packed = np.array(
            sorted(
                {
                    int.from_bytes(struct.pack(fmt, v), "little")
                    for v in self.ints
                    for fmt in ("<q", ">q")
                }
            ),
            dtype=np.uint64,
        )
        self._float_values = {float(v) for v in self.ints}
        texts = {t.encode("utf-8") for t in self.texts} | {
            repr(f).encode() for f in self._float_values
        }
        # Needles by their first 4 bytes: each distinct prefix is searched for once, and
        # only where it occurs are the whole needles compared (many needles, few prefixes).
        self._by_prefix: dict[bytes, dict[int, set[bytes]]] = {}
        for t in texts:
            self._by_prefix.setdefault(t[:4], {}).setdefault(len(t), set()).add(t)

    def text_in(self, data: bytes) -> bytes | None:
        """The first text needle found in `data`, if any."""
        for prefix, by_length in self._by_prefix.items():
            at = data.find(prefix)
            while at != -1:
                for length, group in by_length.items():
                    if data[at : at + length] in group:
                        return data[at : at + length]
                at = data.find(prefix, at + 1)
        return None


@dataclass
class Finding:
    path: str
    how: str

    def __str__(self) -> str:
        return f"{self.path}: {self.how}"


def scan_bytes(data: bytes, needles: Needles, where: str) -> list[Finding]:
    """Text and packed-int64 occurrences in a byte string."""
    found: list[Finding] = []
    for m in _DIGITS.finditer(data):
        if int(m.group()) in needles.ints:
            found.append(Finding(where, f"int {m.group().decode()} as text at {m.start()}"))
            break
    text = needles.text_in(data)
    if text is not None:
        found.append(Finding(where, f"text {text.decode(errors='replace')!r}"))
    if len(needles._packed) and len(data) >= 8:
        buf = np.frombuffer(data, dtype=np.uint8)
        for offset in range(8):
            usable = (len(buf) - offset) // 8 * 8
            if usable <= 0:
                continue
            words = buf[offset : offset + usable].view("<u8")
            hit = np.isin(words, needles._packed)
            if hit.any():
                at = offset + 8 * int(np.flatnonzero(hit)[0])
                found.append(Finding(where, f"packed int64 at byte {at}"))
                break
    return found


def _flatten(values: Any, out: list[Any]) -> None:
    for v in values:
        if isinstance(v, dict):
            _flatten(v.values(), out)
        elif isinstance(v, list | tuple):
            _flatten(v, out)
        else:
            out.append(v)


def scan_values(values: list[Any], needles: Needles, where: str) -> list[Finding]:
    """Ints and floats compared as values; text and bytes values scanned together as one
    blob (values joined by a NUL byte), so a column costs one pass, not one per value."""
    flat: list[Any] = []
    _flatten(values, flat)
    found: list[Finding] = []
    ints = {v for v in flat if isinstance(v, int) and not isinstance(v, bool)}
    hit = ints & needles.ints
    if hit:
        found.append(Finding(where, f"int value {min(hit)}"))
    floats = {v for v in flat if isinstance(v, float)}
    if floats & needles._float_values:
        found.append(Finding(where, "float value equal to an int needle"))
    parts = []
    for v in flat:
        if isinstance(v, str):
            parts.append(v.encode("utf-8", "surrogatepass"))
        elif isinstance(v, bytes | bytearray | memoryview):
            parts.append(bytes(v))
        elif v is not None and not isinstance(v, bool | int | float):
            parts.append(str(v).encode("utf-8"))
    if parts:
        found += scan_bytes(b"\x00".join(parts), needles, where)
    return found


def _scan_parquet(data: bytes, needles: Needles, where: str) -> list[Finding]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    found: list[Finding] = []
    for name in table.column_names:
        found += scan_values(table.column(name).to_pylist(), needles, f"{where} column {name}")
    return found


def _scan_sqlite(path: Path, needles: Needles, where: str) -> list[Finding]:
    found: list[Finding] = []
    with tempfile.TemporaryDirectory() as tmp:
        # A copy (with its WAL): reading never touches the store itself.
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{path}{suffix}")
            if src.is_file():
                shutil.copyfile(src, Path(tmp) / f"db{suffix}")
        conn = sqlite3.connect(Path(tmp) / "db")
        try:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for name in names:
                quoted = '"' + name.replace('"', '""') + '"'
                rows = conn.execute(f"SELECT * FROM {quoted}").fetchall()
                found += scan_values(rows, needles, f"{where} table {name}")
        finally:
            conn.close()
    return found


def scan_blob(data: bytes, needles: Needles, where: str, path: Path | None = None) -> list[Finding]:
    """Everything `scan_bytes` finds, plus what the container formats hide."""
    found = scan_bytes(data, needles, where)
    if data.startswith(_PARQUET) and data.endswith(_PARQUET):
        found += _scan_parquet(data, needles, where)
    elif data.startswith(_SQLITE) and path is not None:
        found += _scan_sqlite(path, needles, where)
    elif data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                found += scan_blob(zf.read(member), needles, f"{where}!{member}")
    elif data.startswith(b"\x1f\x8b"):
        found += scan_blob(gzip.decompress(data), needles, f"{where}!gunzip")
    return found


def scan_tree(root: Path, needles: Needles) -> tuple[list[Finding], int]:
    """(findings, files scanned) for every regular file under `root`."""
    found: list[Finding] = []
    files = 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        files += 1
        where = str(path.relative_to(root))
        found += scan_blob(path.read_bytes(), needles, where, path)
    return found, files
