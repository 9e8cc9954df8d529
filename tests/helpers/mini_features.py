"""The features stage's smallest world: `facts` holds two values of customer 1 (A at
t1, B at t3) and one of customer 2, so a point-in-time join has one right answer per
label time (tests/unit/test_features.py, tests/storage/test_feast_s3.py)."""

from __future__ import annotations

import pandas as pd
import yaml

from components.common.config import SeamlessConfig, parse_config

MINI = """
name: mini
tables:
  facts:
    source: {kind: file, uri: facts.parquet}
    entity_column: customer_id
    timestamp_column: event_timestamp
    columns: {customer_id: int, event_timestamp: timestamp, score: float, tier: string}
  extra:
    source: {kind: file, uri: extra.parquet}
    entity_column: customer_id
    timestamp_column: event_timestamp
    columns: {customer_id: int, event_timestamp: timestamp, visits: int}
  labels:
    source: {kind: file, uri: labels.parquet}
    entity_column: customer_id
    timestamp_column: event_timestamp
    columns: {customer_id: int, event_timestamp: timestamp, defaulted: int}
labels: {table: labels, label_column: defaulted}
features:
  project: mini
  entity: customer
  service: mini_v1
  views:
    - {name: facts_view, table: facts, features: [score, tier], ttl_days: 30}
model: {name: mini}
"""


def mini_config(extra_view: bool = False, project: str = "mini") -> SeamlessConfig:
    """The world's config: `facts_view` over `facts`, with `extra_view` over `extra` if
    asked, in Feast project `project`."""
    raw = yaml.safe_load(MINI)
    raw["features"]["project"] = project
    if extra_view:
        raw["features"]["views"].append(
            {"name": "extra_view", "table": "extra", "features": ["visits"], "ttl_days": 30}
        )
    return parse_config(yaml.safe_dump(raw), origin="mini.yaml")


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


T1, T2, T3 = utc("2024-01-10"), utc("2024-02-01"), utc("2024-03-01")


def facts() -> pd.DataFrame:
    # Customer 1: value A (1.0) at t1, value B (2.0) at t3. Customer 2: one value at t1.
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "event_timestamp": [T1, T3, T1],
            "score": [1.0, 2.0, 5.0],
            "tier": ["a", "b", "z"],
        }
    )
