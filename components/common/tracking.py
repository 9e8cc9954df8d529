"""MLflow set-up shared by the stages that talk to the tracking server or registry."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from components.common.env import disable_telemetry, mlflow_tracking_uri
from components.common.errors import SeamlessError

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
"""Alias kept on the champion a promotion replaced, so rollback is one alias move."""

HOLDOUT_TAG_PREFIX = "holdout."
"""Model version tags `holdout.<metric>`: the register stage's holdout numbers."""


def holdout_tags(version_tags: dict[str, str]) -> dict[str, str]:
    """A model version's `holdout.<metric>` tags by metric name, values as stored."""
    return {
        key.removeprefix(HOLDOUT_TAG_PREFIX): value
        for key, value in version_tags.items()
        if key.startswith(HOLDOUT_TAG_PREFIX)
    }


def holdout_metrics(version_tags: dict[str, str]) -> dict[str, float]:
    """`holdout.<metric>` tags the register stage set on the model version, as floats
    (a tag that is not a number is left out)."""
    out: dict[str, float] = {}
    for metric, value in holdout_tags(version_tags).items():
        try:
            out[metric] = float(value)
        except ValueError:
            continue
    return out


def mlflow_client() -> Any:
    """Point MLflow at the configured store (creating the local one) and return a client."""
    disable_telemetry()
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # Alembic logs every migration at INFO on a new store; keep step logs readable.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


ARTIFACT_ROOT_ENV = "SEAMLESS_MLFLOW_ARTIFACT_ROOT"


def ensure_experiment(name: str) -> str:
    """Create the experiment if needed; artifacts of a local store go next to its database.

    `SEAMLESS_MLFLOW_ARTIFACT_ROOT` (e.g. `s3://bucket/mlflow`) puts a new experiment's
    artifacts under `<root>/<experiment name>` instead; the client then writes them itself
    (boto3, `MLFLOW_S3_ENDPOINT_URL` for a non-AWS server). Behind an MLflow server started
    with `--artifacts-destination s3://...` leave it unset: the server proxies artifacts.
    """
    import os

    import mlflow

    client = mlflow_client()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        experiment_id: str = exp.experiment_id
    else:
        uri = mlflow_tracking_uri()
        location = None
        root = os.environ.get(ARTIFACT_ROOT_ENV, "").strip().rstrip("/")
        if root:
            location = f"{root}/{name}"
        elif uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        experiment_id = client.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def champion_version(client: Any, model_name: str, alias: str = CHAMPION) -> Any | None:
    """The model version under `alias`, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


ARTIFACTS_DIR = "artifacts"
"""A local store's artifacts live in this folder next to its SQLite database."""
# Columns holding artifact URIs of a SQLite store (MLflow 3 schema); missing ones are skipped.
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
    ("trace_tags", "value"),
)


def _uri_path(uri: str) -> Path:
    return Path(unquote(urlsplit(uri).path))


def moved_store(db: Path) -> list[str]:
    """Artifact roots of the local store `db` that are not its own `artifacts` folder.

    MLflow keeps absolute artifact URIs per experiment, run, logged model and model
    version. A store created by `ensure_experiment` keeps them under
    `<db folder>/artifacts`; after the workspace was moved or copied they still name the
    old folder. Read-only; [] when the store was not moved (or does not exist yet).
    """
    if not db.is_file():
        return []
    here = (db.resolve().parent / ARTIFACTS_DIR).as_uri()
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30) as conn:
            rows = conn.execute("SELECT artifact_location FROM experiments").fetchall()
    except sqlite3.Error:
        return []  # not an MLflow store yet (MLflow creates the tables on first use)
    old = set()
    for (location,) in rows:
        loc = str(location or "").rstrip("/")
        if (
            loc.startswith("file:///")
            and loc != here
            and loc.endswith(f"/{db.parent.name}/{ARTIFACTS_DIR}")
        ):
            old.add(loc)
    return sorted(old)


def relocate_local_store(db: Path) -> list[str]:
    """Point a moved or copied local store at its own artifacts folder again.

    Every artifact URI under an old root (see `moved_store`) is rewritten to the same
    place under `<db folder>/artifacts`, and training-data sources under the old workspace
    folder to this one, in one transaction. Returns the old roots ([] if nothing moved).
    """
    old_roots = moved_store(db)
    if not old_roots:
        return []
    here = (db.resolve().parent / ARTIFACTS_DIR).as_uri()
    new_ws = db.resolve().parent.parent
    conn = sqlite3.connect(str(db), timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        columns = {table: _table_columns(conn, table) for table, _ in _LOCATION_COLUMNS}
        for old in old_roots:
            n = len(old) + 1
            for table, column in _LOCATION_COLUMNS:
                if column not in columns[table]:
                    continue
                conn.execute(
                    f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                    f'WHERE "{column}" = ? OR substr("{column}", 1, ?) = ?',
                    (here, n, old, n, f"{old}/"),
                )
            if "dataset_source" in _table_columns(conn, "datasets"):
                _relocate_dataset_sources(conn, _uri_path(old).parent.parent, new_ws)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.rollback()
        raise SeamlessError(
            f"The MLflow store {db} was moved from {_uri_path(old_roots[0]).parent}, and "
            f"pointing its artifact locations at {db.parent / ARTIFACTS_DIR} failed: {exc}."
        ) from None
    finally:
        conn.close()
    return old_roots


def _table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info('{table}')")}


def _relocate_dataset_sources(conn: sqlite3.Connection, old_ws: Path, new_ws: Path) -> None:
    """Training-data sources logged with runs (JSON `{"uri": ...}`) inside the old workspace."""
    prefix = f"{old_ws}/"
    rows = conn.execute(
        "SELECT dataset_uuid, dataset_source FROM datasets WHERE dataset_source LIKE ?",
        (f"%{old_ws}/%",),
    ).fetchall()
    for uuid, text in rows:
        try:
            source = json.loads(text)
        except ValueError:
            continue
        uri = source.get("uri") if isinstance(source, dict) else None
        if not isinstance(uri, str):
            continue
        scheme = "file://" if uri.startswith("file://") else ""
        path = uri.removeprefix(scheme)
        if path.startswith(prefix):
            source["uri"] = f"{scheme}{new_ws}/{path[len(prefix) :]}"
            conn.execute(
                "UPDATE datasets SET dataset_source = ? WHERE dataset_uuid = ?",
                (json.dumps(source), uuid),
            )
