"""KFP component: ingest every configured table into one content-addressed Dataset."""

from kfp.dsl import Dataset, Output

from components.common.image import seamless_component


@seamless_component
def ingest(
    config_yaml: str, data_dir: str, dataset: Output[Dataset], pipeline_run_id: str = ""
) -> str:
    """Read files / SQL / HTTP API sources, normalize them, write Parquet; returns the sha256."""
    from components.common.stage import clean_errors, stage_config
    from components.governance import hooks
    from components.ingest.stage import ingest_tables

    with clean_errors("ingest"):
        hooks.before_ingest()
        manifest = ingest_tables(stage_config(config_yaml), data_dir or None, dataset.path)
        dataset.metadata["sha256"] = manifest["sha256"]
        for name, entry in manifest["tables"].items():
            dataset.metadata[f"{name}.rows"] = entry["rows"]
            dataset.metadata[f"{name}.columns"] = len(entry["columns"])
            dataset.metadata[f"{name}.sha256"] = entry["sha256"]
            dataset.metadata[f"{name}.source"] = entry.get("source", "")
        pii = manifest.get("pii") or {}
        if pii:  # which columns were pseudonymized or dropped, and the key's fingerprint
            dataset.metadata["pii.key_fingerprint"] = pii.get("key_fingerprint", "")
            for name, cols in pii["pseudonymized"].items():
                dataset.metadata[f"{name}.pii.pseudonymized"] = ", ".join(cols)
            for name, cols in pii["dropped"].items():
                dataset.metadata[f"{name}.pii.dropped"] = ", ".join(cols)
        hooks.on_ingest(dataset.path, pipeline_run_id)  # immutable snapshot + audit
        return str(manifest["sha256"])
