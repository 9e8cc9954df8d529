"""Seamless' own events to webhooks (components/governance/notify.py), against a real HTTP
receiver on 127.0.0.1: what each event carries, Slack's shape, retries, a receiver that
is down or refuses, the dead-letter file and its replay, the config's sentences, the CLI.
The hooks are called as the stages call them (tests/pipeline/test_own_data_run.py sends
through a whole `seamless run training`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from components.common.config import default_config_path, parse_config
from components.common.errors import SeamlessError
from components.common.net import free_port
from components.common.notifications_config import NotificationsConfig, ReceiverConfig
from components.governance import audit, hooks, notify
from pipelines.cli import app
from tests.helpers.webhook import Receiver, webhook_receiver

pytestmark = pytest.mark.governance

GATE = {
    "decision": "promote",
    "metric": "roc_auc",
    "challenger": 0.8312,
    "champion": 0.8201,
    "champion_version": "3",
    "reason": "roc_auc 0.8312 beats champion v3 0.8201 by 0.0111 (min 0.0000)",
}


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(ws))
    monkeypatch.setenv("SEAMLESS_ACTOR", "pipeline")
    for name in ("SEAMLESS_AUDIT_URL", "SEAMLESS_LOG_URL"):
        monkeypatch.delenv(name, raising=False)
    return ws


@pytest.fixture()
def receiver(monkeypatch: pytest.MonkeyPatch) -> Any:
    with webhook_receiver() as r:
        monkeypatch.setenv("HOOK_URL", r.url)
        yield r


def settings(tmp_path: Path, *receivers: ReceiverConfig, **kw: Any) -> NotificationsConfig:
    return NotificationsConfig(
        receivers=list(receivers or [ReceiverConfig(name="ops", url_env="HOOK_URL")]),
        retries=kw.pop("retries", 2),
        backoff_s=0.01,
        timeout_s=2.0,
        dead_letter=str(tmp_path / "dead-letter.jsonl"),
        **kw,
    )


def registration(version: str, promoted: bool) -> dict[str, Any]:
    return {
        "model_name": "credit_risk",
        "version": version,
        "aliases": ["champion"] if promoted else ["challenger"],
        "champion_version": version if promoted else "3",
        "previous_champion_version": "3" if promoted else None,
        "promoted": promoted,
    }


def dead_letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_promotion_reaches_the_webhook_with_the_gate_numbers_and_a_link(
    tmp_path: Path, receiver: Receiver
) -> None:
    cfg = settings(tmp_path, dashboard_url="https://seamless.example.com/")
    entries = hooks.on_register(registration("4", True), "run-1", GATE["reason"], cfg, GATE)
    [body] = receiver.bodies()
    assert receiver.posts[0]["path"] == "/hook/T0KEN-secret"
    assert receiver.posts[0]["content_type"] == "application/json"
    assert body["source"] == "seamless" and body["event"] == "promotion"
    assert body["model"] == "credit_risk" and body["version"] == "4"
    assert body["summary"] == "credit_risk version 4 was promoted to champion (was version 3)."
    assert body["reason"] == GATE["reason"]
    assert body["numbers"] == {
        "metric": "roc_auc",
        "challenger": 0.8312,
        "champion": 0.8201,
        "champion_version": "3",
    }
    assert body["link"] == "https://seamless.example.com/models/credit_risk/4"
    # Sent after the audit entries, which are on the record either way.
    assert [e["action"] for e in entries] == [audit.REGISTRY_CHANGE, audit.PROMOTION]
    assert not (tmp_path / "dead-letter.jsonl").exists()


def test_a_rejection_in_slack_shape_and_each_receiver_gets_only_its_events(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver("/services/T1/B2/x") as slack:
        monkeypatch.setenv("SLACK_URL", slack.url)
        cfg = settings(
            tmp_path,
            ReceiverConfig(name="ops", url_env="HOOK_URL", events=["promotion"]),
            ReceiverConfig(name="chat", kind="slack", url_env="SLACK_URL"),
            dashboard_url="http://127.0.0.1:8090",
        )
        gate = {**GATE, "decision": "reject", "challenger": 0.81}
        why = "roc_auc 0.8100 does not beat champion v3 0.8201"
        hooks.on_register(registration("5", False), "run-2", why, cfg, gate)
        assert receiver.bodies() == []  # ops takes promotions only
        [body] = slack.bodies()
    assert set(body) == {"text"}
    text = body["text"]
    assert text.startswith("*[seamless] rejection*: credit_risk version 5 was registered as ")
    assert "the gate kept version 3 as champion." in text and why in text
    assert "challenger 0.81" in text and "champion 0.8201" in text and "metric roc_auc" in text
    assert text.endswith("<http://127.0.0.1:8090/models/credit_risk/5|open>")


def test_a_receiver_that_is_down_never_fails_the_step_and_the_event_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOOK_URL", f"http://127.0.0.1:{free_port()}/hook/T0KEN-secret")
    cfg = settings(tmp_path)
    entry = hooks.on_rollback("credit_risk", "5", "4", "complaints about declines", cfg)
    assert entry["action"] == audit.ROLLBACK  # the step's own work is done
    [kept] = dead_letters(tmp_path / "dead-letter.jsonl")
    assert kept["receiver"] == "ops" and kept["attempts"] == 3
    assert kept["error"] == "cannot reach 127.0.0.1: ConnectionError"
    assert kept["payload"]["event"] == "rollback"
    assert kept["payload"]["summary"] == (
        "credit_risk was rolled back: version 4 is champion again (was 5)."
    )
    assert kept["payload"]["reason"] == "complaints about declines"
    err = capsys.readouterr().err
    assert "notifications: rollback: NOT sent to ops (cannot reach 127.0.0.1" in err
    assert "T0KEN" not in err and "T0KEN" not in json.dumps(kept)  # the URL is a secret
    # What a run summary lists (pipelines/local.py): one line per event kept.
    assert notify.dead_lettered(tmp_path / "dead-letter.jsonl") == [
        "rollback to ops: cannot reach 127.0.0.1: ConnectionError"
    ]
    assert (tmp_path / "dead-letter.jsonl").stat().st_mode & 0o777 == 0o600


def test_5xx_and_429_are_retried_a_refusal_is_not(tmp_path: Path, receiver: Receiver) -> None:
    cfg = settings(tmp_path)
    receiver.statuses = [503, 429]
    out = notify.emit(cfg, notify.Event("rollback", "one", model="m", version="1"))
    assert out.delivered == ["ops"] and len(receiver.posts) == 3
    receiver.statuses = [400]
    out = notify.emit(cfg, notify.Event("rollback", "two", model="m", version="1"))
    assert out.dead_lettered == [("ops", "127.0.0.1 answered HTTP 400")]
    assert len(receiver.posts) == 4  # one attempt: the receiver refused this payload
    [kept] = dead_letters(tmp_path / "dead-letter.jsonl")
    assert kept["attempts"] == 1


def test_an_unset_url_variable_is_named_and_the_event_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_URL", raising=False)
    out = notify.emit(settings(tmp_path), notify.Event("drift", "x", model="m", version="1"))
    assert out.dead_lettered == [("ops", "environment variable HOOK_URL (its URL) is not set")]
    monkeypatch.setenv("HOOK_URL", "ftp://example.com/x")
    out = notify.emit(settings(tmp_path), notify.Event("drift", "x", model="m", version="1"))
    assert out.dead_lettered == [
        ("ops", "environment variable HOOK_URL does not hold an http(s) URL")
    ]
    assert len(dead_letters(tmp_path / "dead-letter.jsonl")) == 2


def test_on_the_cluster_the_url_comes_from_the_mounted_secret(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "HOOK_URL").write_text(receiver.url + "\n")  # as `kubectl create secret` keeps it
    monkeypatch.delenv("HOOK_URL")
    monkeypatch.setenv("SEAMLESS_NOTIFICATIONS_DIR", str(secret))
    out = notify.emit(settings(tmp_path), notify.Event("drift", "x", model="m", version="1"))
    assert out.delivered == ["ops"] and receiver.bodies("drift")
    (secret / "HOOK_URL").unlink()
    out = notify.emit(settings(tmp_path), notify.Event("drift", "y", model="m", version="1"))
    assert out.dead_lettered == [
        ("ops", f"environment variable HOOK_URL (its URL) is not set, nor is {secret}/HOOK_URL")
    ]


def test_replay_sends_what_was_kept_once_the_receiver_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = settings(tmp_path, retries=0)
    path = tmp_path / "dead-letter.jsonl"
    monkeypatch.setenv("HOOK_URL", f"http://127.0.0.1:{free_port()}/hook")
    hooks.on_rollback("credit_risk", "5", "4", "first", cfg)
    hooks.on_rollback("credit_risk", "4", "3", "second", cfg)
    # An event for a receiver the config no longer has stays, as does a line not ours.
    with path.open("a") as fh:
        fh.write(json.dumps({"receiver": "gone", "payload": {"event": "drift"}}) + "\n")
        fh.write("not json\n")
    down = notify.replay(cfg)
    assert (down.sent, down.kept, down.unknown_receivers) == (0, 4, ["gone"])
    assert down.errors == ["ops: cannot reach 127.0.0.1: ConnectionError"] * 2
    with webhook_receiver() as back:
        monkeypatch.setenv("HOOK_URL", back.url)
        up = notify.replay(cfg)
        assert [b["reason"] for b in back.bodies("rollback")] == ["first", "second"]
    assert (up.sent, up.kept) == (2, 2)
    left = path.read_text().splitlines()
    assert json.loads(left[0])["receiver"] == "gone" and left[1] == "not json"
    assert not path.with_name(path.name + ".replaying").exists()


def test_drift_is_sent_for_verdicts_that_call_for_action_only(
    tmp_path: Path, receiver: Receiver
) -> None:
    cfg = settings(tmp_path)
    details = {
        "reason": "3 features drifted (income PSI 0.41)",
        "drifted_features": 3.0,
        "window_rows": 5000.0,
        "psi.income": 0.41,
        "reference": "served",
    }
    for decision in ("ok", "not_enough_data", "post_deploy_keep"):
        hooks.on_monitoring_decision("credit_risk", "4", decision, details, cfg)
    assert receiver.bodies() == []
    hooks.on_monitoring_decision("credit_risk", "4", "retrain", details, cfg)
    [body] = receiver.bodies("drift")
    assert body["summary"] == "Monitoring of credit_risk version 4 decided retrain."
    assert body["reason"] == "3 features drifted (income PSI 0.41)"
    assert body["numbers"] == {"drifted_features": 3.0, "window_rows": 5000.0}


def test_a_failed_validation_is_sent_with_its_counts(tmp_path: Path, receiver: Receiver) -> None:
    sha = "ab" * 32
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "manifest.json").write_text(json.dumps({"tables": {}, "sha256": sha}))
    report = tmp_path / "validation.html"
    report.write_text("<html>report</html>")
    counts = {"evaluated": 40.0, "failed": 2.0, "failed_critical": 1.0, "failed_warning": 1.0}
    cfg = settings(tmp_path, dashboard_url="https://dash.example.com")
    hooks.on_validate(dataset, report, "warn", "run-3", cfg, counts)
    assert receiver.bodies() == []  # warnings are in the report; only a failure is sent
    hooks.on_validate(dataset, report, "fail", "run-3", cfg, counts)
    [body] = receiver.bodies("validation_failure")
    assert body["dataset_sha256"] == sha and body["model"] is None
    assert body["summary"].startswith(f"Validation failed for dataset {sha[:12]}")
    assert body["numbers"] == {"failed": 2, "failed_critical": 1, "failed_warning": 1}
    assert body["link"] == f"https://dash.example.com/data/{sha}"


def test_a_manual_promotion_is_sent(tmp_path: Path, receiver: Receiver) -> None:
    hooks.on_manual_promotion("credit_risk", "4", "6", "hotfix approved", settings(tmp_path))
    [body] = receiver.bodies("promotion")
    assert body["summary"] == (
        "credit_risk version 6 was promoted to champion by hand (was version 4)."
    )


@pytest.mark.parametrize(
    ("block", "sentence"),
    [
        ("receivers: [{name: a, url_env: 'not a name'}]", "is not an environment variable name"),
        ("receivers: [{name: a, url_env: X}, {name: a, url_env: Y}]", "repeated: a"),
        ("receivers: [{name: a, url_env: X, events: []}]", "at least one event"),
        ("receivers: [{name: a, url_env: X, events: [promoted]}]", "notifications.receivers"),
        ("receivers: [{name: a, url: 'http://x'}]", "notifications.receivers"),
        ("dashboard_url: seamless.example.com", "is not an http(s) URL"),
        ("retries: 11", "notifications.retries"),
    ],
)
def test_config_mistakes_are_one_sentence_naming_the_key(block: str, sentence: str) -> None:
    text = default_config_path().read_text() + f"\nnotifications:\n  {block}\n"
    with pytest.raises(SeamlessError, match="notifications") as info:
        parse_config(text, origin="use-case.yaml")
    message = str(info.value)
    assert message.startswith("use-case.yaml") and sentence in message, message
    assert "\n" not in message.strip()


def test_cli_test_and_replay(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "use-case.yaml"
    dead = tmp_path / "ws" / "dead.jsonl"
    config.write_text(
        default_config_path().read_text()
        + "\nnotifications:\n  retries: 0\n  dead_letter: "
        + str(dead)
        + "\n  receivers: [{name: ops, url_env: HOOK_URL}]\n"
    )
    ws = ["--config", str(config), "--workspace", str(tmp_path / "ws")]
    runner = CliRunner()
    done = runner.invoke(app, ["notifications", "test", *ws])
    assert done.exit_code == 0, done.output
    assert "ops: ok" in done.output and receiver.bodies("test")
    monkeypatch.setenv("HOOK_URL", f"http://127.0.0.1:{free_port()}/hook")
    done = runner.invoke(app, ["notifications", "test", *ws])
    assert done.exit_code == 1 and "ops: cannot reach 127.0.0.1" in done.output
    cfg = parse_config(config.read_text())
    notify.emit(cfg.notifications, notify.Event("rollback", "r", model="m", version="1"))
    done = runner.invoke(app, ["notifications", "replay", *ws, "--json"])
    assert done.exit_code == 1 and json.loads(done.output)["kept"] == 1
    monkeypatch.setenv("HOOK_URL", receiver.url)
    done = runner.invoke(app, ["notifications", "replay", *ws])
    assert done.exit_code == 0 and "sent 1, kept 0" in done.output
    assert [b["summary"] for b in receiver.bodies("rollback")] == ["r"]
