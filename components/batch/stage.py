"""The batch scoring stage as the component calls it: read the entities, join their
features at their point in time, score with a registered version, write the scores,
then the prediction log, the audit trail and lineage."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from components.batch.scoring import AS_OF_COLUMN, Entities, predict_scores, read_entities
from components.common.config import SeamlessConfig
from components.common.env import feast_repo_path, workspace
from components.common.errors import SeamlessError
from components.common.model_input import model_input
from components.common.storage import EPHEMERAL_DISK_ENV, is_remote, write_bytes
from components.common.tables import content_hash
from components.features.features import PhaseTimer
from components.ingest.normalize import show_value
from components.predictions.records import PREDICTIONS, BatchLog, BatchRecords

ROUTE = "batch"
RECORD_FIELDS = [
    "ts",
    "request_id",
    "index",
    "entity_id",
    "route",
    "model_name",
    "model_version",
    "features",
    "score",
    "decision",
    "as_of",
]
"""A batch record's fields, in serving's order plus the row's instant."""


@dataclass
class BatchResult:
    batch_id: str
    model_name: str
    model_version: str
    input: str
    input_sha256: str
    """Content hash of the entity rows as scored (key and instant; components/common/tables)."""
    timing: dict[str, Any]
    rows: int
    output: str
    output_sha256: str
    positives: int
    threshold: float
    rows_without_features: dict[str, int]
    """Per feature view: rows for which the view had no value in its ttl at their time
    (the model scores them on that view's imputed values, as serving does for an entity
    one view lacks)."""
    rows_without_any_feature: int
    """Input rows no view had a value for: refused unless `without_features` says to skip
    them (left out, `rows_left_out`) or to impute them (scored on imputed values only)."""
    without_features: str
    rows_left_out: int
    feature_sources: dict[str, str]
    """Feature view -> the offline table it read (the snapshot the features step published)."""
    prediction_log: str
    seconds: float
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_version(config: SeamlessConfig, version: str) -> Any:
    """The MLflow model version to score with: `version`, else the champion."""
    from components.common.tracking import CHAMPION, champion_version, mlflow_client

    client = mlflow_client()
    name = config.model.name
    if version:
        from mlflow.exceptions import MlflowException

        try:
            return client.get_model_version(name, version)
        except MlflowException:
            raise SeamlessError(f"Model {name} has no version {version!r}.") from None
    found = champion_version(client, name, CHAMPION)
    if found is None:
        raise SeamlessError(
            f"Model {name} has no champion to score with; train and promote one first "
            "(seamless run training), or give --model-version."
        )
    return found


def join_features(
    config: SeamlessConfig, entities: Entities
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The entities with the service's features at their instants, in input order."""
    from components.features.store import open_store
    from components.features.training_set import historical_features

    repo = feast_repo_path()
    store = open_store(repo)
    try:
        service = store.get_feature_service(config.features.service)
    except Exception:
        raise SeamlessError(
            f"Feature service {config.features.service!r} is not in the Feast registry at "
            f"{repo}; the training pipeline's features step publishes it."
        ) from None
    sources = {
        p.name: str(getattr(store.get_feature_view(p.name).batch_source, "path", ""))
        for p in service.feature_view_projections
    }
    joined = historical_features(store, service, entities.frame, config.entity_key(), AS_OF_COLUMN)
    return joined, sources


WITHOUT_FEATURES = ("fail", "skip", "impute")
"""What batch scoring does with rows no feature view has a value for at their instant:
refuse the input (serving answers 404 for such ids), leave them out, or score them on
imputed values only."""


def check_without_features(value: str) -> None:
    """Refuse a `without_features` that is none of WITHOUT_FEATURES (the CLI, early)."""
    if value not in WITHOUT_FEATURES:
        raise SeamlessError(
            f"--without-features {value!r} is not one of {', '.join(WITHOUT_FEATURES)}."
        )


def missing_by_view(
    config: SeamlessConfig, joined: pd.DataFrame
) -> tuple[dict[str, int], np.ndarray]:
    """(rows without a value, per view; where no view has one)."""
    per_view = {v.name: joined[v.features].isna().all(axis=1) for v in config.features.views}
    none = np.logical_and.reduce([m.to_numpy() for m in per_view.values()])
    return {k: int(m.sum()) for k, m in per_view.items()}, none


def without_features_problem(
    config: SeamlessConfig, joined: pd.DataFrame, none: np.ndarray, uri: str
) -> str:
    """The sentence refusing rows without any feature: how many, the first rows (with
    their ids unless the key is pseudonymized), and the two ways on."""
    key = config.entity_key()
    first = np.flatnonzero(none)[:3]
    if config.entity_pii() == "keep":
        shown = ", ".join(f"row {i + 1} ({key}={show_value(joined[key].iloc[i])})" for i in first)
    else:
        shown = ", ".join(f"row {i + 1}" for i in first)
    return (
        f"Input {uri}: {int(none.sum())} of {len(joined)} rows have no feature value in any "
        f"view at their instant (first: {shown}), so only imputed values would score them, "
        "and serving answers 404 for such ids; check the ids and instants, or give "
        "--without-features skip to leave them out of the scores or impute to score them."
    )


def output_check(output_uri: str) -> None:
    """A pod's disk goes with the pod: on a cluster the scores must go to object storage."""
    if os.environ.get(EPHEMERAL_DISK_ENV) == "true" and output_uri and not is_remote(output_uri):
        raise SeamlessError(
            f"Output {output_uri} is on the step's own disk, which is deleted with its pod; "
            "give an object storage URI (s3://bucket/path.parquet)."
        )


def scores_frame(
    config: SeamlessConfig, joined: pd.DataFrame, scores: np.ndarray, mv: Any, batch_id: str
) -> pd.DataFrame:
    key = config.entity_key()
    n = len(joined)

    def same(value: str) -> pd.Categorical:  # one value per row, stored once
        return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])

    return pd.DataFrame(
        {
            key: joined[key].to_numpy(),
            AS_OF_COLUMN: joined[AS_OF_COLUMN].to_numpy(),
            "score": scores,
            "decision": scores >= config.model.threshold,
            "model_name": same(config.model.name),
            "model_version": same(str(mv.version)),
            "batch_id": same(batch_id),
        }
    )


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def prediction_log() -> tuple[BatchLog, str]:
    """Where serving logs (SEAMLESS_SERVE_LOG_URL's PostgreSQL, else the workspace's
    files), so monitoring sees batch traffic beside online traffic."""
    from components.predictions.postgres import redact
    from components.predictions.reader import batch_writer_for

    url = os.environ.get("SEAMLESS_SERVE_LOG_URL", "").strip()
    folder = workspace() / "predictions"
    return batch_writer_for(url, folder, PREDICTIONS), redact(url) if url else str(folder)


def log_records(
    config: SeamlessConfig, features: pd.DataFrame, out: pd.DataFrame, batch_id: str
) -> BatchRecords:
    """The batch's prediction-log records as serving's, column by column: route `batch`,
    request id = batch id, `features` as the model saw them (missing values null), and
    each row's `as_of`; the fields equal in every record are stored once."""
    import pyarrow as pa

    n = len(out)
    constants = {
        "ts": datetime.now(UTC).isoformat(),
        "request_id": batch_id,
        "route": ROUTE,
        "model_name": config.model.name,
        "model_version": str(out["model_version"].iloc[0]),
    }
    named = [pa.array(_nulls_for_missing(features[c]), from_pandas=True) for c in features]
    # The instants as text once per distinct instant (one for --as-of), then by code.
    codes, instants = pd.factorize(out[AS_OF_COLUMN])
    texts = np.datetime_as_string(
        pd.DatetimeIndex(instants).tz_convert(None).to_numpy(), unit="auto", timezone="UTC"
    )
    columns = pa.table(
        {
            "index": pa.array(np.arange(n, dtype=np.int64)),
            "entity_id": pa.array(out[config.entity_key()].to_numpy()),
            "features": pa.StructArray.from_arrays(named, names=list(features.columns)),
            "score": pa.array(out["score"].to_numpy(), from_pandas=True),
            "decision": pa.array(out["decision"].to_numpy()),
            "as_of": pa.DictionaryArray.from_arrays(
                pa.array(codes.astype(np.int32)), pa.array(texts.astype(object))
            ),
        }
    )
    return BatchRecords(constants, columns, RECORD_FIELDS)


def _nulls_for_missing(values: pd.Series) -> np.ndarray:
    """A feature's values with NaN and infinities as NaN, which pyarrow stores as null:
    JSON has neither, and serving logs both as null (`records.jsonable`)."""
    array = values.to_numpy()
    if array.dtype.kind == "f":
        return np.where(np.isfinite(array), array, np.nan)
    return array


def log_predictions(
    config: SeamlessConfig, features: pd.DataFrame, out: pd.DataFrame, batch_id: str
) -> str:
    """Every scored row in the prediction log, as one batch (see `log_records`)."""
    batch = log_records(config, features, out, batch_id)
    log, where = prediction_log()
    try:
        log.open()
        log.append_batch(batch)
    except OSError as exc:
        raise SeamlessError(f"The prediction log at {where} cannot be written: {exc}.") from None
    finally:
        log.close()
    return where


def run_batch_scoring(
    config: SeamlessConfig,
    input_uri: str,
    output_uri: str,
    as_of: str = "",
    timestamp_column: str = "",
    model_version: str = "",
    batch_id: str = "",
    log: bool = True,
    without_features: str = "fail",
) -> BatchResult:
    """Score `input_uri`'s entities; write `output_uri` (Parquet), then the prediction log.

    Every check runs before anything is written; the scores file is written whole
    (atomically) before the log, so a failed log write leaves the scores and says so.
    `without_features` (WITHOUT_FEATURES) is what rows no view has a value for get.
    """
    import mlflow.sklearn

    started = time.perf_counter()
    lap = PhaseTimer()
    check_without_features(without_features)
    output_check(output_uri)
    entities = read_entities(config, input_uri, as_of, timestamp_column)
    mv = resolve_version(config, model_version)
    lap("read")
    joined, sources = join_features(config, entities)
    per_view, none = missing_by_view(config, joined)
    without_any = int(none.sum())
    if without_any == len(joined):
        raise SeamlessError(
            f"No feature value joined any of the {len(joined)} input rows at their instants "
            f"({entities.timing}): check that the entity ids exist in the feature tables and "
            "that the instants fall within each view's ttl after the feature data."
        )
    if without_any and without_features == "fail":
        raise SeamlessError(without_features_problem(config, joined, none, input_uri))
    left_out = without_any if without_features == "skip" else 0
    if left_out:
        joined = joined[~none].reset_index(drop=True)
    lap("features")
    model = mlflow.sklearn.load_model(f"models:/{config.model.name}/{mv.version}")
    lap("load_model")
    features = model_input(config, joined)
    scores = predict_scores(model, features)
    lap("score")
    batch_id = batch_id or f"batch-{uuid.uuid4().hex}"
    out = scores_frame(config, joined, scores, mv, batch_id)
    data = parquet_bytes(out)
    write_bytes(output_uri, data)
    lap("write")
    where = log_predictions(config, features, out, batch_id) if log else ""
    lap("log")
    return BatchResult(
        batch_id=batch_id,
        model_name=config.model.name,
        model_version=str(mv.version),
        input=input_uri,
        input_sha256=content_hash(entities.frame),
        timing=entities.timing,
        rows=len(out),
        output=output_uri,
        output_sha256=hashlib.sha256(data).hexdigest(),
        positives=int(out["decision"].sum()),
        threshold=config.model.threshold,
        rows_without_features=per_view,
        rows_without_any_feature=without_any,
        without_features=without_features,
        rows_left_out=left_out,
        feature_sources=sources,
        prediction_log=where,
        seconds=round(time.perf_counter() - started, 3),
        timings_s=lap.timings,
    )
