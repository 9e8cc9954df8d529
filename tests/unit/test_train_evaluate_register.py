"""Train, evaluate, register and deploy logic against a real local MLflow store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.common.config import PromotionConfig, SeamlessConfig
from components.common.errors import SeamlessError
from components.common.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, mlflow_client
from components.deploy.deployment import deploy_local, live_deployment
from components.evaluate.evaluation import evaluate, gate
from components.register.registry import register
from components.train.run import train_and_log
from components.train.training import split_holdout
from tests.factories import training_set

pytestmark = pytest.mark.unit


def _small(config: SeamlessConfig, **model: Any) -> SeamlessConfig:
    search = config.model.search.model_copy(update={"n_iter": 2, "cv": 2, "space": {}})
    update: dict[str, Any] = {"search": search, "params": {}, **model}
    return config.model_copy(update={"model": config.model.model_copy(update=update)})


def _train(config: SeamlessConfig, frame: Any) -> Any:
    return train_and_log(
        config,
        frame,
        data_sha256="a" * 64,
        feature_service="credit_risk_v1",
        pipeline_run_id="test-run",
        source_uri="file:///tmp/training_set",
    )


def test_holdout_is_the_latest_rows(config: SeamlessConfig) -> None:
    frame = training_set(1000)
    split = split_holdout(config, frame)
    assert len(split.holdout) == 200
    assert split.train["event_timestamp"].max() <= split.holdout["event_timestamp"].min()


def _holdout(config: SeamlessConfig, kind: str) -> SeamlessConfig:
    return config.model_copy(
        update={"model": config.model.model_copy(update={"holdout_split": kind})}
    )


def test_a_random_holdout_is_stratified_seeded_and_the_default_without_event_time(
    config: SeamlessConfig,
) -> None:
    # A file sorted by class: the last 20% of its rows are all of one class, which made
    # the time-ordered split unusable ("has only one class") for a table without time.
    frame = training_set(1000).sort_values("defaulted", kind="stable").reset_index(drop=True)
    frame["customer_id"] = range(len(frame))  # a row number, as ingest's row_id
    frame["event_timestamp"] = frame["event_timestamp"].min()  # one time, as ingested_at
    with pytest.raises(SeamlessError, match=r"holdout split is unusable.*holdout_split: random"):
        split_holdout(_holdout(config, "time"), frame)
    chosen = _holdout(config, "random")
    split = split_holdout(chosen, frame)
    assert split.kind == "random" and split.cutoff is None and len(split.holdout) == 200
    rate = frame["defaulted"].mean()
    assert abs(split.holdout["defaulted"].mean() - rate) < 0.01  # stratified
    assert not set(split.train.index) & set(split.holdout.index)
    again = split_holdout(chosen, frame.sample(frac=1, random_state=3))  # order of rows
    assert again.holdout["customer_id"].tolist() == split.holdout["customer_id"].tolist()
    # auto: random when the labels table has no event time of its own, else by time.
    tables = dict(config.tables)
    tables["labels"] = tables["labels"].model_copy(update={"timestamp_column": None})
    timeless = config.model_copy(update={"tables": tables})
    assert (
        split_holdout(timeless, frame.rename(columns={"event_timestamp": "ingested_at"})).kind
        == "random"
    )
    assert split_holdout(config, training_set(1000)).kind == "time"
    few = frame.head(300)  # two rows of the positive class at most
    few.loc[:, "defaulted"] = [1, 1] + [0] * 298
    assert split_holdout(chosen, few).holdout["defaulted"].sum() in (0, 1)
    few.loc[:, "defaulted"] = [1] + [0] * 299
    with pytest.raises(
        SeamlessError, match=r"random holdout split is unusable: 300 labelled rows hold 1"
    ):
        split_holdout(chosen, few)


def test_one_class_label_is_named(config: SeamlessConfig, workspace: Path) -> None:
    frame = training_set(500)
    frame["defaulted"] = 0
    with pytest.raises(SeamlessError, match=r"'defaulted' of table 'labels' has only one class"):
        _train(_small(config), frame)


def test_unknown_search_parameter_is_named(config: SeamlessConfig, workspace: Path) -> None:
    search = config.model.search.model_copy(update={"space": {"n_neighbours": [1, 2]}})
    bad = config.model_copy(update={"model": config.model.model_copy(update={"search": search})})
    with pytest.raises(SeamlessError, match=r"n_neighbours, which hist_gradient_boosting"):
        _train(bad, training_set(500))


@pytest.mark.parametrize(
    "estimator",
    ["logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting"],
)
def test_every_estimator_family_logs_and_loads(
    config: SeamlessConfig, workspace: Path, estimator: str
) -> None:
    import mlflow

    cfg = _small(config, estimator=estimator)
    if estimator in ("random_forest", "gradient_boosting"):
        cfg = _small(config, estimator=estimator, params={"n_estimators": 20})
    result, holdout = _train(cfg, training_set(1500))
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["seamless.data_sha256"] == "a" * 64
    assert run.data.params["estimator"] == estimator
    assert run.inputs.dataset_inputs, "the training data is recorded as an MLflow dataset input"
    model = mlflow.sklearn.load_model(result.model_uri)
    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    assert pyfunc.metadata.signature is not None
    decision, plots = evaluate(cfg, holdout, result.model_uri)
    assert 0.6 < decision.challenger_metrics["roc_auc"] <= 1.0
    assert model.predict_proba(
        holdout.head(3)[pyfunc.metadata.get_input_schema().input_names()]
    ).shape == (3, 2)
    assert plots["roc"][0] == (0.0, 0.0, 1.0)
    _requirements_cover_the_model(result.model_uri, model)


def _requirements_cover_the_model(model_uri: str, model: Any) -> None:
    """The logged requirements are pinned to what trained the model and name the package
    of every class the saved model holds (not whatever the training process imported)."""
    from importlib.metadata import packages_distributions, version

    import mlflow

    lines = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    pinned = dict(line.split("==") for line in lines)
    assert all(pinned[dist] == version(dist) for dist in pinned), pinned
    assert "pytest" not in pinned
    flavor = mlflow.models.get_model_info(model_uri).flavors["sklearn"]
    held = {t.split(".")[0] for t in flavor["skops_trusted_types"]}
    held |= {type(v).__module__.split(".")[0] for v in model.get_params(deep=True).values()}
    held -= {"builtins"}
    owners = packages_distributions()
    assert all(set(owners[m]) & pinned.keys() for m in held), (held, pinned)


def test_gate_policy() -> None:
    policy = PromotionConfig(metric="roc_auc", min_improvement=0.01, min_value=0.7)
    first = gate(policy, {"roc_auc": 0.8}, None, None)
    assert first.decision == "promote" and "first champion" in first.reason
    assert gate(policy, {"roc_auc": 0.65}, None, None).decision == "reject"
    small = gate(policy, {"roc_auc": 0.805}, {"roc_auc": 0.8}, "1")
    assert small.decision == "reject" and "0.8050" in small.reason and "0.8000" in small.reason
    assert gate(policy, {"roc_auc": 0.82}, {"roc_auc": 0.8}, "1").decision == "promote"
    lower = PromotionConfig(metric="log_loss", min_improvement=0.0)
    assert gate(lower, {"log_loss": 0.3}, {"log_loss": 0.4}, "1").decision == "promote"
    assert gate(lower, {"log_loss": 0.5}, {"log_loss": 0.4}, "1").decision == "reject"


def test_a_model_that_learned_nothing_is_never_promoted(
    config: SeamlessConfig, workspace: Path
) -> None:
    # Trees whose leaves need more rows than a fold holds cannot split: every row gets
    # the base rate, ROC AUC is exactly 0.5, which a 0.5 floor alone would let through.
    cfg = _small(config, params={"min_samples_leaf": 5000, "max_iter": 5})
    cfg = cfg.model_copy(update={"promotion": PromotionConfig(metric="roc_auc", min_value=0.5)})
    flat, holdout = _train(cfg, training_set(600, seed=3))
    decision, _ = evaluate(cfg, holdout, flat.model_uri)
    assert decision.decision == "reject"
    assert decision.challenger == 0.5
    assert f"every one of the {len(holdout)} holdout rows the same score" in decision.reason
    assert "learned nothing" in decision.reason


def test_champion_challenger_and_rollback_alias(config: SeamlessConfig, workspace: Path) -> None:
    cfg = _small(config, estimator="logistic_regression")
    cfg = cfg.model_copy(update={"promotion": PromotionConfig(metric="roc_auc", min_value=0.5)})
    name = cfg.model.name
    weak, holdout = _train(cfg, training_set(2000, seed=1, signal=0.3))
    first, _ = evaluate(cfg, holdout, weak.model_uri)
    assert first.decision == "promote" and first.champion is None
    reg1 = register(name, weak.model_uri, first.decision, {"seamless.data_sha256": "x"})
    deploy_local(name, reg1.version, workspace / "deployments")

    strong, holdout2 = _train(cfg, training_set(2000, seed=1, signal=1.5))
    second, _ = evaluate(cfg, holdout2, strong.model_uri)
    assert second.champion_version == reg1.version
    assert second.decision == "promote", second.reason
    reg2 = register(name, strong.model_uri, second.decision, {})
    assert reg2.previous_champion_version == reg1.version

    client = mlflow_client()
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == reg2.version
    assert str(client.get_model_version_by_alias(name, PREVIOUS_CHAMPION).version) == reg1.version

    # A worse challenger is registered as challenger only; the champion stays.
    third, _ = evaluate(cfg, holdout2, weak.model_uri)
    assert third.decision == "reject"
    reg3 = register(name, weak.model_uri, third.decision, {})
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == reg3.version
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == reg2.version
    assert reg3.champion_version == reg2.version

    with pytest.raises(SeamlessError, match=r"Refusing to deploy .* champion is v2"):
        deploy_local(name, reg3.version, workspace / "deployments")
    live = live_deployment(name, workspace / "deployments")
    assert live is not None and live["version"] == reg1.version
