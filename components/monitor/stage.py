"""The monitoring stage end to end, as the component and the CLI call it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.config import SeamlessConfig
from components.common.env import workspace as default_workspace
from components.common.errors import SeamlessError
from components.common.tracking import CHAMPION
from components.governance import hooks
from components.monitor.config import MonitoringConfig, monitoring_config
from components.monitor.drift import compare
from components.monitor.exporters import log_run, write_textfile
from components.monitor.performance import holdout_metrics, live_performance
from components.monitor.profile import load_reference_profile
from components.monitor.report import render_html
from components.monitor.results import MonitoringResult, decide
from components.monitor.traffic import (
    JoinStats,
    feature_rows,
    labelled,
    log_location,
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


def run_monitoring(
    config: SeamlessConfig,
    *,
    model_alias: str = CHAMPION,
    workspace: Path | None = None,
    report_path: str | Path | None = None,
    textfile_path: str | Path | None = None,
    now: datetime | None = None,
    log_to_mlflow: bool = True,
    **windows: float | int | None,
) -> MonitoringResult:
    """Check the served traffic of `config.model.name` at `model_alias` (alias or version).

    Reads the workspace's prediction/feedback logs and the version's stored reference
    profile; writes the HTML report, the Prometheus textfile and an MLflow run when asked.
    """
    cfg = with_windows(monitoring_config(config), **windows)
    ws = Path(workspace) if workspace is not None else default_workspace()
    name = config.model.name
    profile, mv = load_reference_profile(name, model_alias)
    version = str(mv.version)
    checked = pd.Timestamp(now if now is not None else datetime.now(UTC))
    checked = checked.tz_localize(UTC) if checked.tzinfo is None else checked.tz_convert(UTC)

    traffic = read_traffic(ws)
    preds = traffic.predictions[traffic.predictions["model_name"] == name]
    served = window(preds, checked, cfg.window_hours, cfg.max_rows)
    names = list(profile["features"])
    frame, lacking = feature_rows(served, names)
    if lacking:
        raise SeamlessError(
            f"Served predictions of '{name}' in {log_location(ws)} lack features {lacking} "
            f"that version {version}'s reference profile has; the prediction log and the "
            "monitored model version do not match."
        )
    drift = compare(profile, frame, cfg)

    # Performance is the monitored version's own: labels of other versions' predictions
    # say nothing about it.
    mine = preds[preds["model_version"] == version]
    join = JoinStats()
    joined = labelled(mine, traffic.feedback, config.labels.positive_class, join)
    recent = window(joined, checked, cfg.label_window_hours, cfg.max_labels)
    perf = live_performance(recent, config.model.threshold, holdout_metrics(mv.tags or {}), cfg)

    decision, reason = decide(drift, perf)
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
            "skipped": traffic.skipped,
            "labels": join.to_dict(),
        },
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
    hooks.on_monitoring_decision(
        name, version, str(decision), {"reason": reason, **result.summary_metrics()}
    )
    return result
