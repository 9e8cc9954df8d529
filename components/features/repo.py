"""The Feast repo folder and the Feast objects, both built from the use-case config.

The objects are built in code rather than kept as `.py` files in the repo folder:
`feast apply` imports every `.py` file it finds there, so the folder holds only
`feature_store.yaml`, the registry, the online store and the Parquet snapshots.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.common import storage
from components.common.config import ColumnType, SeamlessConfig
from components.common.durable import write_atomic
from components.common.env import feast_config_file
from components.common.errors import SeamlessError

if TYPE_CHECKING:  # Feast takes seconds to import: only where its objects are built
    from feast import Entity, FeatureService, FeatureView
    from feast.feast_object import FeastObject
    from feast.types import FeastType

FEATURE_STORE_YAML = "feature_store.yaml"
DATA_DIR = "data"
REGISTRY_DB = "registry.db"
_LOCAL_REGISTRY = re.compile(r"sqlite:///(/.+)/" + re.escape(REGISTRY_DB))


@functools.cache
def feast_types() -> dict[ColumnType, FeastType]:
    """Declared column type -> Feast type of the feature."""
    from feast.types import Bool, Float64, Int64, String, UnixTimestamp

    return {
        "int": Int64,
        "float": Float64,
        "string": String,
        "bool": Bool,
        "timestamp": UnixTimestamp,
    }


def default_offline_store() -> str:
    """`duckdb` when its packages are installed, else `file` (Dask).

    Measured on the bundled config at 100k labels: DuckDB joins in ~1.5 s where Dask
    takes ~6 s, and Dask also loses entity rows (see training_set.PER_VIEW_STORES),
    costing a per-view join. Both give the same training set; see README.md.
    With the offline data in object storage it is `file`: Dask reads s3:// through
    s3fs, while DuckDB would download its httpfs extension at run time.
    """
    if storage.is_remote(os.environ.get(OFFLINE_ROOT_ENV, "")):
        return "file"
    have = all(importlib.util.find_spec(m) is not None for m in ("duckdb", "ibis"))
    return "duckdb" if have else "file"


# 50,000 entities per write: at 1M label rows materialization peaked at 1.5 GB with one
# batch per view, 1.0 GB with these, in the same time (docs/benchmarks.md).
ONLINE_WRITE_BATCH = 50_000


def spark_stores(config: SeamlessConfig) -> dict[str, object]:
    """feature_store.yaml's offline store and batch engine for `engine: spark`: Feast's Spark
    offline store and compute engine, on the Spark session settings of the config."""
    from components.common.spark import session_conf

    conf = {
        "spark.master": config.spark.master,
        "spark.app.name": config.spark.app_name,
        **session_conf(config.spark),
    }
    return {
        "offline_store": {"type": "spark", "spark_conf": conf},
        "batch_engine": {"type": "spark.engine", "spark_conf": conf},
    }


def local_repo_config(
    project: str,
    repo_path: Path,
    offline_store: str | None = None,
    spark: SeamlessConfig | None = None,
) -> dict[str, object]:
    """feature_store.yaml content for embedded local mode, every file inside the repo folder.

    The registry is Feast's SQL registry on a SQLite file: Feast rewrites a *file* registry
    in place (truncate, write), so a process killed mid-materialization could leave it
    empty; SQL writes are transactions. Readers keep the last materialized values while a
    materialization runs or after one was killed (`serve_features_while_materializing`).
    """
    stores: dict[str, object] = {
        "offline_store": {"type": offline_store or default_offline_store()}
    }
    if spark is not None:
        stores = spark_stores(spark)
    return {
        "project": project,
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            "path": f"sqlite:///{repo_path.resolve() / REGISTRY_DB}",
            "cache_ttl_seconds": 60,
            "serve_features_while_materializing": True,
        },
        "online_store": {"type": "sqlite", "path": "online_store.db"},
        **stores,
        "entity_key_serialization_version": 3,
        # The online store only needs the latest row per entity, so don't move the rest;
        # written in batches, so Feast holds one batch's protobufs at a time, not a view's.
        "materialization": {
            "pull_latest_features": True,
            "online_write_batch_size": ONLINE_WRITE_BATCH,
        },
    }


def ensure_repo(
    repo_path: Path,
    project: str,
    offline_store: str | None = None,
    spark: SeamlessConfig | None = None,
) -> Path:
    """Create `feature_store.yaml` for local mode unless one exists (a cluster's is kept as is).

    `spark` (a config with `engine: spark`) makes the offline store and batch engine
    Feast's Spark ones; a local-mode file made for the other engine is switched over.
    Returns the path of the feature_store.yaml in use.
    """
    repo_path.mkdir(parents=True, exist_ok=True)
    target = feast_config_file(repo_path)
    if target.is_file() and not _engine_changed(target, spark):
        return target
    target = repo_path / FEATURE_STORE_YAML
    content = local_repo_config(project, repo_path, offline_store, spark)
    if target.is_file():  # switching engines: keep everything but the offline side
        content = yaml.safe_load(target.read_text(encoding="utf-8"))
        content.pop("batch_engine", None)
        content.update(
            spark_stores(spark)
            if spark is not None
            else {"offline_store": {"type": offline_store or default_offline_store()}}
        )
    # Atomic: a concurrent reader sees no file or a whole one.
    write_atomic(target, yaml.safe_dump(content, sort_keys=False).encode(), mode=0o600)
    return target


def _engine_changed(config_file: Path, spark: SeamlessConfig | None) -> bool:
    """Whether a local-mode feature_store.yaml was made for the other engine."""
    if os.environ.get("SEAMLESS_FEAST_CONFIG"):
        return False  # a cluster's file is the operator's
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        kind = raw["offline_store"]["type"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return False  # Feast says what is wrong with the file when the store opens
    return (kind == "spark") != (spark is not None)


OFFLINE_ROOT_ENV = "SEAMLESS_FEAST_OFFLINE_ROOT"


def offline_root(repo_path: Path) -> str | Path:
    """Where the offline Parquet snapshots live: `SEAMLESS_FEAST_OFFLINE_ROOT` (an object
    store URI such as `s3://bucket/feast`, or a folder), else `<repo>/data`."""
    root = os.environ.get(OFFLINE_ROOT_ENV, "").strip()
    if not root:
        return repo_path / DATA_DIR
    return root.rstrip("/") if storage.is_remote(root) else Path(root).expanduser().resolve()


def require_durable_offline_root() -> None:
    """On a pod's disk (SEAMLESS_EPHEMERAL_DISK) the offline root must be an object store:
    local tables would vanish with the pod while the registry still points at them."""
    storage.require_remote_root(OFFLINE_ROOT_ENV, "Feast's offline tables")


def snapshot_path(repo_path: Path, table: str, table_hash: str) -> str | Path:
    """Content-addressed, immutable Parquet snapshot of one table (a path or a URI)."""
    root = offline_root(repo_path)
    if isinstance(root, Path):
        return root / table / f"{table_hash}.parquet"
    return storage.join(root, table, f"{table_hash}.parquet")


@dataclass(frozen=True)
class FeastObjects:
    """Everything applied to the registry for one config."""

    entity: Entity
    views: list[FeatureView]
    service: FeatureService

    def all(self) -> list[FeastObject]:
        return [self.entity, *self.views, self.service]


def build_objects(
    config: SeamlessConfig,
    repo_path: Path,
    table_hashes: dict[str, str],
    spark_paths: dict[str, str] | None = None,
    pushed: dict[str, Any] | None = None,
) -> FeastObjects:
    """Entity, one FeatureView per configured view, and the FeatureService.

    Sources are FileSources over the snapshots, or with `spark_paths` (table -> Spark
    Parquet folder, `engine: spark`) Feast's SparkSources over those folders. A view in
    `pushed` (view -> components.stream.pushed.PushedSnapshot: its snapshot with the
    streamed events appended) reads that instead, and its tags say so.
    """
    pushed = pushed or {}
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource

    types = feast_types()
    key = config.entity_key()
    # A generated row_id (no declared type) is an int.
    key_type = config.tables[config.labels.table].columns.get(key, "int")
    entity = Entity(
        name=config.features.entity,
        join_keys=[key],
        value_type=types[key_type].to_value_type(),
    )
    views: list[FeatureView] = []
    for view in config.features.views:
        if view.table not in table_hashes:
            raise SeamlessError(
                f"Feature view '{view.name}' needs table '{view.table}', which has no content hash "
                f"in table_hashes (known: {sorted(table_hashes)})."
            )
        columns = config.tables[view.table].columns
        source: Any
        if spark_paths is not None:
            from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
                SparkSource,
            )

            source = SparkSource(
                # Its own name: Feast's SQL registry cannot turn a FileSource into a
                # SparkSource of the same name when a repo switches engines.
                name=f"{view.name}__{view.table}__spark",
                path=pushed[view.name].path if view.name in pushed else spark_paths[view.table],
                file_format="parquet",
                timestamp_field=config.timestamp_key(view.table),
            )
        else:
            path = str(snapshot_path(repo_path, view.table, table_hashes[view.table]))
            if view.name in pushed:
                path = pushed[view.name].path
            source = FileSource(
                name=f"{view.name}__{view.table}",
                path=path,
                timestamp_field=config.timestamp_key(view.table),
                # Feast reads s3:// with pyarrow/s3fs; a non-AWS server's endpoint goes in
                # the source (credentials stay in the environment of whoever reads).
                s3_endpoint_override=storage.s3_endpoint() if path.startswith("s3://") else None,
            )
        # Streamed events reach the view through Feast's push source (components/stream);
        # its batch source stays the immutable snapshot, so Feast itself never appends to it.
        source = PushSource(name=push_source_name(view.name), batch_source=source)
        # The entity column is part of the schema so Feast need not infer its type by
        # reading the file.
        schema = [Field(name=key, dtype=types[key_type])]
        schema += [Field(name=f, dtype=types[columns[f]]) for f in view.features]
        views.append(
            FeatureView(
                name=view.name,
                entities=[entity],
                schema=schema,
                source=source,
                ttl=timedelta(days=view.ttl_days),
                online=True,
                tags={
                    "seamless.table": view.table,
                    "seamless.table_sha256": table_hashes[view.table],
                    **(pushed[view.name].tags() if view.name in pushed else {}),
                },
            )
        )
    service = FeatureService(name=config.features.service, features=[*views])
    return FeastObjects(entity=entity, views=views, service=service)


def push_source_name(view: str) -> str:
    """The Feast push source of a feature view: where `seamless stream consume` pushes."""
    return f"{view}__push"


def moved_from(repo_path: Path) -> Path | None:
    """The folder a local repo was created in, when it has been moved or copied since.

    Reads only `feature_store.yaml` (no Feast import): a local-mode file (SQL registry on
    `sqlite:///<folder>/registry.db`) whose folder is not `repo_path`, while `repo_path`
    holds the registry. A cluster's mounted file (`SEAMLESS_FEAST_CONFIG`) is never ours.
    """
    config_file = feast_config_file(repo_path)
    if os.environ.get("SEAMLESS_FEAST_CONFIG") or not config_file.is_file():
        return None
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # Feast reports an unreadable file when the store is opened
    registry = raw.get("registry") if isinstance(raw, dict) else None
    if not isinstance(registry, dict) or registry.get("registry_type") != "sql":
        return None
    m = _LOCAL_REGISTRY.fullmatch(str(registry.get("path", "")))
    here = repo_path.resolve()
    if m is None or Path(m.group(1)) == here or not (here / REGISTRY_DB).is_file():
        return None
    return Path(m.group(1))


def relocate_repo(repo_path: Path) -> Path | None:
    """Make a moved or copied local repo read and write its own files again.

    The registry's SQLite URL in `feature_store.yaml` and the Parquet paths of the file
    sources in the registry are absolute; those under the old folder are rewritten to
    this one (sources first, through the new registry URL; the yaml last, atomically, so
    an interrupted relocation is redone on the next open). Returns the old folder, or
    None when the repo was not moved.
    """
    old = moved_from(repo_path)
    if old is None:
        return None
    here = repo_path.resolve()
    config_file = feast_config_file(repo_path)
    raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    raw["registry"]["path"] = f"sqlite:///{here / REGISTRY_DB}"
    try:
        _relocate_sources(raw, here, old)
    except Exception as exc:
        raise SeamlessError(
            f"The Feast repo {here} was moved from {old}, and rewriting the registry's "
            f"file sources ({here / REGISTRY_DB}) failed: {exc}"
        ) from None
    write_atomic(config_file, yaml.safe_dump(raw, sort_keys=False).encode(), mode=0o600)
    return old


def _relocate_sources(raw: dict[str, Any], here: Path, old: Path) -> int:
    """Rewrite FileSource paths under `old` to `here` in the registry; returns objects applied."""
    from feast import FeatureStore, FileSource
    from feast.repo_config import RepoConfig

    config = RepoConfig(**raw)
    config.repo_path = here
    store = FeatureStore(config=config)
    prefix = f"{old}/"

    def fix(source: Any) -> bool:
        if isinstance(source, FileSource) and source.path.startswith(prefix):
            source.file_options.uri = f"{here}/{source.path[len(prefix) :]}"
            return True
        return False

    changed: list[Any] = [s for s in store.list_data_sources() if fix(s)]
    changed += [v for v in store.list_feature_views() if fix(v.batch_source)]
    for service in store.list_feature_services():
        hits = [fix(p.batch_source) for p in service.feature_view_projections]
        if any(hits):
            changed.append(service)
    if changed:
        store.apply(changed, partial=True)
    return len(changed)
