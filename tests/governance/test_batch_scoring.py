"""Batch scoring against a real workspace (Feast offline store, MLflow registry): the
point-in-time features it scores with, every bad input in one sentence with nothing
written, the prediction log (files and PostgreSQL), the audit entry and lineage, and the
`seamless run batch-scoring` command through kfp.local."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from components.batch.scoring import read_entities
from components.batch.stage import run_batch_scoring
from components.common.config import ColumnFormat, SeamlessConfig
from components.common.errors import SeamlessError
from components.common.model_input import model_input
from components.governance import hooks
from components.governance.audit import BATCH_SCORING, FileAuditLog
from components.governance.lineage import find_request, model_lineage
from components.predictions.reader import read_log
from components.predictions.records import LogQuery
from tests.helpers.cli import run_cli
from tests.helpers.configs import assert_one_sentence
from tests.helpers.postgres import PostgresServer, pg_server
from tests.serving.workspace import built, cfg, trained

pytestmark = [pytest.mark.governance, pytest.mark.slow]
__all__ = ["built", "cfg", "pg_server", "trained"]
NOT_INT = "column 'customer_id' has 1 entity id that is not an integer (first at data row 2: 'abc')"
EMPTY_ID = "1 empty entity id (first at data row 2: "
NOT_TS = "column 't' has 1 value that is not a timestamp (first at data row 2: 'soon')"


@pytest.fixture()
def ws(built: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root: Path = built["workspace"]
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("SEAMLESS_FEAST_REPO", str(root / "feast"))
    yield root


def label_rows(built: dict[str, Any], cfg: SeamlessConfig, n: int = 400) -> pd.DataFrame:
    key, ts = cfg.entity_key(), cfg.timestamp_key(cfg.labels.table)
    return built["training"][[key, ts]].head(n).reset_index(drop=True)


def test_scores_are_the_models_on_point_in_time_features(
    ws: Path, built: dict[str, Any], cfg: SeamlessConfig, tmp_path: Path
) -> None:
    """Scored at each label's own time, every row gets exactly the features the training
    set joined for it, so the scores equal the model on the training rows."""
    rows = label_rows(built, cfg)
    source = tmp_path / "entities.parquet"
    rows.to_parquet(source)
    out = tmp_path / "scores.parquet"
    ts = cfg.timestamp_key(cfg.labels.table)
    result = run_batch_scoring(cfg, str(source), str(out), timestamp_column=ts)

    model = mlflow.sklearn.load_model(built["model_uri"])
    want = model.predict_proba(model_input(cfg, built["training"].head(len(rows))))[:, 1]
    scores = pd.read_parquet(out)
    assert list(scores.columns) == [
        cfg.entity_key(),
        "as_of",
        "score",
        "decision",
        "model_name",
        "model_version",
        "batch_id",
    ]
    assert scores[cfg.entity_key()].tolist() == rows[cfg.entity_key()].tolist()  # input order
    np.testing.assert_allclose(scores["score"].to_numpy(), want, rtol=0, atol=1e-12)
    assert (scores["decision"] == (want >= cfg.model.threshold)).all()
    assert set(scores["model_version"]) == {built["version"]}
    assert result.rows == len(rows) and result.rows_without_any_feature == 0
    assert result.positives == int((want >= cfg.model.threshold).sum())
    assert set(result.feature_sources) == {v.name for v in cfg.features.views}


def test_one_instant_for_all_rows_and_a_later_instant_sees_later_values(
    ws: Path, built: dict[str, Any], cfg: SeamlessConfig, tmp_path: Path
) -> None:
    key = cfg.entity_key()
    ids = pd.DataFrame({key: [str(i) for i in built["entities"][:300]]})
    source = tmp_path / "ids.csv"
    ids.to_csv(source, index=False)
    early = run_batch_scoring(cfg, str(source), str(tmp_path / "a.parquet"), as_of="2025-03-01")
    late = run_batch_scoring(cfg, str(source), str(tmp_path / "b.parquet"), as_of="2026-01-01")
    assert early.timing == {"as_of": "2025-03-01T00:00:00+00:00"}
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert (a["as_of"] == pd.Timestamp("2025-03-01", tz="UTC")).all()
    assert (a["score"] != b["score"]).any()  # features moved between the two instants
    # Before any feature value existed, nothing joins: refused, nothing written.
    with pytest.raises(SeamlessError, match="No feature value joined any of the 300 input rows"):
        run_batch_scoring(cfg, str(source), str(tmp_path / "c.parquet"), as_of="2000-01-01")
    assert not (tmp_path / "c.parquet").exists()
    assert late.rows == 300


def test_rows_without_any_feature_are_refused_unless_skipped_or_imputed(
    ws: Path, built: dict[str, Any], cfg: SeamlessConfig, tmp_path: Path
) -> None:
    """An id no view knows would get a score from imputed values alone, where serving
    answers 404: refused by default, nothing written; `skip` leaves it out, `impute`
    scores it, and both count it."""
    key = cfg.entity_key()
    known = [str(i) for i in built["entities"][:2]]
    source = tmp_path / "ids.csv"
    pd.DataFrame({key: [known[0], "987654321", known[1]]}).to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    before = len(list(read_log(ws / "predictions", "predictions")))
    with pytest.raises(SeamlessError) as err:
        run_batch_scoring(cfg, str(source), str(out), as_of="2026-01-01")
    assert_one_sentence(
        str(err.value),
        "1 of 3 rows have no feature value in any view",
        f"row 2 ({key}=987654321)",
        "serving answers 404",
        "--without-features skip",
    )
    assert not out.exists()
    assert len(list(read_log(ws / "predictions", "predictions"))) == before

    skipped = run_batch_scoring(
        cfg, str(source), str(out), as_of="2026-01-01", without_features="skip"
    )
    scores = pd.read_parquet(out)
    assert scores[key].astype(str).tolist() == known  # input order, the unknown id left out
    assert (skipped.rows, skipped.rows_left_out, skipped.rows_without_any_feature) == (2, 1, 1)
    assert len(_records(ws, skipped.batch_id)) == 2
    only_known = tmp_path / "known.csv"
    pd.DataFrame({key: known}).to_csv(only_known, index=False)
    run_batch_scoring(cfg, str(only_known), str(tmp_path / "k.parquet"), as_of="2026-01-01")
    want = pd.read_parquet(tmp_path / "k.parquet")["score"].to_numpy()
    np.testing.assert_array_equal(scores["score"].to_numpy(), want)

    imputed = run_batch_scoring(
        cfg, str(source), str(tmp_path / "i.parquet"), as_of="2026-01-01", without_features="impute"
    )
    assert (imputed.rows, imputed.rows_left_out, imputed.rows_without_any_feature) == (3, 0, 1)
    with pytest.raises(SeamlessError, match="'maybe' is not one of fail, skip, impute"):
        run_batch_scoring(cfg, str(source), str(out), as_of="2026-01-01", without_features="maybe")


def _records(ws: Path, batch_id: str) -> list[dict[str, Any]]:
    return list(read_log(ws / "predictions", "predictions", query=LogQuery(request_id=batch_id)))


def test_naive_times_after_one_with_an_offset_stay_utc(
    ws: Path, built: dict[str, Any], cfg: SeamlessConfig, tmp_path: Path
) -> None:
    # One pandas call gave every naive time the first value's +02:00: each row was scored
    # two hours early, on other features (or none).
    rows = label_rows(built, cfg, 40)
    ts = cfg.timestamp_key(cfg.labels.table)
    rows.to_parquet(tmp_path / "in.parquet")
    text = rows.copy()
    times = rows[ts].dt.tz_convert("UTC")
    text[ts] = [t.strftime("%Y-%m-%d %H:%M:%S.%f") for t in times]
    text.loc[0, ts] = times[0].tz_convert("+02:00").isoformat()
    text.to_csv(tmp_path / "in.csv", index=False)
    text.to_json(tmp_path / "in.jsonl", orient="records", lines=True)  # JSON lines too
    scored = {}
    for name in ("in.parquet", "in.csv", "in.jsonl"):
        out = tmp_path / f"{name}.scores.parquet"
        run_batch_scoring(cfg, str(tmp_path / name), str(out), timestamp_column=ts)
        scored[name] = pd.read_parquet(out)
    for name in ("in.csv", "in.jsonl"):
        assert (scored[name]["as_of"] == times).all()
        assert scored[name]["score"].tolist() == scored["in.parquet"]["score"].tolist()


def test_a_timestamp_column_is_read_as_its_table_declares_it(
    cfg: SeamlessConfig, tmp_path: Path
) -> None:
    ts = cfg.timestamp_key(cfg.labels.table)
    table = cfg.tables[cfg.labels.table]
    unix = table.model_copy(update={"formats": {**table.formats, ts: ColumnFormat(unit="s")}})
    config = cfg.model_copy(update={"tables": {**cfg.tables, cfg.labels.table: unix}})
    (tmp_path / "in.csv").write_text(f"{cfg.entity_key()},{ts}\n7,1704412800\n8,1704412800.5\n")
    entities = read_entities(config, str(tmp_path / "in.csv"), timestamp_column=ts)
    assert entities.frame["as_of"].tolist() == [
        pd.Timestamp("2024-01-05T00:00:00Z"),
        pd.Timestamp("2024-01-05T00:00:00.5Z"),
    ]


@pytest.mark.parametrize(
    ("content", "args", "sentence"),
    [
        ("customer_id\n12\nabc\n", {"as_of": "2025-06-01"}, NOT_INT),
        ("customer_id\n12\n\n7\n", {"as_of": "2025-06-01"}, EMPTY_ID),
        ("id\n12\n", {"as_of": "2025-06-01"}, "has no column 'customer_id' (columns: id)"),
        ("customer_id\n12\n", {"as_of": "yesterday"}, "--as-of 'yesterday' is not a timestamp"),
        ("customer_id\n12\n", {}, "give either --as-of TIMESTAMP"),
        ("customer_id,t\n1,2025\n", {"as_of": "2025-06", "timestamp_column": "t"}, "not both"),
        ("customer_id,t\n12,2025-01-01\n13,soon\n", {"timestamp_column": "t"}, NOT_TS),
        ("customer_id\n", {"as_of": "2025-06-01"}, "has no rows"),
    ],
)  # fmt: skip
def test_bad_input_is_one_sentence_and_nothing_is_written(
    ws: Path, cfg: SeamlessConfig, tmp_path: Path, content: str, args: dict[str, str], sentence: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(content)
    out = tmp_path / "out.parquet"
    before = len(list(read_log(ws / "predictions", "predictions")))
    with pytest.raises(SeamlessError) as err:
        run_batch_scoring(cfg, str(source), str(out), **args)
    assert sentence in str(err.value)
    assert "\n" not in str(err.value)
    assert not out.exists()
    assert len(list(read_log(ws / "predictions", "predictions"))) == before


def test_unknown_inputs_and_versions_are_refused(
    ws: Path, cfg: SeamlessConfig, tmp_path: Path
) -> None:
    out = str(tmp_path / "out.parquet")
    with pytest.raises(SeamlessError, match=r"Input .*missing\.parquet does not exist\."):
        run_batch_scoring(cfg, str(tmp_path / "missing.parquet"), out, as_of="2025-06-01")
    (tmp_path / "in.xlsx").write_text("{}")
    with pytest.raises(SeamlessError, match="unknown table format"):
        run_batch_scoring(cfg, str(tmp_path / "in.xlsx"), out, as_of="2025-06-01")
    (tmp_path / "in.csv").write_text("customer_id\n1\n")
    with pytest.raises(SeamlessError, match="has no version '99'"):
        run_batch_scoring(
            cfg, str(tmp_path / "in.csv"), out, as_of="2025-06-01", model_version="99"
        )
    os.environ["SEAMLESS_EPHEMERAL_DISK"] = "true"
    with pytest.raises(SeamlessError, match="deleted with its pod; give an object storage URI"):
        run_batch_scoring(cfg, str(tmp_path / "in.csv"), out, as_of="2025-06-01")


def test_prediction_log_audit_and_lineage(
    ws: Path, built: dict[str, Any], cfg: SeamlessConfig, tmp_path: Path
) -> None:
    rows = label_rows(built, cfg, 50)
    rows.to_parquet(tmp_path / "in.parquet")
    ts = cfg.timestamp_key(cfg.labels.table)
    result = run_batch_scoring(
        cfg, str(tmp_path / "in.parquet"), str(tmp_path / "s.parquet"), timestamp_column=ts
    )
    records = _records(ws, result.batch_id)
    assert len(records) == 50
    first = records[0]
    assert first["route"] == "batch" and first["model_version"] == built["version"]
    assert set(first["features"]) == set(cfg.feature_types())
    assert pd.Timestamp(first["as_of"]) == rows[ts][0]
    scores = pd.read_parquet(tmp_path / "s.parquet")["score"].tolist()
    assert [r["score"] for r in records] == scores
    # The batch id is a request id like serving's: `seamless lineage --request` finds it.
    request = find_request(result.batch_id, ws / "predictions")
    assert request["rows"] == 50 and request["route"] == "batch"

    log = FileAuditLog()  # the workspace's
    entry = hooks.on_batch_scoring(result.to_dict(), "run-1")
    assert entry["action"] == BATCH_SCORING
    assert entry["subject"] == f"model:{cfg.model.name}/{built['version']}"
    chain = model_lineage(cfg.model.name, built["version"], log=log)
    (batch,) = [b for b in chain["batch_scoring"] if b["details"]["batch_id"] == result.batch_id]
    assert batch["details"]["output_sha256"] == result.output_sha256
    assert batch["details"]["input_sha256"] == result.input_sha256
    assert batch["details"]["pipeline_run_id"] == "run-1"
    assert log.verify().status == "ok"


def test_the_prediction_log_can_be_postgresql(
    ws: Path, built: dict[str, Any], cfg: SeamlessConfig, tmp_path: Path, pg_server: PostgresServer
) -> None:
    pg_server.execute("CREATE DATABASE batchlog")
    url = pg_server.url("batchlog")
    os.environ["SEAMLESS_SERVE_LOG_URL"] = url
    label_rows(built, cfg, 30).to_parquet(tmp_path / "in.parquet")
    result = run_batch_scoring(
        cfg,
        str(tmp_path / "in.parquet"),
        str(tmp_path / "s.parquet"),
        timestamp_column=cfg.timestamp_key(cfg.labels.table),
    )
    assert pg_server.password not in result.prediction_log
    records = list(read_log(url, "predictions", query=LogQuery(request_id=result.batch_id)))
    assert [r["index"] for r in records] == list(range(30))
    assert {r["route"] for r in records} == {"batch"}


def test_the_command_runs_the_pipeline(
    ws: Path, built: dict[str, Any], cfg: SeamlessConfig, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.yaml"
    import yaml

    # Padded past the 128 KiB a step's argument may hold (a wide table's config written by
    # init is that long): it travels packed (components/common/config_param.py).
    padding = "".join(f"# comment line {i:05d} {'x' * 60}\n" for i in range(2500))
    text = yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True)) + padding
    assert len(text) > 160_000
    config_path.write_text(text)
    rows = label_rows(built, cfg, 200)
    rows.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "scores.parquet"
    base = ["run", "batch-scoring", "--workspace", str(ws), "--config", str(config_path)]
    done = run_cli(
        *base, "--input", str(tmp_path / "in.parquet"), "--as-of", "2025-12-31T00:00:00Z",
        "--output", str(out), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rows"] == 200 and result["output"] == str(out)
    assert pd.read_parquet(out)["batch_id"].unique().tolist() == [result["batch_id"]]
    # A bad input fails before any step starts, in one sentence, exit 1.
    bad = run_cli(
        *base, "--input", str(tmp_path / "in.parquet"), "--timestamp-column", "when", cwd=tmp_path
    )
    assert bad.returncode == 1
    assert "has no column 'when'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli(
        *base, "--input", str(tmp_path / "in.parquet"), "--as-of", "2025-12-31",
        "--without-features", "drop", cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "--without-features 'drop' is not one of fail, skip, impute" in bad.stderr
