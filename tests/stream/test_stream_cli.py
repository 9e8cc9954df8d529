"""`seamless stream send | consume | status` as a user runs them, against a real
redis-server and the mini world's Feast repo on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.mini_features import MINI
from tests.stream.world import event

pytestmark = [pytest.mark.slow, pytest.mark.stream]


def test_send_consume_status(tmp_path: Path, redis: Any, redis_repo: Path) -> None:
    url = f"redis://{redis.host}:{redis.port}/0"
    when = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    lines = [
        json.dumps(event("cli-1", 5, when, score=1.5)),
        json.dumps(event("cli-1", 5, when, score=1.5)),
        json.dumps(event("cli-2", 5, when, score="x")),
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "mini.yaml").write_text(MINI)
    common = ("--redis-url", url, "--stream", "s:cli")
    sent = run_cli("stream", "send", "events.jsonl", *common, cwd=tmp_path)
    assert sent.returncode == 0 and sent.stdout.strip() == "sent 3", sent.stderr
    started = datetime.now().timestamp()
    done = run_cli(
        "stream", "consume", "--config", "mini.yaml", "--idle-exit-s", "1", "--json", *common,
        "--heartbeat-file", "beat", cwd=tmp_path, SEAMLESS_FEAST_REPO=str(redis_repo),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The Deployment's probes read its age: touched by the reads, the idle ones too.
    assert (tmp_path / "beat").stat().st_mtime >= started
    summary = json.loads(done.stdout)
    assert (summary["written"], summary["duplicate"], summary["malformed"]) == (1, 1, 1)
    status = run_cli("stream", "status", "--json", *common, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["counts"] == {"written": 1, "late": 0, "duplicate": 1, "malformed": 1}
    assert state["pending"] == 0
    assert "'score' must be float" in state["dead_letters"][0]["error"]
    text = run_cli("stream", "status", *common, cwd=tmp_path)
    assert "written 1, late 0, duplicate 1, malformed 1; pending 0" in text.stdout


def test_redis_down_is_one_sentence(tmp_path: Path, redis_repo: Path) -> None:
    from tests.helpers.postgres import free_port

    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    (tmp_path / "mini.yaml").write_text(MINI)
    (tmp_path / "events.jsonl").write_text(json.dumps(event("x", 1, "2025-01-01T00:00:00Z")))
    for args in (
        ("consume", "--config", "mini.yaml", "--idle-exit-s", "1"),
        ("send", "events.jsonl"),
        ("status",),
    ):
        done = run_cli("stream", *args, "--redis-url", url, cwd=tmp_path,
                       SEAMLESS_FEAST_REPO=str(redis_repo))  # fmt: skip
        assert done.returncode == 1, (args, done.stderr)
        assert "Redis failed (stream at redis://127.0.0.1:" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "s3cret" not in done.stderr
