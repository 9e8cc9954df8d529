"""The audit chain: every kind of tampering is caught and the first bad entry is named."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from components.common.errors import SeamlessError
from components.governance.audit import (
    AUDIT_RECOVERED,
    GENESIS,
    FileAuditLog,
    current_actor,
    entry_hash,
    model_subject,
)
from components.governance.audit_chain import VerifyResult
from pipelines.governance_cli import audit_app

pytestmark = pytest.mark.unit


def _log(tmp_path: Path, n: int = 6) -> FileAuditLog:
    log = FileAuditLog(tmp_path / "audit")
    for i in range(n):
        log.append("registry_change", model_subject("m", i + 1), {"i": i}, actor="alice")
    return log


def _lines(log: FileAuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines()


def _write(log: FileAuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _verify_tampered(tmp_path: Path, tamper: Callable[[list[str]], object]) -> VerifyResult:
    """A six-entry log whose lines `tamper` changes in place, written back and verified."""
    log = _log(tmp_path)
    lines = _lines(log)
    tamper(lines)
    _write(log, lines)
    return log.verify()


def _edit(lines: list[str], index: int, rehash: bool = False, **fields: object) -> None:
    """Line `index` with `fields` changed (its hash recomputed too when `rehash`)."""
    entry = {**json.loads(lines[index]), **fields}
    if rehash:
        entry["hash"] = entry_hash(entry)
    lines[index] = json.dumps(entry)


def test_intact_chain(tmp_path: Path) -> None:
    log = _log(tmp_path)
    entries = list(log.entries())
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(entries))
    assert all(entry_hash(e) == e["hash"] for e in entries)
    res = log.verify()
    assert res.ok and res.entries == 6 and res.head_seq == 6
    assert res.head_hash == entries[-1]["hash"] == log.head()
    assert "intact: 6 entries" in res.message()


def test_edit_is_named(tmp_path: Path) -> None:
    res = _verify_tampered(tmp_path, lambda lines: _edit(lines, 2, details={"i": 99}))
    assert res.status == "tampered" and res.bad_seq == 3 and res.bad_line == 3
    assert "entry seq 3 (line 3) was edited" in res.message()


def test_edit_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    res = _verify_tampered(tmp_path, lambda lines: _edit(lines, 2, rehash=True, actor="mallory"))
    assert res.bad_seq == 4
    assert "does not link to entry seq 3's hash" in res.message()


def test_deletion_is_named(tmp_path: Path) -> None:
    res = _verify_tampered(tmp_path, lambda lines: lines.pop(2))
    assert res.bad_seq == 4 and res.bad_line == 3
    assert "seq 3 was deleted" in res.message()


def test_deleting_the_first_entry_is_caught(tmp_path: Path) -> None:
    res = _verify_tampered(tmp_path, lambda lines: lines.pop(0))
    assert res.bad_seq == 2 and "seq 1 was deleted" in res.message()


def test_insertion_is_named(tmp_path: Path) -> None:
    def forge(lines: list[str]) -> None:
        # A well-formed forgery: right seq, right link, valid hash; the next entry exposes it.
        lines.insert(2, lines[2])
        _edit(lines, 2, rehash=True, actor="mallory", prev_hash=json.loads(lines[1])["hash"])

    res = _verify_tampered(tmp_path, forge)
    assert res.status == "tampered" and res.bad_line == 4 and res.bad_seq == 3
    assert "repeats seq 3" in res.message()


def test_reordering_is_named(tmp_path: Path) -> None:
    res = _verify_tampered(tmp_path, lambda lines: lines.insert(1, lines.pop(2)))  # swap 2 and 3
    assert res.bad_line == 2 and res.bad_seq == 3
    assert "comes before seq 2: entries were reordered" in res.message()


def test_garbage_line_is_named(tmp_path: Path) -> None:
    res = _verify_tampered(tmp_path, lambda lines: lines.__setitem__(4, "{not json"))
    assert res.bad_line == 5 and "line 5 is not valid JSON" in res.message()


def test_torn_tail_is_reported_distinctly_then_repaired(tmp_path: Path) -> None:
    log = _log(tmp_path, 3)
    full = _lines(log)
    with open(log.path, "ab") as fh:  # what a writer killed mid-write leaves behind
        fh.write(b'{"v":1,"seq":4,"time":"2026')
    res = log.verify()
    assert res.status == "torn_tail" and not res.ok and res.bad_line == 4
    assert "incomplete write" in res.message() and "3 entries before it are intact" in res.message()
    assert len(list(log.entries())) == 3

    entry = log.append("deployment", model_subject("m", 1), actor="bob")
    entries = list(log.entries())
    assert [e["action"] for e in entries[3:]] == [AUDIT_RECOVERED, "deployment"]
    assert entry["seq"] == 5
    saved = Path(entries[3]["details"]["saved_as"])
    assert saved.read_bytes() == b'{"v":1,"seq":4,"time":"2026'
    assert log.verify().ok
    assert _lines(log)[:3] == full


def test_survives_reopen(tmp_path: Path) -> None:
    _log(tmp_path, 4)
    again = FileAuditLog(tmp_path / "audit")
    entry = again.append("rollback", model_subject("m", 2), {"to": "2"}, actor="carol")
    assert entry["seq"] == 5
    assert again.verify().ok


def test_anchor_catches_a_cut_tail(tmp_path: Path) -> None:
    log = _log(tmp_path)
    head = log.head()
    _write(log, _lines(log)[:-1])  # cutting the end leaves a consistent prefix...
    assert log.verify().ok
    res = log.verify(expected_head=head)  # ...which the published head exposes
    assert res.status == "anchor_mismatch" and "cut off the end" in res.message()


def test_unreadable_last_entry_refuses_to_extend(tmp_path: Path) -> None:
    log = _log(tmp_path, 2)
    with open(log.path, "a") as fh:
        fh.write("oops\n")
    with pytest.raises(SeamlessError, match="refusing to extend a broken chain"):
        log.append("deployment", "x", actor="a")


def test_bad_action_name(tmp_path: Path) -> None:
    with pytest.raises(SeamlessError, match="lowercase"):
        FileAuditLog(tmp_path).append("Drop Table", "x", actor="a")


def test_actor_sources(tmp_path: Path) -> None:
    assert current_actor({"SEAMLESS_ACTOR": "alice"}, tmp_path / "none") == "alice"
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "namespace").write_text("seamless\n")
    env = {"KUBERNETES_SERVICE_ACCOUNT": "pipeline-runner"}
    assert current_actor(env, sa) == "system:serviceaccount:seamless:pipeline-runner"
    assert current_actor({"SEAMLESS_ACTOR": "bob", **env}, sa) == "bob"
    assert current_actor({}, tmp_path / "none")  # the OS user
    # A pod without a mounted token: the downward API names both.
    pod = {"KUBERNETES_SERVICE_ACCOUNT": "serving", "POD_NAMESPACE": "seamless"}
    assert current_actor(pod, tmp_path / "none") == "system:serviceaccount:seamless:serving"


def test_details_are_stored_as_hashed(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path)
    entry = log.append("x", "s", {"nan": float("nan"), "set": {"b", "a"}, "p": tmp_path}, "a")
    assert entry["details"] == {"nan": None, "set": ["a", "b"], "p": str(tmp_path)}
    assert log.verify().ok


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    app.command("noop")(lambda: None)  # a second command keeps `audit` a sub-command
    return app


def test_cli_verify_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAMLESS_ROLE", "admin")
    ws = tmp_path / "ws"
    log = _log(ws)
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws)])
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output
    shown = runner.invoke(_cli(), ["audit", "show", "-w", str(ws), "--json", "--limit", "2"])
    assert [json.loads(line)["seq"] for line in shown.output.splitlines()] == [5, 6]

    lines = _lines(log)
    del lines[3]
    _write(log, lines)
    bad = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws)])
    assert bad.exit_code == 1
    assert "first bad entry: entry seq 5 (line 4)" in bad.output
    assert len(bad.output.strip().splitlines()) == 1

    _write(log, _lines(log)[:2])
    with open(log.path, "ab") as fh:
        fh.write(b'{"v":')
    torn = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws)])
    assert torn.exit_code == 2 and "incomplete write" in torn.output


def test_expected_head_as_printed(tmp_path: Path) -> None:
    """Issue #13 item 14: the head hash as `audit verify` prints it anchors the chain."""
    log = _log(tmp_path)
    head = log.head()
    printed = log.verify().message()
    assert f"hash {head}." in printed, "the full head hash is printed"
    for given in (head, head[:16], head[:12], f"  {head[:20].upper()} "):
        res = log.verify(expected_head=given)
        assert res.ok and res.anchor_seq == 6, (given, res.message())
    # Entries appended since the head was published do not break the anchor...
    log.append("deployment", model_subject("m", 7), actor="bob")
    res = log.verify(expected_head=head[:12])
    assert res.ok and res.anchor_seq == 6 and "1 entry appended since" in res.message()
    # ...cutting the published entry off does.
    _write(log, _lines(log)[:5])
    res = log.verify(expected_head=head[:12])
    assert res.status == "anchor_mismatch" and "cut off the end" in res.message()


@pytest.mark.parametrize("given", ["", "abc", "0123456789a", "xyz" * 5, "a" * 65, "12345678901g"])
def test_expected_head_too_short_or_not_hex(tmp_path: Path, given: str) -> None:
    log = _log(tmp_path, 2)
    with pytest.raises(SeamlessError) as err:
        log.verify(expected_head=given)
    message = str(err.value)
    assert "at least its first 12 hex digits" in message and "\n" not in message


def test_cli_verify_with_the_printed_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAMLESS_ROLE", "admin")
    ws = tmp_path / "ws"
    _log(ws)
    runner = CliRunner()
    first = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws), "--json"])
    printed = json.loads(first.output)["head_hash"]
    text = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws)]).output
    assert printed in " ".join(text.split())
    for given in (printed, printed[:12]):
        ok = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws), "--expected-head", given])
        assert ok.exit_code == 0, ok.output
    short = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws), "--expected-head", "abc"])
    assert isinstance(short.exception, SeamlessError)
    wrong = runner.invoke(_cli(), ["audit", "verify", "-w", str(ws), "--expected-head", "f" * 12])
    assert wrong.exit_code == 1 and "no entry has the expected head hash" in wrong.output
