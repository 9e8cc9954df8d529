"""The monitoring stage end to end, as the component and the CLI call it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.config import SeamlessConfig
from components.common.env import workspace as default_workspace
from components.common.errors import SeamlessError
from components.common.monitoring_config import MonitoringConfig, monitoring_config
from components.common.reference_profile import baseline_profile, load_reference_profile
from components.common.tracking import CHAMPION, holdout_metrics
from components.governance import hooks
from components.monitor import guard
from components.monitor.drift import DRIFT, WARN, compare, not_enough_data
from components.monitor.exporters import log_run, write_textfile
from components.monitor.performance import BREACH, live_performance
from components.monitor.report import render_html
from components.monitor.results import RETRAIN, RETRAIN_SKIPPED, MonitoringResult, decide
from components.monitor.traffic import (
    JoinStats,
    feature_rows,
    id_key,
    labelled,
    log_location,
    read_first_served,
    read_traffic,
    window,
)

TEXTFILE = "seamless_monitor.prom"
WINDOW_KEYS = ("window_hours", "max_rows", "label_window_hours", "max_labels", "min_rows")


def with_windows(cfg: MonitoringConfig, **overrides: float | int | None) -> MonitoringConfig:
    """`cfg` with the window parameters that are given (None or 0 keeps the config's)."""
    unknown = [k for k in overrides if k not in WINDOW_KEYS]
    if unknown:
        raise SeamlessError(f"Unknown window parameters {unknown}; known: {list(WINDOW_KEYS)}.")
    update: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None or value == 0:
            continue
        if value < 0:
            raise SeamlessError(f"Window parameter {key} must be positive, got {value}.")
        update[key] = int(value) if key in ("max_rows", "max_labels", "min_rows") else value
    return cfg.model_copy(update=update)


def default_textfile(workspace: Path) -> Path:
    """Where the gauges go by default: `<workspace>/monitoring/seamless_monitor.prom`."""
    return workspace / "monitoring" / TEXTFILE


def _describe(frame: pd.DataFrame, hours: float | None, cap: int | None) -> str:
    span = "whole log" if hours is None else f"last {hours:g} h"
    capped = "" if cap is None else f", latest {cap} at most"
    if frame.empty:
        return f"{span}{capped}: empty"
    return f"{span}{capped}: {frame['ts'].min().isoformat()} to {frame['ts'].max().isoformat()}"


def _lacking(ws: Path, name: str, version: str, lacking: list[str]) -> SeamlessError:
    return SeamlessError(
        f"Served predictions of '{name}' in {log_location(ws)} lack features {lacking} "
        f"that version {version}'s reference profile has; the prediction log and the "
        "monitored model version do not match."
    )


def read_since(checked: pd.Timestamp, cfg: MonitoringConfig) -> datetime | None:
    """The earliest time either window reaches back to (None: a window is the whole
    log). Feedback comes after the prediction it labels, so it is read from there too."""
    if cfg.window_hours is None or cfg.label_window_hours is None:
        return None
    hours = max(cfg.window_hours, cfg.label_window_hours)
    return (checked - pd.Timedelta(hours=hours)).to_pydatetime()


def without(preds: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """`preds` less the baseline's predictions (each known by its request id and its
    index in the request)."""
    if base.empty:
        return preds
    keys = set(zip(base["request_id"].map(id_key), base["index"].map(id_key), strict=True))
    mine = zip(preds["request_id"].map(id_key), preds["index"].map(id_key), strict=True)
    return preds[[k not in keys for k in mine]]


def run_monitoring(
    config: SeamlessConfig,
    *,
    model_alias: str = CHAMPION,
    workspace: Path | None = None,
    report_path: str | Path | None = None,
    textfile_path: str | Path | None = None,
    now: datetime | None = None,
    log_to_mlflow: bool = True,
    data_dir: str | Path | None = None,
    reference: str | None = None,
    **windows: float | int | None,
) -> MonitoringResult:
    """Check the served traffic of `config.model.name` at `model_alias` (alias or version).

    Reads the workspace's prediction/feedback logs and the version's stored reference
    profile; writes the HTML report, the Prometheus textfile and an MLflow run when asked.
    `reference` (served / training) overrides `monitoring.reference`; `data_dir` is the
    data a retrain would ingest (for the retrain guard's data fingerprint).
    """
    cfg = with_windows(monitoring_config(config), **windows)
    if reference:
        if reference not in ("served", "training"):
            raise SeamlessError(f"Reference must be 'served' or 'training', got '{reference}'.")
        cfg = cfg.model_copy(update={"reference": reference})
    ws = Path(workspace) if workspace is not None else default_workspace()
    name = config.model.name
    profile, mv = load_reference_profile(name, model_alias)
    version = str(mv.version)
    checked = pd.Timestamp(now if now is not None else datetime.now(UTC))
    checked = checked.tz_localize(UTC) if checked.tzinfo is None else checked.tz_convert(UTC)

    since = read_since(checked, cfg)
    traffic = read_traffic(ws, model_name=name, since=since)
    preds = traffic.predictions
    names = list(profile["features"])
    ref_info: dict[str, Any] = {"kind": cfg.reference}
    ref_profile: dict[str, Any] | None = profile
    candidates = preds
    if cfg.reference == "served":
        base = read_first_served(ws, name, version, cfg.baseline_rows)
        # The baseline's rows are the reference, not part of the window compared with it.
        candidates = without(preds, base)
        if len(base) < cfg.baseline_rows:
            ref_profile = None
            ref_info["description"] = (
                f"collecting the served baseline of v{version}: {len(base)} of "
                f"{cfg.baseline_rows} predictions (monitoring.baseline_rows)"
            )
        else:
            base_frame, lacking = feature_rows(base, names)
            if lacking:
                raise _lacking(ws, name, version, lacking)
            ref_profile = baseline_profile(profile, base_frame, sample_size=cfg.profile_sample_size)
            ref_info["description"] = (
                f"served baseline: the first {len(base)} predictions of v{version}, "
                f"{base['ts'].min().isoformat()} to {base['ts'].max().isoformat()}"
            )
        ref_info["rows"] = len(base)
    else:
        ref_info["description"] = f"training rows of v{version} ({profile.get('rows')} rows)"
        ref_info["rows"] = profile.get("rows")
    served = window(candidates, checked, cfg.window_hours, cfg.max_rows)
    frame, lacking = feature_rows(served, names)
    if lacking:
        raise _lacking(ws, name, version, lacking)
    if ref_profile is None:
        drift = not_enough_data(profile, frame, cfg, str(ref_info["description"]))
    else:
        drift = compare(ref_profile, frame, cfg)
    if ref_profile is not profile and len(frame) >= cfg.min_rows:
        # The same window against the training rows: skew since training, for the report.
        vs_training = compare(profile, frame, cfg)
        ref_info["vs_training"] = {
            "status": vs_training.status,
            "drift": vs_training.by_status(DRIFT),
            "warn": vs_training.by_status(WARN),
            "message": vs_training.message,
        }

    # Performance is the monitored version's own: labels of other versions' predictions
    # say nothing about it.
    mine = preds[preds["model_version"] == version]
    join = JoinStats()
    joined = labelled(mine, traffic.feedback, config.labels, join)
    recent = window(joined, checked, cfg.label_window_hours, cfg.max_labels)
    perf = live_performance(recent, config.model.threshold, holdout_metrics(mv.tags or {}), cfg)

    decision, reason = decide(drift, perf)
    guarded: dict[str, Any] = {}
    if decision == RETRAIN and cfg.retrain_requires_change:
        drifted = drift.by_status(DRIFT) if drift.status == DRIFT else []
        found = guard.check(config, version, drifted, perf.status == BREACH, data_dir)
        guarded = {**found.details, "allowed": found.allow, "reason": found.reason}
        if not found.allow:
            decision = RETRAIN_SKIPPED
        if found.reason:
            reason = f"{reason}; {found.reason}"
    result = MonitoringResult(
        model_name=name,
        model_version=version,
        model_alias=model_alias,
        checked_at=checked.isoformat(),
        decision=decision,
        reason=reason,
        drift=drift,
        performance=perf,
        window={
            "drift": _describe(served, cfg.window_hours, cfg.max_rows),
            "performance": _describe(recent, cfg.label_window_hours, cfg.max_labels),
            "read_since": None if since is None else since.isoformat(),
            "skipped": traffic.skipped,
            "labels": join.to_dict(),
        },
        reference=ref_info,
        guard=guarded,
    )
    html = render_html(result)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(html, encoding="utf-8")
    if textfile_path is not None:
        write_textfile(result, textfile_path)
    if log_to_mlflow:
        result.mlflow_run_id = log_run(result, html, config.model.experiment)
    # Every caller's decision is audited: the KFP step, `seamless monitor run`, the demo.
    # The guard's record (verdict, data fingerprint) is what the next check compares with.
    hooks.on_monitoring_decision(
        name,
        version,
        str(decision),
        {
            "reason": reason,
            "reference": cfg.reference,
            **result.summary_metrics(),
            **{k: v for k, v in guarded.items() if k not in ("reason", "allowed")},
        },
        notifications=config.notifications,
    )
    return result
