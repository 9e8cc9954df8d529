"""The audit trail's entries and chain: format, hashing, verification, the backend interface.

Append-only, hash-chained audit trail of who changed what, when.

Every entry is one JSON object on one line of `<workspace>/audit/audit.jsonl`:

    {"v": 1, "seq": 7, "time": "2026-...+00:00", "actor": "alice", "action": "promotion",
     "subject": "model:credit-risk/3", "details": {...}, "prev_hash": "<hash of seq 6>",
     "hash": "<sha256 of this entry's canonical JSON without 'hash'>"}

The canonical JSON is `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` of the entry without its `hash` key, UTF-8 encoded; it includes
`seq` and `prev_hash`, so an entry cannot be edited, moved, removed or inserted without
breaking either its own hash, its sequence number or the next entry's link. The first
entry links to `GENESIS` (64 zeros).

Writers (pipeline steps, serving replicas, CLI users: several processes) serialize on
an exclusive `fcntl.flock` of `audit.lock`, read the last line, append one line with a
single `os.write` on an `O_APPEND` descriptor and fsync before unlocking, so the chain
never forks and an acknowledged entry survives a crash. A writer killed mid-write
leaves a line without its newline (a torn tail): `verify()` reports it distinctly, and
the next writer moves those bytes to `audit/torn/` and records that in the chain.

Limit: a hash chain proves the file is a consistent prefix of what was written; someone
who can write the file can still cut entries off the end, or rewrite every hash after
an edit. Publishing `head()` elsewhere (a run tag, a ticket, a WORM bucket) and checking
it with `verify(expected_head=...)` closes that gap. On the cluster, use either the file
on a ReadWriteMany PVC shared by the pods (flock works on local volumes and NFSv4) or
`PostgresAuditLog` (`SEAMLESS_AUDIT_URL`), which adds a trigger refusing UPDATE/DELETE.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.errors import SeamlessError

GENESIS = "0" * 64
FORMAT_VERSION = 1
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# Actions the stages record; other lowercase names are accepted too (e.g. new monitors).
REGISTRY_CHANGE = "registry_change"
PROMOTION = "promotion"
ROLLBACK = "rollback"
DEPLOYMENT = "deployment"
DATA_ACCESS = "data_access"
ACCESS_DENIED = "access_denied"
MODEL_RELOAD = "model_reload"
MONITORING_DECISION = "monitoring_decision"
BATCH_SCORING = "batch_scoring"
AUDIT_RECOVERED = "audit_recovered"

_FIELDS = ("v", "seq", "time", "actor", "action", "subject", "details", "prev_hash")


def model_subject(model_name: str, version: str | int) -> str:
    """Subject of events about one model version (lineage looks them up by it)."""
    return f"model:{model_name}/{version}"


def dataset_subject(sha256: str) -> str:
    """Subject of events about one dataset snapshot."""
    return f"dataset:{sha256}"


def current_actor(env: Mapping[str, str] | None = None, sa_dir: Path = SA_DIR) -> str:
    """Who is acting: `SEAMLESS_ACTOR`, else the pod's service account, else the OS user.

    In a pod, the name comes from `KUBERNETES_SERVICE_ACCOUNT` and the namespace from
    `POD_NAMESPACE` (both set with the downward API), else from the mounted
    service-account folder: pods that need no API access mount no token, so the folder
    is often absent. The token itself is never read.
    """
    env = os.environ if env is None else env
    explicit = env.get("SEAMLESS_ACTOR", "").strip()
    if explicit:
        return explicit
    ns_file = sa_dir / "namespace"
    account = env.get("KUBERNETES_SERVICE_ACCOUNT", "").strip()
    if account or ns_file.is_file():
        namespace = env.get("POD_NAMESPACE", "").strip()
        if not namespace and ns_file.is_file():
            namespace = ns_file.read_text(encoding="utf-8").strip()
        return f"system:serviceaccount:{namespace or 'unknown'}:{account or 'unknown'}"
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (arbitrary uid in a container)
        return f"uid:{os.getuid()}"


def _plain(value: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, unknown objects -> str, keys -> str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_plain(v) for v in items]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return str(value)


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: sorted keys, no spaces, UTF-8, `hash` left out."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def new_entry(
    after: Mapping[str, Any] | None,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None,
    actor: str,
) -> dict[str, Any]:
    """The entry that follows `after` (its `seq` and `hash`), or the first one (None)."""
    seq = 1 if after is None else int(after["seq"]) + 1
    prev_hash = GENESIS if after is None else str(after["hash"])
    if not action or not all(c.islower() or c.isdigit() or c in "_." for c in action):
        raise SeamlessError(
            f"Audit action must be lowercase letters, digits, _ or ., got {action!r}."
        )
    entry: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": _plain(dict(details or {})),
        "prev_hash": prev_hash,
    }
    entry["hash"] = entry_hash(entry)
    return entry


@dataclass
class VerifyResult:
    """Outcome of a chain check. `status`: ok, tampered, torn_tail or anchor_mismatch."""

    status: str
    entries: int
    """Entries checked and found valid (before the first problem)."""
    head_seq: int = 0
    head_hash: str = GENESIS
    bad_seq: int | None = None
    bad_line: int | None = None
    reason: str = ""
    where: str = ""
    anchor_seq: int | None = None
    """With an expected head: the seq of the entry it names (0: the empty chain)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def message(self) -> str:
        """One sentence for people (the full head hash, to publish and check later)."""
        if self.ok:
            anchored = ""
            if self.anchor_seq is not None:
                since = self.head_seq - self.anchor_seq
                anchored = (
                    ", the expected head"
                    if since == 0
                    else f"; the expected head is entry seq {self.anchor_seq}, {since} "
                    f"{'entry' if since == 1 else 'entries'} appended since"
                )
            return (
                f"Audit log {self.where} is intact: {self.entries} entries, head seq "
                f"{self.head_seq} hash {self.head_hash}{anchored}."
            )
        return f"Audit log {self.where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "message": self.message()}


@dataclass
class _Checker:
    """Walks entries in stored order; stops at the first problem."""

    seqs_ahead: set[int] = field(default_factory=set)
    expected: int = 1
    prev_hash: str = GENESIS
    count: int = 0
    seen: set[int] = field(default_factory=set)
    problem: tuple[int | None, int, str] | None = None  # (seq, line, reason)
    hashes: list[str] = field(default_factory=lambda: [GENESIS])
    """Hash of each checked entry by seq (index 0: the genesis hash)."""

    def feed(self, line_no: int, raw: bytes | str) -> bool:
        """Check one stored line; False once a problem is found."""
        where = f"line {line_no}"
        try:
            entry = json.loads(raw)
        except ValueError:
            return self._bad(None, line_no, f"{where} is not valid JSON (corrupted or edited).")
        if not isinstance(entry, dict) or any(k not in entry for k in (*_FIELDS, "hash")):
            return self._bad(None, line_no, f"{where} is not an audit entry (fields missing).")
        seq = entry["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            return self._bad(None, line_no, f"{where} has a non-integer seq {seq!r}.")
        self.seqs_ahead.discard(seq)
        named = f"entry seq {seq} ({where})"
        if entry_hash(entry) != entry["hash"]:
            return self._bad(
                seq, line_no, f"{named} was edited: its content does not match its hash."
            )
        if seq != self.expected:
            if seq in self.seen:
                why = f"repeats seq {seq}: an entry was inserted or duplicated."
            elif seq > self.expected and self.expected in self.seqs_ahead:
                why = f"comes before seq {self.expected}: entries were reordered."
            elif seq > self.expected:
                gone = (
                    f"seq {self.expected}"
                    if seq == self.expected + 1
                    else f"seq {self.expected}-{seq - 1}"
                )
                why = f"follows seq {self.expected - 1}: {gone} was deleted."
            else:
                why = f"is out of order (expected seq {self.expected}): entries were reordered."
            return self._bad(seq, line_no, f"{named} {why}")
        if entry["prev_hash"] != self.prev_hash:
            before = "the genesis hash" if seq == 1 else f"entry seq {seq - 1}'s hash"
            return self._bad(
                seq,
                line_no,
                f"{named} does not link to {before}: an entry before it was replaced or inserted.",
            )
        self.seen.add(seq)
        self.prev_hash = str(entry["hash"])
        self.hashes.append(self.prev_hash)
        self.expected = seq + 1
        self.count += 1
        return True

    def _bad(self, seq: int | None, line_no: int, reason: str) -> bool:
        self.problem = (seq, line_no, reason)
        return False

    def result(self, where: str, torn: tuple[int, int] | None = None) -> VerifyResult:
        res = VerifyResult(
            status="ok",
            entries=self.count,
            head_seq=self.expected - 1,
            head_hash=self.prev_hash,
            where=where,
        )
        if self.problem is not None:
            res.status = "tampered"
            res.bad_seq, res.bad_line, res.reason = self.problem
            res.reason = "first bad entry: " + res.reason
        elif torn is not None:
            line_no, size = torn
            res.status = "torn_tail"
            res.bad_line = line_no
            res.reason = (
                f"line {line_no} is an incomplete write ({size} bytes, no newline) from a "
                f"writer that crashed; the {self.count} entries before it are intact and "
                "the next append moves it aside."
            )
        return res


def _seq_of(raw: bytes | str) -> int | None:
    try:
        seq = json.loads(raw).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def parse_entries(lines: Iterable[tuple[int, bytes | str]]) -> Iterator[dict[str, Any]]:
    """The entries of stored lines (line number, raw JSON) in stored order; a line that
    is not a JSON object is skipped (`check_lines` is what names it)."""
    for _, raw in lines:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def check_lines(
    lines: Iterable[tuple[int, bytes | str]],
    where: str,
    torn: tuple[int, int] | None = None,
    expected_head: str | None = None,
) -> VerifyResult:
    """Verify stored lines (line number, raw JSON) in stored order.

    `expected_head` is a head hash published earlier, whole or as printed by `seamless
    audit verify` (any prefix of at least `MIN_HEAD_PREFIX` hex digits). The chain must
    still hold that entry: entries appended since are fine, entries cut off are not.
    """
    wanted = None if expected_head is None else head_prefix(expected_head)
    rows = list(lines)
    checker = _Checker(seqs_ahead={s for _, raw in rows if (s := _seq_of(raw)) is not None})
    for line_no, raw in rows:
        if not checker.feed(line_no, raw):
            break
    res = checker.result(where, torn)
    if res.ok and wanted is not None:
        found = [seq for seq, h in enumerate(checker.hashes) if h.startswith(wanted)]
        if len(found) > 1:
            raise SeamlessError(
                f"Expected head {wanted} is ambiguous in audit log {where}: the hashes of "
                f"entries seq {', '.join(map(str, found[:5]))} start with it; give more digits."
            )
        if found:
            res.anchor_seq = found[0]
        else:
            res.status = "anchor_mismatch"
            res.reason = (
                f"no entry has the expected head hash {wanted} (head now: seq {res.head_seq} "
                f"hash {res.head_hash}): entries were cut off the end or rewritten."
            )
    return res


@dataclass(frozen=True)
class Chunk:
    """Stored lines a backend read after a cursor (`read_after`), for readers that keep
    up with a growing trail instead of re-reading it."""

    lines: list[tuple[int, bytes | str]]
    """(line number, raw JSON) in stored order, numbered on from the cursor's."""
    cursor: Any
    """Pass back to `read_after` for the lines after these."""
    torn: tuple[int, int] | None = None
    """A trailing incomplete line (line number, bytes), not yet part of the chain."""
    restarted: bool = False
    """The trail no longer extends what the cursor saw (cut, replaced, moved): these
    lines are the whole trail, read from the start."""


class ChainReader:
    """The entries and the chain check of a trail read in chunks: each entry is parsed
    and checked once, so a trail of millions costs only its new lines per refresh. It
    checks what is appended; a rewrite of lines it already read shows only on a full
    read (`Chunk.restarted`, or a new reader), as `verify()` does every time."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.entries: list[dict[str, Any]] = []
        self._checker = _Checker()
        self._torn: tuple[int, int] | None = None

    def feed(self, chunk: Chunk) -> None:
        rows = chunk.lines
        if self._checker.problem is None:
            self._checker.seqs_ahead |= {s for _, raw in rows if (s := _seq_of(raw)) is not None}
            for line_no, raw in rows:
                if not self._checker.feed(line_no, raw):
                    break
        self.entries.extend(parse_entries(rows))
        self._torn = chunk.torn

    def result(self) -> VerifyResult:
        return self._checker.result(self.where, self._torn)


MIN_HEAD_PREFIX = 12
"""Fewest hex digits of a head hash accepted by `verify(expected_head=...)` (48 bits)."""


def head_prefix(expected: str) -> str:
    """A published head hash, normalized (lower case); one sentence when it is not one."""
    value = expected.strip().lower()
    if not all(c in "0123456789abcdef" for c in value) or not (
        MIN_HEAD_PREFIX <= len(value) <= len(GENESIS)
    ):
        raise SeamlessError(
            f"Expected head {expected!r} is not a head hash: give the hash `seamless audit "
            f"verify` prints, or at least its first {MIN_HEAD_PREFIX} hex digits."
        )
    return value


class AuditLog(ABC):
    """What every audit backend offers (file on a volume, PostgreSQL table).

    A backend stores entries (`_append`) and reads its stored lines back (`read_after`);
    reading, verifying and the head are the chain's, the same for every backend."""

    def append(
        self,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Append one entry (by `actor`, else the current user) and return it once stored."""
        return self._append(action, subject, details, actor or current_actor())

    @abstractmethod
    def _append(
        self, action: str, subject: str, details: Mapping[str, Any] | None, who: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    def read_after(self, cursor: Any = None) -> Chunk:
        """The stored lines after `cursor` (None: from the start); see `ChainReader`."""

    @abstractmethod
    def describe(self) -> str: ...

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every complete, parseable entry in order (a torn tail is skipped)."""
        yield from parse_entries(self.read_after(None).lines)

    def verify(self, expected_head: str | None = None) -> VerifyResult:
        chunk = self.read_after(None)
        return check_lines(chunk.lines, self.describe(), chunk.torn, expected_head)

    def head(self) -> str:
        """Hash of the last entry (GENESIS when empty): publish it to anchor the chain."""
        return self.verify().head_hash


def entry_line(entry: Mapping[str, Any]) -> bytes:
    """One entry as its line in the file: canonical key order, newline-terminated."""
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return body.encode("utf-8") + b"\n"
