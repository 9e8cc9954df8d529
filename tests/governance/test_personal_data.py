"""Personal data end to end (issue 17 part 3): a real training run with the entity key
tagged `pii: pseudonymize` and two personal columns (an e-mail dropped, a tax id
pseudonymized), then serving with raw ids, batch scoring, monitoring and lineage; then
every file of the workspace is searched for the raw values and none is found.

The demo data (pipelines/demo_data.py) has no personal column besides its ids, so the
profiles table gets an `email` and a `tax_id`, and the ids are remapped to distinctive
19-digit numbers (a 6-digit demo id could be any number in an MLflow or Feast file). The
search (tests/helpers/leak_scan.py) reads Parquet values, SQLite cells, zip and gzip
members besides the raw bytes; the control test shows it finds the raw values in the
source data and the pseudonyms in the workspace, so a clean result is not vacuous.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient

from components.common.config import default_config_path, load_config
from components.common.pii import KEY_ENV, Pseudonymizer
from components.common.tables import read_dataset, read_manifest
from pipelines.demo_data import generate_frames
from tests.helpers.endpoints import ENDPOINT_KEYS
from tests.helpers.environ import restored_environ
from tests.helpers.leak_scan import Needles, scan_tree

pytestmark = [pytest.mark.governance, pytest.mark.pipeline, pytest.mark.slow]

KEY = "pii-e2e-" + secrets.token_hex(32)
RAW_BASE = 7_314_159_265_000_000_000
SERVED = 6
"""Customers asked for online (raw ids)."""
BATCH = 300
"""Customers scored in batch (raw ids), enough rows for monitoring's min_rows."""


def _raw_id(demo_id: int) -> int:
    return RAW_BASE + (demo_id - 100_000) * 1_000_003


def _write_data(folder: Path) -> dict[str, Any]:
    """The demo tables with distinctive raw ids and two personal columns; the raw values."""
    frames = generate_frames(n_rows=2500, seed=11)
    for df in frames.values():
        df["customer_id"] = df["customer_id"].map(_raw_id).astype("int64")
    profiles = frames["profiles"]
    serial = profiles["customer_id"] - RAW_BASE
    profiles["email"] = [f"person.{s}@pii-test.invalid" for s in serial]
    profiles["tax_id"] = [f"TAX-{s:012d}-Z" for s in serial]
    folder.mkdir(parents=True)
    for name, df in frames.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)
    ids = sorted({int(v) for df in frames.values() for v in df["customer_id"]})
    return {
        "ids": ids,
        "emails": sorted(set(profiles["email"])),
        "tax_ids": sorted(set(profiles["tax_id"])),
        "labels": frames["labels"],
    }


def _write_config(path: Path) -> None:
    raw = yaml.safe_load(default_config_path().read_text())
    raw["engine"] = "local"
    raw["model"]["search"].update({"n_iter": 1, "cv": 2, "space": {"max_iter": [40]}})
    for table in raw["tables"].values():
        table["columns"]["customer_id"] = {"type": "int", "pii": "pseudonymize"}
    columns = raw["tables"]["profiles"]["columns"]
    columns["email"] = {"type": "string", "pii": "drop"}
    columns["tax_id"] = {"type": "string", "pii": "pseudonymize"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One training run, then serving, feedback, batch scoring, monitoring and lineage,
    all with raw ids from outside; returns what the tests check."""
    from components.batch.stage import run_batch_scoring
    from components.governance.lineage import export_openlineage, model_lineage, render_tree
    from components.monitor.stage import run_monitoring
    from components.serve.api.app import create_app
    from components.serve.settings import ServeSettings
    from pipelines.local import run_training
    from pipelines.run_summary import data_lines

    root = tmp_path_factory.mktemp("pii")
    data, ws, outside = root / "data", root / "ws", root / "outside"
    outside.mkdir()
    raw = _write_data(data)
    config_path = root / "pii.yaml"
    _write_config(config_path)
    config = load_config(config_path)
    out: dict[str, Any] = {"root": root, "ws": ws, "data": data, "raw": raw, "config": config}
    with restored_environ():  # a module fixture: tests/conftest.py restores per test only
        for name in ENDPOINT_KEYS:
            os.environ.pop(name, None)
        os.environ[KEY_ENV] = KEY
        outcome = run_training(config_path, data, ws)
        assert outcome.decision == "promote", outcome.reason
        out["outcome"] = outcome
        out["summary_lines"] = data_lines(outcome.data)

        served = raw["ids"][:SERVED]
        settings = ServeSettings(
            poll_seconds=0,
            auth_disabled=True,
            predictions_dir=ws / "predictions",
            feedback_dir=ws / "feedback",
            spool_dir=ws / "spool",
            max_queue_ms=0,
        )
        with TestClient(create_app(settings, config)) as client:
            v1 = client.post("/v1/predict", json={"entity_ids": served[:3]})
            v2 = client.post(
                f"/v2/models/{config.model.name}/infer",
                json={
                    "inputs": [
                        {
                            "name": "customer_id",
                            "shape": [3],
                            "datatype": "INT64",
                            "data": served[3:],
                        }
                    ]
                },
            )
            unknown = client.post("/v1/predict", json={"entity_ids": [RAW_BASE - 1]})
            request_id = v1.json()["request_id"]
            feedback = client.post(
                "/v1/feedback",
                json={"feedback": [{"request_id": request_id, "entity_id": served[0], "label": 1}]},
            )
            ready = client.get("/readyz")
        out.update(v1=v1, v2=v2, unknown=unknown, feedback=feedback, ready=ready.json())

        entities = outside / "entities.parquet"  # raw ids: outside the workspace
        pd.DataFrame({"customer_id": raw["ids"][:BATCH]}).to_parquet(entities, index=False)
        batch_out = ws / "batch" / "scores.parquet"
        batch_out.parent.mkdir()
        out["batch"] = run_batch_scoring(config, str(entities), str(batch_out), as_of="2025-12-31")
        out["batch_out"] = batch_out

        out["monitoring"] = run_monitoring(
            config,
            workspace=ws,
            report_path=ws / "reports" / "drift.html",
            textfile_path=ws / "reports" / "seamless.prom",
            reference="training",
        )
        chain = model_lineage(config.model.name, outcome.version or "")
        out["chain"] = chain
        out["openlineage"] = export_openlineage(chain)
        from rich.console import Console

        console = Console(record=True, width=1000)
        console.print(render_tree(chain))
        out["tree"] = console.export_text()
    return out


def _pseudo() -> Pseudonymizer:
    return Pseudonymizer(KEY.encode())


def _snapshot(world: dict[str, Any]) -> Path:
    return Path(world["chain"]["snapshot"]["path"])


def test_training_ran_on_pseudonyms_and_says_so(world: dict[str, Any]) -> None:
    p = _pseudo()
    manifest = read_manifest(_snapshot(world))
    tables = read_dataset(_snapshot(world))
    want = {p.of_int(v) for v in world["raw"]["ids"]}
    for name, df in tables.items():
        assert set(df["customer_id"]) <= want, name
    assert "email" not in tables["profiles"].columns
    assert set(tables["profiles"]["tax_id"]) == {p.of_text(t) for t in world["raw"]["tax_ids"]}
    pii = manifest["pii"]
    assert pii["key_fingerprint"] == p.fingerprint
    assert pii["pseudonymized"] == {
        "credit_history": ["customer_id"],
        "labels": ["customer_id"],
        "profiles": ["customer_id", "tax_id"],
        "transactions": ["customer_id"],
    }
    assert pii["dropped"] == {"profiles": ["email"]}
    # Shown where the user looks: the run summary.
    lines = world["summary_lines"]
    assert "profiles.email: dropped (pii)" in lines
    assert any(line.startswith("profiles.customer_id:") and p.fingerprint in line for line in lines)


def _stored(folder: Path) -> list[dict[str, Any]]:
    """Every record in the files under `folder`, as stored (read here, not by the log):
    JSON lines, and batch segments' rows (Parquet) with the fields stored once."""
    records: list[dict[str, Any]] = []
    for f in sorted(folder.rglob("*")):
        if f.suffix == ".parquet":
            table = pq.read_table(f)
            meta = json.loads((table.schema.metadata or {})[b"seamless.log"])
            records += [{**meta["constants"], **row} for row in table.to_pylist()]
        elif f.is_file():
            records += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return records


def test_serving_takes_raw_ids_and_logs_only_pseudonyms(world: dict[str, Any]) -> None:
    p = _pseudo()
    served = world["raw"]["ids"][:SERVED]
    assert world["v1"].status_code == 200, world["v1"].text
    assert [r["entity_id"] for r in world["v1"].json()["predictions"]] == served[:3]
    assert world["v2"].status_code == 200, world["v2"].text
    assert world["unknown"].status_code == 404
    assert world["unknown"].json()["unknown_entity_ids"] == [RAW_BASE - 1]  # the client's own
    assert world["feedback"].status_code == 200
    assert world["ready"]["pii_key_fingerprint"] == p.fingerprint
    logged = _stored(world["ws"] / "predictions")
    online = [r["entity_id"] for r in logged if r.get("route") != "batch"]
    assert sorted(online) == sorted(p.of_int(v) for v in served)
    fb = _stored(world["ws"] / "feedback")
    assert [r["entity_id"] for r in fb] == [p.of_int(served[0])]


def test_batch_scoring_writes_and_logs_pseudonyms(world: dict[str, Any]) -> None:
    p = _pseudo()
    scores = pd.read_parquet(world["batch_out"])
    assert scores["customer_id"].tolist() == [p.of_int(v) for v in world["raw"]["ids"][:BATCH]]
    assert world["batch"].rows == BATCH
    assert world["batch"].rows_without_any_feature < BATCH
    logged = [r for r in _stored(world["ws"] / "predictions") if r.get("route") == "batch"]
    assert [r["entity_id"] for r in logged] == scores["customer_id"].tolist()


def test_lineage_and_audit_record_the_transforms(world: dict[str, Any]) -> None:
    p = _pseudo()
    chain = world["chain"]
    assert chain["snapshot"]["pii"]["key_fingerprint"] == p.fingerprint
    profiles = next(s for s in chain["sources"] if s["table"] == "profiles")
    assert profiles["pii"]["dropped"] == ["email"]
    assert set(profiles["pii"]["pseudonymized"]) == {"customer_id", "tax_id"}
    tree = world["tree"]
    assert "pii: pseudonymized profiles.customer_id, profiles.tax_id" in tree, tree
    assert "dropped profiles.email" in tree, tree
    ingest_events = [
        json.loads(line)
        for line in world["openlineage"].read_text().splitlines()
        if '"seamless.ingest"' in line
    ]
    tags = {t["key"]: t["value"] for t in ingest_events[-1]["outputs"][0]["facets"]["tags"]["tags"]}
    assert tags["pii_dropped"] == "profiles.email"
    assert tags["pii_key_fingerprint"] == p.fingerprint
    steps = [e for e in chain["data_access"] if e["details"].get("step") == "ingest"]
    assert steps[-1]["details"]["sources"]["profiles"]["pii"]["dropped"] == ["email"]


def test_no_raw_value_or_key_anywhere_in_the_workspace(world: dict[str, Any]) -> None:
    raw = world["raw"]
    needles = Needles(ints=set(raw["ids"]), texts={*raw["emails"], *raw["tax_ids"], KEY})
    findings, files = scan_tree(world["ws"], needles)
    assert files > 50  # snapshots, Feast, MLflow, reports, logs, audit, lineage...
    assert not findings, "\n".join(map(str, findings[:20]))


def test_the_scan_finds_what_is_there(world: dict[str, Any]) -> None:
    """Control: the same scan finds the raw values in the source data, and the pseudonyms
    in every kind of store the clean scan went through (Parquet values, the online
    store's SQLite blobs as packed int64, JSON text, MLflow's database)."""
    raw = world["raw"]
    source, _ = scan_tree(world["data"], Needles(ints=set(raw["ids"]), texts=set(raw["emails"])))
    assert {f.path for f in source} >= {f"{t}.parquet" for t in ("profiles", "labels")}
    assert any("text 'person." in f.how for f in source)
    p = _pseudo()
    pseudo = Needles(
        ints={p.of_int(v) for v in raw["ids"]}, texts={p.of_text(t) for t in raw["tax_ids"]}
    )
    found, _ = scan_tree(world["ws"], pseudo)
    where = {f.path.split("/")[0] for f in found}
    assert {"snapshots", "feast", "predictions", "feedback", "batch"} <= where, where
    online = [f for f in found if f.path.startswith("feast/") and "packed int64" in f.how]
    assert any(".db" in f.path for f in online), [str(f) for f in found if "feast" in f.path]
    assert any("column tax_id" in f.path for f in found)  # string pseudonyms, Parquet values
    logged = [f for f in found if f.path.startswith("predictions/") and "as text" in f.how]
    assert logged, [str(f) for f in found if f.path.startswith("predictions/")]
