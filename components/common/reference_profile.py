"""The reference profile: what the training rows looked like, stored with the model.

A contract between two stages (train writes it, monitor reads it), so it lives here.

Computed at training time from the training rows and logged as `reference_profile.json`
in the training run, so monitoring compares served traffic with it without ever
reloading the training data. Per numeric feature: quantile bin edges and the training
share per bin, missing rate, min/max, mean/std and a capped random sample (for KS);
per categorical feature: category frequencies and missing rate.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.common.monitoring_config import monitoring_config

PROFILE_ARTIFACT = "reference_profile.json"
PROFILE_FORMAT = 1
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin of each value: bin i holds edges[i-1] < x <= edges[i] (open outer bins).

    The same function bins the training rows and the traffic, so ties at an edge
    (integer features) fall on the same side in both.
    """
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="left")


def numeric_profile(
    values: pd.Series, bins: int, sample_size: int, rng: np.random.Generator
) -> dict[str, Any]:
    x = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    present = x[np.isfinite(x)]
    out: dict[str, Any] = {
        "kind": NUMERIC,
        "rows": len(x),
        "missing_rate": float(1 - len(present) / len(x)) if len(x) else 0.0,
    }
    if len(present) == 0:
        out.update(min=None, max=None, mean=None, std=None, bin_edges=[], bin_frequencies=[1.0])
        out["sample"] = []
        return out
    qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    # Integer-valued features repeat quantiles; duplicate edges would make empty bins.
    edges = [float(e) for e in np.unique(qs)]
    counts = np.bincount(bin_index(present, edges), minlength=len(edges) + 1)
    keep = min(sample_size, len(present))
    sample = rng.choice(present, size=keep, replace=False) if keep < len(present) else present
    out.update(
        min=float(present.min()),
        max=float(present.max()),
        mean=float(present.mean()),
        std=float(present.std()),
        bin_edges=edges,
        bin_frequencies=[float(c) for c in counts / counts.sum()],
        sample=[float(v) for v in np.sort(sample)],
    )
    return out


def categorical_values(values: pd.Series) -> pd.Series:
    """Categories as strings (bools and numbers alike), missing as NaN."""
    return values.astype("object").map(lambda v: np.nan if pd.isna(v) else str(v))


def categorical_profile(values: pd.Series) -> dict[str, Any]:
    s = categorical_values(values)
    present = s.dropna()
    freq = present.value_counts(normalize=True) if len(present) else pd.Series(dtype=float)
    return {
        "kind": CATEGORICAL,
        "rows": len(s),
        "missing_rate": float(1 - len(present) / len(s)) if len(s) else 0.0,
        "frequencies": {str(k): float(v) for k, v in freq.items()},
    }


def build_profile(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    bins: int = 10,
    sample_size: int = 5_000,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference profile of `frame` (the model's input columns of the training rows)."""
    missing = [c for c in numeric + categorical if c not in frame.columns]
    if missing:
        raise SeamlessError(f"Cannot profile the training rows: they lack columns {missing}.")
    if frame.empty:
        raise SeamlessError("Cannot profile the training rows: there are none.")
    rng = np.random.default_rng(seed)
    features: dict[str, Any] = {}
    for c in numeric:
        features[c] = numeric_profile(frame[c], bins, sample_size, rng)
    for c in categorical:
        features[c] = categorical_profile(frame[c])
    return {
        "format": PROFILE_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "rows": len(frame),
        "bins": bins,
        "sample_size": sample_size,
        "features": features,
    }


def baseline_profile(
    training: dict[str, Any], frame: pd.DataFrame, *, sample_size: int = 5_000
) -> dict[str, Any]:
    """The reference profile of a served baseline window (`frame`: one column per feature).

    Same features, kinds and bin count as the `training` profile; marked `two_sample`,
    so drift uses two-sample tests (the baseline's shares are estimates from a few
    hundred rows, not the near-exact shares of the training rows). Range and category
    checks keep what training saw too: a value is out of range only outside both the
    training and the baseline min/max, a category unseen only if neither had it.
    """
    feats = training["features"]
    numeric = [n for n, f in feats.items() if f["kind"] == NUMERIC]
    categorical = [n for n, f in feats.items() if f["kind"] == CATEGORICAL]
    out = build_profile(
        frame, numeric, categorical, bins=int(training.get("bins", 10)), sample_size=sample_size
    )
    for name in numeric:
        base, ref = out["features"][name], feats[name]
        for key, pick in (("min", min), ("max", max)):
            known = [v for v in (base.get(key), ref.get(key)) if v is not None]
            base[key] = pick(known) if known else None
    for name in categorical:
        base_freq = out["features"][name]["frequencies"]
        for category in feats[name].get("frequencies", {}):
            base_freq.setdefault(category, 0.0)
    out["two_sample"] = True
    return out


def profile_for_training(config: SeamlessConfig, x_train: pd.DataFrame) -> dict[str, Any]:
    """The profile of the model input the train stage fits on, with the configured sizes."""
    from components.common.config import feature_columns

    numeric, categorical = feature_columns(config)
    mon = monitoring_config(config)
    return build_profile(
        x_train,
        numeric,
        categorical,
        bins=mon.profile_bins,
        sample_size=mon.profile_sample_size,
        seed=config.model.seed,
    )


def log_reference_profile(config: SeamlessConfig, x_train: pd.DataFrame) -> None:
    """Log the training rows' profile into the active MLflow run (the train stage's)."""
    import mlflow

    profile = profile_for_training(config, x_train)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PROFILE_ARTIFACT
        path.write_text(json.dumps(profile, separators=(",", ":")), encoding="utf-8")
        mlflow.log_artifact(str(path))


def resolve_version(client: Any, model_name: str, version: str) -> Any:
    """The model version for a version number or an alias; one sentence when unknown."""
    from mlflow.exceptions import MlflowException

    try:
        if version.isdigit():
            return client.get_model_version(model_name, version)
        return client.get_model_version_by_alias(model_name, version)
    except MlflowException:
        kind = "version" if version.isdigit() else "alias"
        raise SeamlessError(
            f"Registered model '{model_name}' has no {kind} '{version}' in the MLflow registry."
        ) from None


def training_run_id(mv: Any) -> str | None:
    """The run that trained a model version (the register stage also tags it)."""
    tags = dict(getattr(mv, "tags", None) or {})
    run_id = getattr(mv, "run_id", None) or tags.get("seamless.train_run_id")
    return str(run_id) if run_id else None


def load_reference_profile(model_name: str, version: str) -> tuple[dict[str, Any], Any]:
    """The stored profile of `model_name` at a version number or alias, and the version.

    Raises one SeamlessError sentence when the version has no stored profile.
    """
    import mlflow

    from components.common.tracking import mlflow_client

    client = mlflow_client()
    mv = resolve_version(client, model_name, version)
    where = f"Model '{model_name}' version {mv.version}"
    run_id = training_run_id(mv)
    if run_id is None:
        raise SeamlessError(
            f"{where} has no training run recorded, so it has no stored reference profile; "
            "retrain it with a Seamless version that stores one to monitor drift."
        )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=PROFILE_ARTIFACT, dst_path=tmp
            )
            profile: dict[str, Any] = json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception:  # MLflow raises several types for a missing artifact
        raise SeamlessError(
            f"{where} has no stored reference profile ({PROFILE_ARTIFACT} is not in its "
            f"training run {run_id}); retrain it with a Seamless version that stores one "
            "to monitor drift."
        ) from None
    if profile.get("format") != PROFILE_FORMAT or "features" not in profile:
        raise SeamlessError(
            f"{where}: {PROFILE_ARTIFACT} in run {run_id} is not a format-{PROFILE_FORMAT} "
            "Seamless reference profile."
        )
    return profile, mv
