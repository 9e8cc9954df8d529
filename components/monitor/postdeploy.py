"""After a promotion: compare the new champion's live metrics with the previous champion's
and roll back automatically when it regresses beyond the configured margin."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from components.common.config import SeamlessConfig
from components.common.monitoring_config import monitoring_config
from components.common.tracking import CHAMPION, PREVIOUS_CHAMPION, champion_version, mlflow_client
from components.monitor.traffic import JoinStats, labelled, read_traffic

KEEP, ROLLBACK, NOT_ENOUGH, NOT_APPLICABLE = "keep", "rollback", "not_enough_data", "no_previous"


@dataclass
class PostDeployResult:
    decision: str
    reason: str
    champion: str | None = None
    previous: str | None = None
    live: dict[str, dict[str, float]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    """What the label join did with the feedback (`traffic.JoinStats`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_auc(rows: Any) -> dict[str, float]:
    y = rows["label"].to_numpy(dtype=float).astype(int)
    p = rows["score"].to_numpy(dtype=float)
    return {"roc_auc": float(roc_auc_score(y, p)), "labels": float(len(y))}


def _usable(rows: Any, min_labels: int) -> bool:
    y = rows["label"].to_numpy(dtype=float)
    return len(y) >= min_labels and 0 < np.nansum(y) < len(y)


def post_deploy_check(config: SeamlessConfig, workspace: Path) -> PostDeployResult:
    """Keep or roll back the champion, judged on labelled live traffic of both versions."""
    cfg = monitoring_config(config)
    client = mlflow_client()
    name = config.model.name
    champ = champion_version(client, name, CHAMPION)
    prev = champion_version(client, name, PREVIOUS_CHAMPION)
    if champ is None or prev is None:
        return PostDeployResult(NOT_APPLICABLE, "no previous champion to compare with")
    c, p = str(champ.version), str(prev.version)
    # Every labelled prediction of the model may count (the previous champion's can be
    # older than any window); scores and labels are all the check needs.
    traffic = read_traffic(workspace, model_name=name, features=False)
    preds = traffic.predictions
    join = JoinStats()
    rows = labelled(preds, traffic.feedback, config.labels, join)
    by_version = {v: rows[rows["model_version"] == v].tail(cfg.max_labels) for v in (c, p)}
    result = PostDeployResult(NOT_ENOUGH, "", champion=c, previous=p, labels=join.to_dict())
    missing = [v for v, r in by_version.items() if not _usable(r, cfg.min_labels)]
    if missing:
        counts = ", ".join(f"v{v}: {len(by_version[v])}" for v in (c, p))
        result.reason = (
            f"not enough labelled live predictions to compare ({counts}; "
            f"{cfg.min_labels} with both classes needed per version)"
        )
        return result
    result.live = {v: live_auc(r) for v, r in by_version.items()}
    new, old = result.live[c]["roc_auc"], result.live[p]["roc_auc"]
    if new < old - cfg.auc_margin:
        result.decision = ROLLBACK
        result.reason = (
            f"champion v{c} live ROC AUC {new:.4f} regressed below previous champion v{p} "
            f"{old:.4f} minus the margin {cfg.auc_margin:.3f}"
        )
    else:
        result.decision = KEEP
        result.reason = (
            f"champion v{c} live ROC AUC {new:.4f} vs previous champion v{p} {old:.4f} "
            f"(margin {cfg.auc_margin:.3f})"
        )
    return result


def check_and_act(config: SeamlessConfig, workspace: Path, deploy_dir: Path) -> PostDeployResult:
    """The post-deploy step: decide, record the decision, and roll back when it says so."""
    from components.governance import hooks
    from components.register.operations import rollback

    result = post_deploy_check(config, workspace)
    if result.champion:
        # The result's own `decision` key would replace the prefixed one in the event.
        details = {k: v for k, v in result.to_dict().items() if k != "decision"}
        hooks.on_monitoring_decision(
            config.model.name, result.champion, f"post_deploy_{result.decision}", details
        )
    if result.decision == ROLLBACK and result.previous:
        rollback(
            config.model.name, result.previous, result.reason, deploy_dir, config.notifications
        )
    return result
