"""Monitoring that does not cry wolf: the served baseline and the retrain guard.

- On the demo data, `delinquencies_12m` rises through every generated period (a
  default adds to the customer's later credit snapshots and never ages out), so a
  profile of training rows from the whole period differs from any window of its most
  recent applications, with nothing changed. The served baseline compares like with like.
- The same drift on the same data retrains once: later checks of the same version say
  `retrain_skipped` until the data or the signal changes (real MLflow store, real audit
  trail, the ingest stage's own code for the data fingerprint), over several runs.
"""

# No `from __future__ import annotations`: KFP reads annotations in imported test modules.
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.common.model_input import model_input
from components.common.monitoring_config import MonitoringConfig, monitoring_config
from components.common.reference_profile import baseline_profile, profile_for_training
from components.monitor.drift import DRIFT, NOT_ENOUGH_DATA, OK, compare
from components.monitor.stage import run_monitoring
from components.predictions.files import AppendLog
from components.predictions.records import jsonable
from components.register.registry import register
from pipelines.demo_data import generate, generate_frames
from pipelines.demo_loop import as_of_rows
from tests.factories import quick_model, train_and_register_once, training_set

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEATURE = "delinquencies_12m"


# ------------------------------------------------ the finding, on the demo loop's data


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    config = load_config(default_config_path())
    # What the demo loop's retrained champion (v2) is trained on, and the traffic it serves.
    train = as_of_rows(config, generate_frames(n_rows=20_000, seed=12, drift=True))
    traffic = as_of_rows(config, generate_frames(n_rows=4_000, seed=22, drift=True))
    return {
        "config": config,
        "train": train,
        "profile": profile_for_training(config, model_input(config, train)),
        "traffic": traffic,
    }


def _feature(result: Any, name: str = FEATURE) -> Any:
    return next(f for f in result.features if f.feature == name)


@pytest.mark.unit
def test_the_trend_inside_the_training_period_is_not_drift(demo: dict[str, Any]) -> None:
    """Measured: the training rows' own last 800 applications show `drift` in
    delinquencies_12m against their profile (mean 2.0 vs 0.93, PSI 0.27); 800 drawn
    from the whole period do not (PSI < 0.01). The demo's served traffic is the last
    800 applications of another seed of the same period: mean 1.54, PSI ~0.1."""
    config, profile = demo["config"], demo["profile"]
    cfg = MonitoringConfig(reference="training")
    own_tail = compare(profile, model_input(config, demo["train"].tail(800)), cfg)
    assert _feature(own_tail).status == DRIFT, own_tail.message
    assert _feature(own_tail).mean > 2 * profile["features"][FEATURE]["mean"]
    spread = compare(profile, model_input(config, demo["train"].sample(800, random_state=0)), cfg)
    assert _feature(spread).status == OK and _feature(spread).psi < 0.01
    # Month by month the feature climbs from ~0.3 to ~1.8 within the period.
    by_time = demo["train"].set_index("event_timestamp")[FEATURE]
    monthly = by_time.resample("MS").mean()
    assert monthly.iloc[0] < 0.4 and monthly.iloc[-1] > 1.5
    assert by_time.resample("QS").mean().is_monotonic_increasing

    # The demo's traffic against the training rows: delinquencies_12m is flagged ...
    served = model_input(config, demo["traffic"].tail(800))
    vs_training = compare(profile, served, cfg)
    assert _feature(vs_training).status != OK, vs_training.message
    # ... against what serving saw right after the deployment (the same replay) it is not.
    base = model_input(config, demo["traffic"].tail(800).head(500))
    vs_served = compare(baseline_profile(profile, base), served.tail(300), cfg)
    assert vs_served.status == OK, vs_served.message


@pytest.mark.unit
def test_served_baseline_keeps_detecting_real_drift(demo: dict[str, Any]) -> None:
    """A baseline of the normal period against the drifted period: drift, as with training
    rows; the baseline's own period is not (two-sample tests, 20 windows)."""
    config, profile = demo["config"], demo["profile"]
    cfg = MonitoringConfig()
    normal = model_input(config, as_of_rows(config, generate_frames(n_rows=8_000, seed=21)))
    drifted = model_input(config, demo["traffic"])
    verdicts_same, verdicts_drift = [], []
    for i in range(20):
        order = np.random.default_rng(i).permutation(len(normal))
        base = baseline_profile(profile, normal.iloc[order[:500]])
        verdicts_same.append(compare(base, normal.iloc[order[500:1300]], cfg).status)
        verdicts_drift.append(compare(base, drifted.sample(800, random_state=i), cfg).status)
    assert verdicts_same.count(DRIFT) == 0, verdicts_same
    assert verdicts_drift.count(DRIFT) == 20, verdicts_drift


# ------------------------------------------------- the stage over several monitoring runs


@pytest.fixture(scope="module")
def _trained(store: Path) -> dict[str, Any]:
    return train_and_register_once(store, quick_model(load_config(default_config_path())), "b" * 64)


def _serve(
    workspace: Path,
    cfg: SeamlessConfig,
    version: str,
    n: int,
    seed: int,
    start: datetime,
    shift: dict[str, float] | None = None,
) -> None:
    """`n` logged predictions (one every 10 s from `start`) with labels; random scores."""
    frame = training_set(n, seed=seed)
    for column, delta in (shift or {}).items():
        frame[column] = frame[column] + delta
    x = model_input(cfg, frame)
    rng = np.random.default_rng(seed)
    preds, labels = [], []
    for i, row in enumerate(x.to_dict(orient="records")):
        ts = (start + timedelta(seconds=10 * i)).isoformat()
        score = float(rng.random())
        rid = f"r{seed}-{i}"
        preds.append(
            {
                "ts": ts,
                "request_id": rid,
                "index": 0,
                "entity_id": None,
                "model_name": cfg.model.name,
                "model_version": version,
                "features": {k: jsonable(v) for k, v in row.items()},
                "score": score,
                "decision": score >= 0.5,
            }
        )
        labels.append({"ts": ts, "request_id": rid, "label": int(rng.random() < 0.3)})
    for prefix, records in (("predictions", preds), ("feedback", labels)):
        log = AppendLog(workspace / prefix, prefix)
        log.open()
        log.append(records)
        log.close()


def _serve_drifted(
    workspace: Path, cfg: SeamlessConfig, version: str, seeds: tuple[int, int]
) -> None:
    """500 predictions 20 h ago (the served baseline), then 600 from 10 h ago with
    credit_utilization shifted by 0.4: the drift the retrain tests start from."""
    _serve(workspace, cfg, version, 500, seed=seeds[0], start=NOW - timedelta(hours=20))
    _serve(
        workspace,
        cfg,
        version,
        600,
        seed=seeds[1],
        start=NOW - timedelta(hours=10),
        shift={"credit_utilization": 0.4},
    )


def _decisions(model: str, version: str) -> list[dict[str, Any]]:
    from components.governance import audit

    subject = audit.model_subject(model, version)
    return [
        e["details"]
        for e in audit.audit_log().entries()
        if e["action"] == audit.MONITORING_DECISION and e["subject"] == subject
    ]


@pytest.mark.unit
@pytest.mark.slow
def test_served_baseline_is_collected_first(registered: dict[str, Any], tmp_path: Path) -> None:
    cfg, version = registered["config"], registered["version"]
    ws = tmp_path / "traffic"
    _serve(ws, cfg, version, 400, seed=3, start=NOW - timedelta(hours=8))
    early = run_monitoring(cfg, workspace=ws, now=NOW, log_to_mlflow=False)
    assert early.drift.status == NOT_ENOUGH_DATA
    assert "collecting the served baseline of v1: 400 of 500" in early.drift.message
    _serve(ws, cfg, version, 600, seed=4, start=NOW - timedelta(hours=6))
    done = run_monitoring(cfg, workspace=ws, now=NOW, log_to_mlflow=False)
    # 1,000 served: the first 500 are the baseline, the other 500 the window.
    assert done.reference["rows"] == 500 and done.drift.rows == 500
    assert done.drift.status in (OK, "warn"), done.drift.message
    assert "vs_training" in done.reference


@pytest.mark.unit
@pytest.mark.slow
def test_same_drift_on_same_data_retrains_once(
    registered: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven monitoring runs of one version with a persistent drift (and breach):
    retrain, skipped, skipped, retrain on new data, skipped, retrain on a new signal,
    skipped; with the guard off, retrain."""
    cfg, version = registered["config"], registered["version"]
    name = cfg.model.name
    ws, data = tmp_path / "traffic", tmp_path / "data"
    generate(data, n_rows=2_000, seed=5)
    _serve_drifted(ws, cfg, version, seeds=(1, 2))

    def run() -> Any:
        return run_monitoring(cfg, workspace=ws, now=NOW, log_to_mlflow=False, data_dir=data)

    first = run()
    assert first.decision == "retrain", first.reason
    assert "credit_utilization" in first.drift.by_status(DRIFT)
    sha = first.guard["data_source_sha256"]
    assert sha and len(sha) == 64
    # The retrain's challenger loses the gate: registered, not promoted.
    register(name, registered["model_uri"], "reject", {"seamless.test": "challenger"})

    decisions = [first]
    for _ in range(2):
        decisions.append(run())
    assert [d.decision for d in decisions[1:]] == ["retrain_skipped", "retrain_skipped"]
    assert "same data" in decisions[1].reason and sha[:12] in decisions[1].reason
    assert decisions[1].drift.status == DRIFT  # the drift is still reported ...
    assert decisions[1].guard["last_retrain"]["seq"] is not None  # ... and linked

    # New data (another snapshot of the sources): one retrain, then quiet again.
    generate(data, n_rows=2_000, seed=6)
    again = run()
    assert again.decision == "retrain", again.reason
    assert "new data since" in again.reason
    assert again.guard["data_source_sha256"] != sha
    assert run().decision == "retrain_skipped"

    # A new signal on the same data: credit_score drifts too.
    _serve(
        ws,
        cfg,
        version,
        600,
        seed=7,
        start=NOW - timedelta(hours=5),
        shift={"credit_utilization": 0.4, "credit_score": -250},
    )
    louder = run()
    assert louder.decision == "retrain", louder.reason
    assert "new signal" in louder.reason and "credit_score" in louder.reason
    assert run().decision == "retrain_skipped"

    # Recorded in the audit trail, with what the next check compares against.
    recorded = [d["decision"] for d in _decisions(name, version)]
    assert recorded[-7:] == [
        "retrain",
        "retrain_skipped",
        "retrain_skipped",
        "retrain",
        "retrain_skipped",
        "retrain",
        "retrain_skipped",
    ]
    last = _decisions(name, version)[-1]
    assert last["verdict"]["breach"] is True
    assert "credit_score" in last["verdict"]["drift"]

    # The guard can be turned off.
    off = monitoring_config(cfg).model_copy(update={"retrain_requires_change": False})
    unguarded = cfg.model_copy(update={"monitoring": off})
    result = run_monitoring(unguarded, workspace=ws, now=NOW, log_to_mlflow=False, data_dir=data)
    assert result.decision == "retrain" and result.guard == {}


@pytest.mark.unit
@pytest.mark.slow
def test_unknown_data_does_not_block_a_retrain(registered: dict[str, Any], tmp_path: Path) -> None:
    """Without readable data (no data dir) the fingerprint is unknown: retrain, said so."""
    cfg, version = registered["config"], registered["version"]
    ws = tmp_path / "traffic"
    _serve_drifted(ws, cfg, version, seeds=(11, 12))
    results = [run_monitoring(cfg, workspace=ws, now=NOW, log_to_mlflow=False) for _ in range(2)]
    assert [r.decision for r in results] == ["retrain", "retrain"]
    assert results[0].guard["data_source_sha256"] is None
    assert "profiles.parquet" in results[0].guard["data_fingerprint_error"]
    assert "fingerprint" in results[1].reason and "unknown" in results[1].reason
