"""Train a scikit-learn pipeline with hyperparameter search and track it in MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from components.common.config import SeamlessConfig, feature_columns
from components.common.errors import SeamlessError
from components.common.labels import canonical_series, check_labels, positive_mask
from components.common.model_input import model_input

ESTIMATOR_STEP = "model"


@dataclass
class SplitData:
    """The training rows and the holdout (`model.holdout_split`)."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp | None
    """The first holdout label time of a time split (None for a random one)."""
    kind: str = "time"
    """`time` or `random`."""


@dataclass
class TrainResult:
    run_id: str
    model_uri: str
    best_params: dict[str, Any]
    cv_score: float
    cv_std: float
    train_rows: int
    search_rows: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def encode_labels(config: SeamlessConfig, training_set: pd.DataFrame) -> pd.Series:
    """0/1 labels (1 = the configured positive class).

    A label that is null or none of the classes (labels.negative_classes, or the one
    other value the data holds) is an error, never a silent negative; so is one class only.
    """
    col = config.labels.label_column
    if col not in training_set.columns:
        raise SeamlessError(f"Training set has no label column '{col}' (labels.label_column).")
    labels = training_set[col]
    check = check_labels(config.labels, labels)
    if check.count:
        raise SeamlessError(check.sentence(config.labels.table, col))
    positive = config.labels.positive_class
    y = pd.Series(positive_mask(config.labels, labels).astype(int), index=labels.index)
    if y.nunique() < 2:
        classes = sorted(str(v) for v in canonical_series(labels).unique())
        raise SeamlessError(
            f"Label column '{col}' of table '{config.labels.table}' has only one class "
            f"({', '.join(classes)}); training needs both the positive class {positive!r} and "
            "at least one other."
        )
    return y


def holdout_kind(config: SeamlessConfig) -> str:
    """`time` or `random`: `model.holdout_split`, with `auto` decided by whether the labels
    table has an event time of its own."""
    chosen = config.model.holdout_split
    if chosen != "auto":
        return chosen
    has_time = config.tables[config.labels.table].timestamp_column is not None
    return "time" if has_time else "random"


def split_holdout(config: SeamlessConfig, training_set: pd.DataFrame) -> SplitData:
    """Hold out `holdout_fraction` of the label rows: the latest by label time (no future
    leakage), or a stratified random sample (`holdout_kind`)."""
    ts = config.timestamp_key(config.labels.table)
    ordered = training_set.sort_values([ts, config.entity_key()], kind="stable").reset_index(
        drop=True
    )
    n_holdout = max(1, round(len(ordered) * config.model.holdout_fraction))
    if len(ordered) - n_holdout < 2:
        raise SeamlessError(
            f"Only {len(ordered)} labelled rows: too few to hold out "
            f"{config.model.holdout_fraction:.0%} and still train."
        )
    if holdout_kind(config) == "random":
        return _random_split(config, ordered, n_holdout)
    train, holdout = ordered.iloc[:-n_holdout], ordered.iloc[-n_holdout:]
    for part, name in ((train, "training"), (holdout, "holdout")):
        encode_labels_for_split(config, part, name)
    return SplitData(train=train, holdout=holdout, cutoff=pd.Timestamp(holdout[ts].iloc[0]))


def _random_split(config: SeamlessConfig, ordered: pd.DataFrame, n_holdout: int) -> SplitData:
    y = encode_labels(config, ordered)  # one class in all the rows: said as it is
    counts = y.value_counts()
    if counts.min() < 2 or n_holdout < len(counts) or len(ordered) - n_holdout < len(counts):
        rare = config.labels.positive_class if counts.get(1, 0) < 2 else "the negative class"
        raise SeamlessError(
            f"The random holdout split is unusable: {len(ordered)} labelled rows hold "
            f"{counts.get(1, 0)} of the positive class {config.labels.positive_class!r} and "
            f"{counts.get(0, 0)} of the others; a stratified holdout of "
            f"{config.model.holdout_fraction:.0%} needs at least 2 of each (fewest: {rare})."
        )
    train_at, holdout_at = train_test_split(
        np.arange(len(ordered)),
        test_size=n_holdout,
        stratify=y.to_numpy(),
        random_state=config.model.seed,
    )
    train = ordered.iloc[np.sort(train_at)]
    holdout = ordered.iloc[np.sort(holdout_at)]
    return SplitData(train=train, holdout=holdout, cutoff=None, kind="random")


def encode_labels_for_split(config: SeamlessConfig, part: pd.DataFrame, name: str) -> None:
    try:
        encode_labels(config, part)
    except SeamlessError as exc:
        raise SeamlessError(
            f"The time-ordered {name} split is unusable: {str(exc).rstrip('.')}; if the rows' "
            "order carries no time, set model.holdout_split: random."
        ) from None


def make_estimator(config: SeamlessConfig) -> BaseEstimator:
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression

    kinds: dict[str, Any] = {
        "logistic_regression": lambda: LogisticRegression(max_iter=1000),
        "random_forest": lambda: RandomForestClassifier(n_jobs=1),
        "gradient_boosting": GradientBoostingClassifier,
        "hist_gradient_boosting": HistGradientBoostingClassifier,
    }
    est = kinds[config.model.estimator]()
    params = dict(config.model.params)
    if "random_state" in est.get_params():
        params.setdefault("random_state", config.model.seed)
    try:
        est.set_params(**params)
    except ValueError as exc:
        raise SeamlessError(f"model.params: {exc}") from None
    return est


def build_pipeline(config: SeamlessConfig) -> Pipeline:
    """Preprocessing (impute, scale, one-hot) + the configured estimator."""
    numeric, categorical = feature_columns(config)
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if config.model.estimator == "logistic_regression":
        numeric_steps.append(("scale", StandardScaler()))
    pre = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        (
                            "onehot",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                        ),
                    ]
                ),
                categorical,
            ),
        ],
        remainder="drop",
    )
    return Pipeline([("preprocess", pre), (ESTIMATOR_STEP, make_estimator(config))])


def make_search(config: SeamlessConfig, pipeline: Pipeline) -> Any:
    search = config.model.search
    space = {f"{ESTIMATOR_STEP}__{k}": v for k, v in search.space.items()}
    known = pipeline.get_params()
    unknown = [k for k in space if k not in known]
    if unknown:
        names = ", ".join(k.removeprefix(f"{ESTIMATOR_STEP}__") for k in unknown)
        raise SeamlessError(
            f"model.search.space has {names}, which {config.model.estimator} does not accept."
        )
    cv = StratifiedKFold(n_splits=search.cv, shuffle=True, random_state=config.model.seed)
    if search.method == "grid" or not space:
        return GridSearchCV(
            pipeline, space or {}, scoring=search.scoring, cv=cv, refit=False, n_jobs=1
        )
    return RandomizedSearchCV(
        pipeline,
        space,
        n_iter=search.n_iter,
        scoring=search.scoring,
        cv=cv,
        refit=False,
        random_state=config.model.seed,
        n_jobs=1,
    )


def search_sample(
    config: SeamlessConfig, x: pd.DataFrame, y: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """Stratified subsample bounding the search's cost; the final refit sees every row."""
    cap = config.model.max_train_rows
    if cap is None or len(x) <= cap:
        return x, y
    rng = np.random.default_rng(config.model.seed)
    keep: list[np.ndarray] = []
    for cls in (0, 1):
        idx = np.flatnonzero(y.to_numpy() == cls)
        n = max(1, round(cap * len(idx) / len(y)))
        keep.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
    rows = np.sort(np.concatenate(keep))
    return x.iloc[rows], y.iloc[rows]


def fit(config: SeamlessConfig, train: pd.DataFrame) -> tuple[Pipeline, dict[str, Any], Any]:
    """Search the space by cross-validation, then refit the best candidate on all rows."""
    x, y = model_input(config, train), encode_labels(config, train)
    pipeline = build_pipeline(config)
    search = make_search(config, pipeline)
    xs, ys = search_sample(config, x, y)
    try:
        search.fit(xs, ys)
    except ValueError as exc:
        raise SeamlessError(f"Hyperparameter search failed: {exc}") from None
    results = search.cv_results_
    best = int(np.nanargmax(np.nan_to_num(results["mean_test_score"], nan=-np.inf)))
    best_params = dict(results["params"][best])
    pipeline.set_params(**best_params)
    pipeline.fit(x, y)
    summary = {
        "cv_score": float(results["mean_test_score"][best]),
        "cv_std": float(results["std_test_score"][best]),
        "search_rows": len(xs),
        "candidates": len(results["params"]),
        "cv_results": results,
    }
    clean = {k.removeprefix(f"{ESTIMATOR_STEP}__"): v for k, v in best_params.items()}
    return pipeline, clean, summary
