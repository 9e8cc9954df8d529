"""The demo loop's webhook inbox: Seamless' own sender reaches it over loopback, and an
event sent after the loop is dead-lettered with the reason, not lost."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from components.common.config import default_config_path, load_config
from components.governance import notify
from pipelines.demo_inbox import INBOX_NAME, INBOX_URL_ENV, Inbox, config_with_inbox, event_line

pytestmark = pytest.mark.unit


def test_the_config_gets_the_inbox_once(tmp_path: Path) -> None:
    loop = config_with_inbox(default_config_path(), tmp_path / "loop.yaml")
    config = load_config(loop)
    assert [r.name for r in config.notifications.receivers] == [INBOX_NAME]
    assert config.notifications.receivers[0].url_env == INBOX_URL_ENV
    # Everything else is the demo config's.
    demo = load_config(default_config_path())
    assert config.model_dump(exclude={"notifications"}) == demo.model_dump(
        exclude={"notifications"}
    )
    assert config_with_inbox(loop, tmp_path / "again.yaml") == loop
    assert not (tmp_path / "again.yaml").exists()


def test_events_reach_the_inbox_and_later_ones_the_dead_letter_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(config_with_inbox(default_config_path(), tmp_path / "loop.yaml"))
    settings = config.notifications.model_copy(
        update={"dead_letter": str(tmp_path / "dead.jsonl"), "retries": 0}
    )
    inbox = Inbox(tmp_path / "ws" / "notifications" / "demo-inbox.jsonl")
    monkeypatch.setenv(INBOX_URL_ENV, inbox.url)
    event = notify.Event(
        "rollback", "credit_risk rolled back to v2.", "live AUC 0.49 < 0.86", "credit_risk", "3"
    )
    try:
        outcome = notify.emit(settings, event)
    finally:
        inbox.close()
    assert outcome.delivered == [INBOX_NAME], outcome
    [received] = inbox.events()
    assert received["event"] == "rollback" and received["version"] == "3"
    assert "rollback" in event_line(received) and "live AUC 0.49" in event_line(received)
    assert stat.S_IMODE(inbox.path.stat().st_mode) == 0o600

    monkeypatch.delenv(INBOX_URL_ENV)
    later = notify.emit(settings, event)
    assert later.dead_lettered and INBOX_URL_ENV in later.dead_lettered[0][1]
    assert len(notify.dead_lettered(tmp_path / "dead.jsonl")) == 1
