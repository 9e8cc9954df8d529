"""The train stage end to end: split, search, refit, log everything to one MLflow run."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.config import SeamlessConfig
from components.common.cpus import native_threads_capped
from components.common.model_input import model_input
from components.common.reference_profile import log_reference_profile
from components.common.tracking import ensure_experiment, mlflow_client
from components.train.training import TrainResult, encode_labels, fit, split_holdout


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load this model: the ones we just built ourselves."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


# What loading the logged model needs: its pipeline is scikit-learn classes stored with
# skops. Named here rather than inferred by MLflow, which loads the model in a subprocess
# (about 3 s per run) and lists whatever that process happened to import (pytest, rich).
MODEL_DISTRIBUTIONS = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")


def model_requirements() -> list[str]:
    """Pinned requirements of the logged model, at the versions that trained it."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in MODEL_DISTRIBUTIONS]


def label_period(config: SeamlessConfig, rows: pd.DataFrame) -> dict[str, str]:
    ts = pd.to_datetime(rows[config.timestamp_key(config.labels.table)], utc=True)
    return {"train_label_first": ts.min().isoformat(), "train_label_last": ts.max().isoformat()}


def train_and_log(
    config: SeamlessConfig,
    training_set: pd.DataFrame,
    *,
    data_sha256: str,
    feature_service: str,
    pipeline_run_id: str,
    source_uri: str,
    sample: dict[str, Any] | None = None,
) -> tuple[TrainResult, pd.DataFrame]:
    """Train on all but the holdout rows (`split_holdout`); returns the result and them.

    `sample` says how `training_set` was cut from a larger one (train.sample), if it was.
    """
    started = time.perf_counter()
    split = split_holdout(config, training_set)
    with native_threads_capped():
        pipeline, best_params, summary = fit(config, split.train)

    import mlflow
    from mlflow.models import infer_signature

    from components.common.spark import engine_record
    from components.train.logged_dataset import training_set_record

    mlflow_client()
    ensure_experiment(config.model.experiment)
    x_train = model_input(config, split.train)
    y_train = encode_labels(config, split.train)
    example = x_train.head(5)
    signature = infer_signature(example, pipeline.predict_proba(example)[:, 1])

    with mlflow.start_run(run_name=f"train-{config.model.name}") as run:
        mlflow.set_tags(
            {
                "seamless.stage": "train",
                "seamless.data_sha256": data_sha256,
                "seamless.feature_service": feature_service,
                "seamless.pipeline_run_id": pipeline_run_id,
                "seamless.config": config.name,
                **{f"seamless.{k}": v for k, v in engine_record(config).items()},
            }
        )
        search = config.model.search
        mlflow.log_params(
            {
                "estimator": config.model.estimator,
                "search_method": search.method,
                "search_n_iter": search.n_iter,
                "search_cv": search.cv,
                "search_scoring": search.scoring,
                "holdout_fraction": config.model.holdout_fraction,
                "seed": config.model.seed,
                "train_rows": len(split.train),
                "search_rows": summary["search_rows"],
                "holdout_split": split.kind,
                **({"holdout_cutoff": split.cutoff.isoformat()} if split.cutoff else {}),
                # The training rows' label period, for the model card's date range.
                **label_period(config, split.train),
                **{f"training_sample_{k}": v for k, v in (sample or {}).items()},
                **{f"best_{k}": v for k, v in best_params.items()},
                **{f"fixed_{k}": v for k, v in config.model.params.items()},
            }
        )
        mlflow.log_metrics(
            {
                f"cv_{search.scoring}_mean": summary["cv_score"],
                f"cv_{search.scoring}_std": summary["cv_std"],
                "train_positive_rate": float(y_train.mean()),
            }
        )
        dataset = training_set_record(
            split.train,
            source=source_uri,
            name=f"{config.name}-training-set",
            targets=config.labels.label_column,
            digest=data_sha256[:16],
        )
        mlflow.log_input(dataset, context="training", tags={"sha256": data_sha256})
        # Stored with the model so monitoring never reloads the training data.
        log_reference_profile(config, x_train)
        with tempfile.TemporaryDirectory() as tmp:
            cv_table = pd.DataFrame(summary["cv_results"]).drop(columns=["params"])
            cv_path = Path(tmp) / "cv_results.csv"
            cv_table.to_csv(cv_path, index=False)
            mlflow.log_artifact(str(cv_path), artifact_path="search")
            (Path(tmp) / "best_params.json").write_text(json.dumps(best_params, default=str))
            mlflow.log_artifact(str(Path(tmp) / "best_params.json"), artifact_path="search")
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=trusted_types(pipeline),
            pip_requirements=model_requirements(),
        )
        run_id = run.info.run_id

    result = TrainResult(
        run_id=run_id,
        model_uri=info.model_uri,
        best_params=best_params,
        cv_score=summary["cv_score"],
        cv_std=summary["cv_std"],
        train_rows=len(split.train),
        search_rows=summary["search_rows"],
        seconds=time.perf_counter() - started,
    )
    return result, split.holdout
