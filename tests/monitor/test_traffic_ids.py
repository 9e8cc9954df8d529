"""Labels join predictions whatever mix of requests the prediction log holds.

A request without entity ids (`instances`, OIP feature tensors) logs `entity_id: null`;
read into a DataFrame, a column of ints with some nulls becomes float64, and ids
compared as text then read "118968.0" on one side and "118968" on the other. These
tests write the logs with the serving code itself (real MLflow champion, real Feast
online store) and check that every label finds its prediction.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.monitor.traffic import JoinStats, id_key, labelled, read_traffic
from components.predictions.files import AppendLog
from components.serve.api.app import create_app
from components.serve.settings import ServeSettings
from tests.serving.workspace import build_workspace, clean_endpoints, small_config


def _log(directory: Path, prefix: str, records: list[dict[str, Any]]) -> None:
    log = AppendLog(directory / prefix, prefix)
    log.open()
    log.append(records)
    log.close()


def _pred(request_id: str, index: int, entity_id: Any) -> dict[str, Any]:
    return {
        "ts": "2026-01-10T12:00:00+00:00",
        "request_id": request_id,
        "index": index,
        "entity_id": entity_id,
        "model_name": "m",
        "model_version": "1",
        "features": {},
        "score": 0.5,
        "decision": True,
    }


def _fb(request_id: str, label: int, entity_id: Any = None, index: int | None = None) -> dict:
    return {
        "ts": "2026-01-10T13:00:00+00:00",
        "request_id": request_id,
        "entity_id": entity_id,
        "index": index,
        "label": label,
    }


BIG = 2**53 + 1
"""float64 cannot hold it: a float round trip changes the id."""


@pytest.mark.unit
def test_entity_labels_join_when_the_log_also_holds_instances_requests(tmp_path: Path) -> None:
    """The issue's case: an entity request and an `instances` request in the log, labels
    by entity id. Before the fix: 0 labels ("118968.0" vs "118968")."""
    _log(
        tmp_path,
        "predictions",
        [_pred("ent", 0, 118968), _pred("ent", 1, BIG), _pred("inst", 0, None)],
    )
    _log(
        tmp_path,
        "feedback",
        [_fb("ent", 1, entity_id=118968), _fb("ent", 0, entity_id=BIG)],
    )
    traffic = read_traffic(tmp_path)
    assert traffic.predictions["entity_id"].dtype == object
    assert traffic.predictions["entity_id"].tolist() == [118968, BIG, None]
    joined = labelled(traffic.predictions, traffic.feedback, 1)
    assert dict(zip(joined["entity_id"], joined["label"], strict=True)) == {118968: 1.0, BIG: 0.0}


@pytest.mark.unit
def test_labels_join_when_the_feedback_mixes_entity_ids_and_indexes(tmp_path: Path) -> None:
    """The reverse: only entity requests, but some labels name their row by index, so
    the feedback's entity ids are the column with nulls. Every record is counted."""
    _log(
        tmp_path,
        "predictions",
        [_pred("ent", 0, 118968), _pred("ent", 1, 7), _pred("str", 0, "00042")],
    )
    _log(
        tmp_path,
        "feedback",
        [
            _fb("ent", 1, entity_id=118968),
            _fb("ent", 0, index=1),
            _fb("str", 1, entity_id="00042"),  # string keys keep their leading zeros
            _fb("str", 0, entity_id="42"),  # ... so "42" is another entity: unmatched
            _fb("nowhere", 1, entity_id=5),  # names no logged prediction
            {**_fb("ent", 1, entity_id=7), "label": None},  # no label: not usable
        ],
    )
    traffic = read_traffic(tmp_path)
    stats = JoinStats()
    joined = labelled(traffic.predictions, traffic.feedback, 1, stats)
    got = {(r.request_id, r.index): r.label for r in joined.itertuples()}
    assert got == {("ent", 0): 1.0, ("ent", 1): 0.0, ("str", 0): 1.0}
    assert stats.to_dict() == {
        "feedback": 6,
        "without_label": 1,
        "unknown_label": 0,
        "unknown_values": {},
        "matched": 3,
        "unmatched": 2,
        "replaced": 0,
        "labelled": 3,
    }


@pytest.mark.unit
def test_frames_already_read_as_float_still_join() -> None:
    """A caller's frame whose ids pandas already made float64 (NaN next to ids)."""
    preds = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-01-10T12:00:00Z"] * 3),
            "request_id": ["a", "a", "b"],
            "index": [0, 1, 0],
            "entity_id": [118968.0, 7.0, float("nan")],
            "score": [0.1, 0.2, 0.3],
        }
    )
    feedback = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-01-10T13:00:00Z"] * 2),
            "request_id": ["a", "b"],
            "index": [None, 0],
            "entity_id": [118968, None],
            "label": [1, 0],
        }
    )
    joined = labelled(preds, feedback, 1).sort_values("request_id")
    assert joined[["request_id", "index", "label"]].values.tolist() == [
        ["a", 0, 1.0],
        ["b", 0, 0.0],
    ]
    assert [id_key(v) for v in (118968.0, 118968, "118968", None, float("nan"))] == [
        "118968",
        "118968",
        "118968",
        None,
        None,
    ]


# ------------------------------------------------------------- with real serving


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A serving workspace (Feast online store + champion), built once for the module."""
    with clean_endpoints():
        config = small_config(load_config(default_config_path()))
        yield {"config": config, **build_workspace(tmp_path_factory.mktemp("ids"), config)}


def _client(served: dict[str, Any], logs: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    root: Path = served["workspace"]
    monkeypatch.setenv("SEAMLESS_WORKSPACE", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("SEAMLESS_FEAST_REPO", str(root / "feast"))
    settings = ServeSettings(
        poll_seconds=0,
        auth_disabled=True,
        predictions_dir=logs / "predictions",
        feedback_dir=logs / "feedback",
    )
    return TestClient(create_app(settings, served["config"]))


def _instances(config: SeamlessConfig, rows: pd.DataFrame) -> list[dict[str, Any]]:
    from pipelines.demo_loop import instances

    return instances(config, rows)


def _tensors(config: SeamlessConfig, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from components.serve.api.oip import DATATYPE

    return [
        {
            "name": name,
            "shape": [len(items)],
            "datatype": DATATYPE[kind],
            "data": [item[name] for item in items],
        }
        for name, kind in config.feature_types().items()
    ]


@pytest.mark.serving
@pytest.mark.slow
def test_labels_join_a_log_mixing_entity_and_instance_requests(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entity requests (v1 and OIP entity tensor), `instances` and OIP feature tensors
    through the real app, feedback for each; all labels join, as the monitor sees them."""
    from components.monitor.stage import run_monitoring

    config: SeamlessConfig = served["config"]
    ids: list[int] = served["entities"]
    rows = served["training"].tail(12)
    feedback: list[dict[str, Any]] = []
    with _client(served, tmp_path, monkeypatch) as client:
        # 1. entity ids (features from Feast): labelled by entity id
        r = client.post("/v1/predict", json={"entity_ids": ids[:10]})
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        feedback += [
            {"request_id": rid, "entity_id": e, "label": i % 2} for i, e in enumerate(ids[:10])
        ]
        # 2. full feature rows: labelled by index
        r = client.post("/v1/predict", json={"instances": _instances(config, rows[:6])})
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        feedback += [{"request_id": rid, "index": i, "label": i % 2} for i in range(6)]
        # 3. OIP feature tensors: labelled by index
        name = config.model.name
        body = {"inputs": _tensors(config, _instances(config, rows[6:]))}
        r = client.post(f"/v2/models/{name}/infer", json=body)
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        feedback += [{"request_id": rid, "index": i, "label": (i + 1) % 2} for i in range(6)]
        # 4. OIP entity tensor: labelled by entity id
        tensor = {"name": config.entity_key(), "shape": [4], "datatype": "INT64"}
        r = client.post(
            f"/v2/models/{name}/infer", json={"inputs": [{**tensor, "data": ids[10:14]}]}
        )
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        feedback += [
            {"request_id": rid, "entity_id": e, "label": i % 2} for i, e in enumerate(ids[10:14])
        ]
        feedback.append({"request_id": "not-a-request", "entity_id": ids[0], "label": 1})
        # First the labels by entity id alone (before the fix: 0 of them joined) ...
        by_entity = [f for f in feedback if "entity_id" in f]
        r = client.post("/v1/feedback", json={"feedback": by_entity})
        assert r.status_code == 200, r.text
        traffic = read_traffic(tmp_path)
        assert len(traffic.predictions) == 26
        assert traffic.predictions["entity_id"].isna().sum() == 12  # tensor/instances rows
        first = labelled(traffic.predictions, traffic.feedback, config.labels.positive_class)
        assert len(first) == 14
        # ... then the labels of the rows without entity ids, by index.
        by_index = [f for f in feedback if "entity_id" not in f]
        r = client.post("/v1/feedback", json={"feedback": by_index})
        assert r.status_code == 200, r.text

    traffic = read_traffic(tmp_path)
    stats = JoinStats()
    joined = labelled(traffic.predictions, traffic.feedback, config.labels.positive_class, stats)
    assert len(joined) == 26, stats
    assert (stats.feedback, stats.matched, stats.unmatched) == (27, 26, 1)
    by_entity = joined.dropna(subset=["entity_id"]).set_index("entity_id")["label"]
    assert by_entity.to_dict() == {
        **{e: float(i % 2) for i, e in enumerate(ids[:10])},
        **{e: float(i % 2) for i, e in enumerate(ids[10:14])},
    }

    # The monitoring stage counts the same labels (too few for a verdict: 26 < 200).
    result = run_monitoring(config, workspace=tmp_path, log_to_mlflow=False)
    assert result.performance.labelled == 26, result.performance.message
    assert result.window["labels"]["unmatched"] == 1


@pytest.mark.unit
def test_feedback_labels_outside_the_classes_are_counted_not_negative() -> None:
    """Issue #13 item 1 for feedback: 'Churned' is not a silent 'stayed'."""
    from components.common.config import LabelsConfig

    n = 6
    preds = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-01-10T12:00:00Z"] * n),
            "request_id": [f"r{i}" for i in range(n)],
            "index": [0] * n,
            "entity_id": list(range(n)),
            "score": [0.5] * n,
        }
    )
    feedback = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-01-10T13:00:00Z"] * n),
            "request_id": [f"r{i}" for i in range(n)],
            "index": [0] * n,
            "entity_id": [None] * n,
            "label": ["churned", "stayed", "Churned", "stayed", None, "paused"],
        }
    )
    labels = LabelsConfig(
        table="t", label_column="churn", positive_class="churned", negative_classes=["stayed"]
    )
    stats = JoinStats()
    joined = labelled(preds, feedback, labels, stats)
    assert joined.set_index("request_id")["label"].to_dict() == {
        "r0": 1.0,
        "r1": 0.0,
        "r3": 0.0,
    }
    assert (stats.without_label, stats.unknown_label) == (1, 2)
    assert stats.unknown_values == {"Churned": 1, "paused": 1}
    mapped = labels.model_copy(update={"value_map": {"Churned": "churned"}})
    joined = labelled(preds, feedback, mapped)
    assert joined.set_index("request_id")["label"].to_dict()["r2"] == 1.0
