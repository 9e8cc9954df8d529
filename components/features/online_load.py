"""Feast's local materialization, with the last step (Arrow batch -> online store)
done column by column into SQLite (components/features/arrow_rows.py).

Feast's local compute engine reads each view's window, keeps the latest row per entity
and hands the Arrow result to an output node, which converts every value to a protobuf
and calls the online store's writer. This engine is Feast's own (same reading, the same
dedup, registry bookkeeping by `FeatureStore.materialize`), built with one different
node: the output node writes through `arrow_rows.batch_rows` and the batched SQLite
writer when it can (which keeps the stream consumer's side table of precise times in
step where it exists), and runs Feast's node unchanged otherwise (a view with an offline
write, a composite key, a type the conversion leaves to Feast).
"""

from __future__ import annotations

from typing import Any

from feast import FeatureStore
from feast.infra.common.materialization_job import MaterializationJobStatus, MaterializationTask
from feast.infra.compute_engines.dag.context import ExecutionContext
from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue
from feast.infra.compute_engines.local.compute import LocalComputeEngine
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.compute_engines.local.nodes import LocalOutputNode
from feast.infra.registry.base_registry import BaseRegistry

from components.features.arrow_rows import batch_rows
from components.features.sqlite_writer import (
    BatchedSqliteOnlineStore,
    feast_only_columns,
    unbuilt_plain_sqlite,
)


class ColumnarOutputNode(LocalOutputNode):
    """Feast's output node, writing an online-only view's batches column by column."""

    def execute(self, context: ExecutionContext) -> ArrowTableValue:
        store = context.online_store
        view = self.feature_view
        config = context.repo_config
        if (
            not isinstance(store, BatchedSqliteOnlineStore)
            or not view.online
            or view.offline
            or feast_only_columns(config)
        ):
            return super().execute(context)
        table = self.get_single_table(context).data
        join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
        size = config.materialization_config.online_write_batch_size
        batches = (
            table.to_batches(max_chunksize=size) if size else table.combine_chunks().to_batches()
        )
        for batch in batches:
            built = batch_rows(batch, view, join_keys, config.entity_key_serialization_version)
            if built is None:
                # Feast's node, whole: it rewrites any batch written here with the same
                # rows (an upsert), and says itself what it cannot convert.
                return super().execute(context)
            # The side rows (built.side) only where the side table exists.
            store.write_rows(config, view, built.rows, built.side, in_key_order=True)
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        return output


class ColumnarFeatureBuilder(LocalFeatureBuilder):
    def build_output_nodes(self, view: Any, input_node: Any) -> ColumnarOutputNode:
        # The view type as Feast's own builder passes it.
        node = ColumnarOutputNode("output", self.dag_root.view, inputs=[input_node])  # type: ignore[arg-type]
        self.nodes.append(node)
        return node


class ColumnarLocalComputeEngine(LocalComputeEngine):
    """Feast's local engine with `ColumnarFeatureBuilder` in its materialization."""

    def _materialize_one(
        self, registry: BaseRegistry, task: MaterializationTask, **kwargs: Any
    ) -> LocalMaterializationJob:
        # Feast's own `_materialize_one`, with the builder class swapped.
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        context = self.get_execution_context(registry, task)
        backend = self._get_backend(context)
        try:
            ColumnarFeatureBuilder(registry, task, backend=backend).build().execute(context)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
        except Exception as e:  # Feast's contract: the job carries the error
            return LocalMaterializationJob(
                job_id=job_id, status=MaterializationJobStatus.ERROR, error=e
            )


def use_columnar_load(store: FeatureStore) -> bool:
    """Make `store`'s materialization load Feast's plain SQLite online store through
    `ColumnarLocalComputeEngine` and the batched writer; True when it does. Must run
    before the store's first materialization (Feast builds its engine once)."""
    provider = unbuilt_plain_sqlite(store)
    if provider is None or store.config.batch_engine_config != "local":
        return False
    writer = BatchedSqliteOnlineStore()
    provider._online_store = writer  # type: ignore[assignment]
    provider._batch_engine = ColumnarLocalComputeEngine(
        repo_config=store.config, offline_store=provider.offline_store, online_store=writer
    )
    return True
