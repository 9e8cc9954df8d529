"""The model's input contract: the feature columns as training fits them and serving,
evaluation and monitoring hand them to the model."""

from __future__ import annotations

import pandas as pd

from components.common.config import SeamlessConfig, feature_columns
from components.common.errors import SeamlessError


def model_input(config: SeamlessConfig, df: pd.DataFrame) -> pd.DataFrame:
    """The feature columns, typed as the model expects (categoricals as str objects)."""
    numeric, categorical = feature_columns(config)
    missing = [c for c in numeric + categorical if c not in df.columns]
    if missing:
        raise SeamlessError(f"Training set lacks feature columns {missing}.")
    out = pd.DataFrame(index=df.index)
    for c in numeric:
        out[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in categorical:
        col = df[c].astype("object")
        out[c] = col.where(col.notna(), None)
    return out
