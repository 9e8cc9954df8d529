"""`seamless demo-loop`: the closed loop, locally, from a champion to an automatic rollback.

1. train a champion on the normal period;
2. serve it (a real `seamless serve` process on loopback, with tokens);
3. replay normal traffic with its labels -> monitoring stays quiet;
4. replay the generator's drifted period -> drift detected -> retrain on fresh data ->
   the gate decides -> new champion;
5. train a deliberately degraded model (shuffled labels; the gate rejects it), promote
   it by hand, replay traffic -> the post-deploy check rolls it back automatically;
6. monitor once more, nothing changed -> quiet;
7. batch-score the drifted period's latest applications with the champion, each at its
   own time, with features from the offline store;
8. change one customer's credit history by an event on a Redis stream (a throwaway
   redis-server; skipped without one): the stream consumer pushes it into the online
   store and serving scores the customer on it at once (pipelines/demo_stream.py).
Every promotion, rejection, rollback and drift verdict goes to a webhook inbox on loopback
(pipelines/demo_inbox.py), as it would to a team's. It ends with every decision, its
reason and numbers, read back from the audit trail, and what the inbox received.

Drift is judged against each version's served baseline (`monitoring.reference: served`,
its first `monitoring.baseline_rows` predictions), not against its training rows: in the
generated data `delinquencies_12m` climbs through every period (a default adds to the
customer's later credit snapshots and never ages out), so the restored champion's
training rows, spread over its whole period, differ from the replayed traffic, the
period's latest applications, with nothing changed (docs/drift-benchmark.md has the
numbers). The report still shows the window against the training rows.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from components.common.config import SeamlessConfig, load_config
from components.common.errors import SeamlessError
from components.common.net import free_port
from pipelines.demo_inbox import INBOX_URL_ENV, Inbox, config_with_inbox, event_line
from pipelines.demo_stream import stream_step

Say = Callable[[str], None]


def as_of_rows(config: SeamlessConfig, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each label row with every feature as of its own time (what a request would carry)."""
    key = config.entity_key()
    label_table = config.labels.table
    ts = config.timestamp_key(label_table)
    rows = frames[label_table].sort_values(ts).reset_index(drop=True)
    for view in config.features.views:
        table = frames[view.table].sort_values(config.timestamp_key(view.table))
        table = table.rename(columns={config.timestamp_key(view.table): "_feature_ts"})
        rows = pd.merge_asof(
            rows,
            table[[key, "_feature_ts", *view.features]],
            left_on=ts,
            right_on="_feature_ts",
            by=key,
            direction="backward",
        ).drop(columns="_feature_ts")
    return rows


def instance(types: Mapping[str, str], record: Mapping[str, Any]) -> dict[str, Any]:
    """One feature row as JSON types, as a client sends it (ints as ints, NaN as null);
    `types`: feature name -> declared type (`SeamlessConfig.feature_types`)."""
    item: dict[str, Any] = {}
    for name, kind in types.items():
        value = record[name]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            item[name] = None
        elif kind == "int":
            item[name] = int(value)
        elif kind == "float":
            item[name] = float(value)
        else:
            item[name] = str(value)
    return item


def instances(config: SeamlessConfig, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready feature rows typed as the serving schema wants (ints as ints, NaN as null)."""
    types = config.feature_types()
    return [instance(types, record) for record in rows[list(types)].to_dict("records")]


class Server:
    """`seamless serve` in a child process, stopped on exit."""

    def __init__(self, workspace: Path, config_path: Path) -> None:
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        tokens = workspace / "access" / "serve-tokens.txt"
        tokens.parent.mkdir(parents=True, exist_ok=True)
        tokens.write_text(f"{self.token}:admin\n")
        tokens.chmod(0o600)
        exe = Path(sys.executable).parent / "seamless"
        self.proc = subprocess.Popen(
            [
                str(exe),
                "serve",
                "--workspace",
                str(workspace),
                "--config",
                str(config_path),
                "--port",
                str(self.port),
                "--poll-seconds",
                "1",
                "--tokens-file",
                str(tokens),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(workspace / "logs" / "serve.log", "ab"),  # noqa: SIM115
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def wait_ready(self, timeout_s: float = 300) -> None:
        """Until /readyz answers 200 (preparing the model takes ~45 s on a busy machine)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SeamlessError("The serving process exited; see logs/serve.log.")
            try:
                if self.session.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise SeamlessError(f"Serving at {self.url} was not ready within {timeout_s:.0f} s.")

    def wait_version(self, version: str, timeout_s: float = 30) -> None:
        """Until the poller has swapped to `version` (it polls the alias every second)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = self.session.get(f"{self.url}/readyz", timeout=2).json()
            if str(ready.get("model", {}).get("version")) == str(version):
                return
            time.sleep(0.5)
        raise SeamlessError(f"Serving did not switch to v{version} within {timeout_s:.0f} s.")

    def replay(self, config: SeamlessConfig, rows: pd.DataFrame, batch: int = 20) -> str:
        """Predict every row (batched) and send its true label as feedback; returns versions."""
        label = config.labels.label_column
        versions = set()
        items = instances(config, rows)
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            answer = self.session.post(
                f"{self.url}/v1/predict", json={"instances": chunk}, timeout=30
            )
            answer.raise_for_status()
            body = answer.json()
            versions.add(body["model_version"])
            feedback = [
                {"request_id": body["request_id"], "index": i, "label": int(y)}
                for i, y in enumerate(rows[label].iloc[start : start + batch])
            ]
            self.session.post(
                f"{self.url}/v1/feedback", json={"feedback": feedback}, timeout=30
            ).raise_for_status()
        return ",".join(sorted(versions))

    def score(self, entity_id: Any) -> float:
        """The champion's score for one entity, its features looked up online."""
        answer = self.session.post(
            f"{self.url}/v1/predict", json={"entity_ids": [entity_id]}, timeout=30
        )
        answer.raise_for_status()
        return float(answer.json()["predictions"][0]["score"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _monitor_line(outcome: Any) -> str:
    """The monitor step's decision and reason, from the run's audit events (the
    post-deploy check's are the ones without a `reference`)."""
    for event in outcome.events:
        details = event.get("details") or {}
        decision = str(details.get("decision", ""))
        if event.get("action") == "monitoring_decision" and "reference" in details:
            why = str(details.get("reason", ""))
            return f"{decision} ({details.get('reference', '?')} reference): {why[:300]}"
    return str(outcome.decision)


def run_demo_loop(
    workspace: Path, config_path: Path, rows: int = 20_000, say: Say = print
) -> list[dict[str, Any]]:
    """The whole loop; returns the decisions (audit events) it produced."""
    from components.common.env import feast_repo_path
    from components.governance.audit import audit_log
    from pipelines.demo_data import generate, generate_frames
    from pipelines.local import run_batch_scoring, run_monitoring, run_training, use_workspace

    workspace = workspace.resolve()
    config_path = config_with_inbox(config_path, workspace / "demo-loop" / "config.yaml")
    config = load_config(config_path)
    (workspace / "logs").mkdir(parents=True, exist_ok=True)
    use_workspace(workspace)
    head = sum(1 for _ in audit_log().entries())
    data = workspace / "data"
    normal, drifted, degraded = data / "normal", data / "drifted", data / "degraded"
    generate(normal, n_rows=rows, seed=11)
    generate(drifted, n_rows=rows, seed=12, drift=True)
    # The degraded model: the drifted period with its labels shuffled (no signal left).
    generate(degraded, n_rows=rows, seed=12, drift=True)
    labels = pd.read_parquet(degraded / "labels.parquet")
    labels[config.labels.label_column] = np.random.default_rng(0).permutation(
        labels[config.labels.label_column].to_numpy()
    )
    labels.to_parquet(degraded / "labels.parquet", index=False)

    inbox = Inbox(workspace / "notifications" / "demo-inbox.jsonl")
    received = len(inbox.events())
    os.environ[INBOX_URL_ENV] = inbox.url
    say("1/8 training the first champion on the normal period")
    first = run_training(config_path, normal, workspace)
    say(f"    v{first.version}: {first.decision}: {first.reason}")

    traffic_normal = as_of_rows(config, generate_frames(n_rows=4000, seed=21)).tail(800)
    traffic_drift = as_of_rows(config, generate_frames(n_rows=4000, seed=22, drift=True)).tail(800)
    server = Server(workspace, config_path)
    try:
        server.wait_ready()
        say(f"2/8 serving v{first.champion_version} at {server.url}")
        served = server.replay(config, traffic_normal)
        say(f"3/8 replayed {len(traffic_normal)} normal requests (v{served}); monitoring")
        quiet = run_monitoring(config_path, drifted, workspace, max_rows=len(traffic_normal))
        say(f"    monitoring: {_monitor_line(quiet)}")

        served = server.replay(config, traffic_drift)
        say(f"4/8 replayed {len(traffic_drift)} drifted requests (v{served}); monitoring")
        loud = run_monitoring(config_path, drifted, workspace, max_rows=len(traffic_drift))
        say(f"    monitoring: {_monitor_line(loud)}")
        say(f"    champion v{loud.champion_before} -> v{loud.champion_after}")
        if loud.champion_after:
            server.wait_version(loud.champion_after)
        served = server.replay(config, traffic_drift)
        say(f"    replayed {len(traffic_drift)} requests on the champion (v{served})")

        say("5/8 training a degraded model (shuffled labels) and promoting it by hand")
        bad = run_training(config_path, degraded, workspace)
        say(f"    v{bad.version}: gate said {bad.decision}: {bad.reason}")
        if bad.version and bad.decision != "promote":
            from components.common.env import deployments_dir
            from components.register.operations import promote

            os.environ.setdefault("SEAMLESS_ROLE", "admin")
            promote(
                config.model.name,
                bad.version,
                "demo: deliberately degraded",
                deployments_dir(),
                config.notifications,
            )
            server.wait_version(bad.version)
        served = server.replay(config, traffic_drift)
        say(f"    replayed {len(traffic_drift)} requests on v{served}; monitoring")
        after = run_monitoring(config_path, drifted, workspace, max_rows=len(traffic_drift))
        say(f"    champion v{after.champion_before} -> v{after.champion_after}")
        say(f"    monitoring: {_monitor_line(after)}")

        say("6/8 monitoring once more: same traffic, same data")
        again = run_monitoring(config_path, drifted, workspace, max_rows=len(traffic_drift))
        say(f"    monitoring: {_monitor_line(again)}")

        batch = _latest_applications(config, drifted, workspace / "demo-loop", n=2000)
        say(f"7/8 batch scoring {batch['rows']} applications, each at its own time")
        scored = run_batch_scoring(
            config_path,
            workspace,
            {
                "input_uri": str(batch["path"]),
                "as_of": "",
                "timestamp_column": batch["timestamp_column"],
                "output_uri": str(workspace / "batch" / "demo-loop-scores.parquet"),
                "model_version": "",
            },
        )
        say(
            f"    v{scored['model_version']}: {scored['positives']} of {scored['rows']} at or "
            f"above {scored['threshold']} -> {scored['output']}"
        )

        customer = pd.read_parquet(batch["path"])[config.entity_key()].tolist()[-1]
        say(f"8/8 streaming: customer {customer}'s credit history changes by an event")
        pushed = stream_step(config, feast_repo_path(), customer, server.score, say)
        if pushed:
            was = pushed["before"]
            changed = ", ".join(f"{k} {was[k]} -> {v}" for k, v in pushed["after"].items())
            say(
                f"    consumed {pushed['written']} event ({changed}); served at once: score "
                f"{pushed['score_before']:.3f} -> {pushed['score_after']:.3f}"
            )
    finally:
        server.stop()
        os.environ.pop(INBOX_URL_ENV, None)
        inbox.close()
    events = inbox.events()[received:]
    say(f"The webhook inbox received {len(events)} events ({inbox.path}):")
    for event in events:
        say(f"    {event_line(event)}")
    return list(audit_log().entries())[head:]


def _latest_applications(
    config: SeamlessConfig, data: Path, folder: Path, n: int
) -> dict[str, Any]:
    """The period's latest `n` label rows (entity and time, no label) as a Parquet file;
    `data` is the generator's output, one `<table>.parquet` per table."""
    table = config.labels.table
    ts = config.timestamp_key(table)
    labels = pd.read_parquet(data / f"{table}.parquet", columns=[config.entity_key(), ts])
    latest = labels.sort_values(ts).tail(n)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "latest-applications.parquet"
    latest.to_parquet(path, index=False)
    return {"path": path, "rows": len(latest), "timestamp_column": ts}
