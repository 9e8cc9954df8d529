"""The evaluate stage as the component calls it."""

from __future__ import annotations

from typing import Any

from components.common.config import SeamlessConfig
from components.common.tables import read_table, write_json_atomic
from components.evaluate.evaluation import Decision, evaluate
from components.train.stage import HOLDOUT_TABLE


def run_evaluation(
    config: SeamlessConfig, model_uri: str, holdout_path: str, decision_path: str
) -> tuple[Decision, dict[str, Any]]:
    holdout = read_table(holdout_path, HOLDOUT_TABLE)
    decision, plots = evaluate(config, holdout, model_uri)
    write_json_atomic(decision_path, decision.to_dict())
    return decision, plots
