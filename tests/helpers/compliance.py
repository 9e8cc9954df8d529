"""Configs with a compliance policy, a synthetic holdout with known segment behaviour, and
the policy applied to it: shared by the policy and model card unit tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import yaml

from components.common.config import SeamlessConfig, default_config_path, parse_config
from components.evaluate.segments import segment_report
from components.governance.compliance import ComplianceResult, check

CARD = {"intended_use": "Rank applications by default risk.", "owners": ["risk-ml"]}
COMPLETE_CHAIN = {"gaps": [], "sources": [{"table": "labels"}]}


def config_with(compliance: dict[str, Any] | None, **extra: Any) -> SeamlessConfig:
    raw = yaml.safe_load(default_config_path().read_text())
    if compliance is not None:
        raw["compliance"] = compliance
    raw["model_card"] = extra.pop("model_card", CARD)
    raw.update(extra)
    return parse_config(yaml.safe_dump(raw), origin="cfg.yaml")


def holdout(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A holdout whose scores carry signal except in the south (noise, so its ROC AUC sits
    far below the others'), with a tiny region and a region of negatives only. Seed 0:
    overall 0.750, north 0.839, east 0.860, south 0.489."""
    rng = np.random.default_rng(seed)
    region = np.array(
        ["north"] * 250 + ["east"] * 250 + ["south"] * 100 + ["tiny"] * 10 + ["flat"] * 90
    )
    n = len(region)
    age = rng.integers(18, 80, n)
    y = rng.integers(0, 2, n)
    good = y * 0.3 + rng.uniform(0, 0.7, n)
    p = np.where(region == "south", rng.uniform(0, 1, n), good)
    y[region == "flat"] = 0
    frame = pd.DataFrame({"region": region, "age": age})
    return frame, y, p


def report_for(config: SeamlessConfig, seed: int = 0) -> dict[str, Any]:
    assert config.compliance is not None
    frame, y, p = holdout(seed)
    return segment_report(config.compliance, "roc_auc", frame, y, p, 0.5)


def judge(config: SeamlessConfig, **facts: Any) -> ComplianceResult:
    kwargs: dict[str, Any] = {
        "validation": "pass",
        "lineage": COMPLETE_CHAIN,
        "card_logged": True,
        "segments": report_for(config) if config.compliance and config.compliance.segments else {},
    }
    kwargs.update(facts)
    return check(config, **kwargs)
