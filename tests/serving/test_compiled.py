"""The compiled (ONNX) predictor: parity with scikit-learn for every estimator family
the train stage offers, and the fallback to the plain model when conversion or parity
fails. No MLflow or Feast: pipelines are fitted here on synthetic rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from components.common.config import (
    SeamlessConfig,
    default_config_path,
    feature_columns,
    load_config,
)
from components.common.model_input import model_input
from components.serve.models.compiled import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    PARITY_TOL,
    Checked,
    check_graph,
    compile_model,
    convert,
    onnx_predictor,
    parity_rows,
    rows_frame,
)
from components.train.training import build_pipeline

pytestmark = pytest.mark.unit
FAMILIES = ["logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting"]


def _config(estimator: str) -> SeamlessConfig:
    base = load_config(default_config_path())
    model = base.model.model_copy(update={"estimator": estimator, "params": {}})
    return base.model_copy(update={"model": model})


def _data(config: SeamlessConfig, n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Rows of every feature kind, with missing values (None, as serving passes them)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for name, kind in config.feature_types().items():
        if kind in ("int", "float"):
            v = rng.normal(100.0, 40.0, n)
            v = v.round() if kind == "int" else v.round(3)
            v[rng.random(n) < 0.05] = np.nan
            cols[name] = v
        else:
            cols[name] = rng.choice(np.array(["a", "b", "c", None], dtype=object), n)
    frame = pd.DataFrame(cols)
    numeric, categorical = feature_columns(config)
    if numeric:
        y = (frame[numeric[0]].fillna(100) + rng.normal(0, 30, n) > 100).astype(int)
    else:  # only categories: the label leans on the first one
        y = ((frame[categorical[0]] == "a") ^ (rng.random(n) < 0.2)).astype(int)
    return model_input(config, frame), y


def _fitted(estimator: str) -> tuple[SeamlessConfig, Pipeline, pd.DataFrame]:
    config = _config(estimator)
    x, y = _data(config)
    pipe = build_pipeline(config)
    if estimator == "random_forest":
        pipe.set_params(model__n_estimators=100)
    pipe.fit(x, y)
    return config, pipe, x


@pytest.mark.parametrize("estimator", FAMILIES)
def test_onnx_matches_sklearn_for_every_estimator_family(estimator: str) -> None:
    config, pipe, x = _fitted(estimator)
    predictor = compile_model(pipe, config, x.head(20), converter=convert)
    assert predictor.kind == "onnx", predictor.detail
    # Two inputs whatever the feature count: one numeric matrix, one string matrix.
    inputs = [i.name for i in predictor.predict.session.get_inputs()]  # type: ignore[attr-defined]
    assert sorted(inputs) == sorted([NUMERIC_INPUT, CATEGORICAL_INPUT])
    # Fresh rows (not the parity sample), with missing and unseen values mixed in.
    fresh, _ = _data(config, n=300, seed=7)
    rows = parity_rows(config, fresh.head(100)) + rows_frame_rows(config, fresh)
    want = pipe.predict_proba(rows_frame(config, rows))[:, 1]
    got = predictor.predict(rows)
    assert np.max(np.abs(want - got)) <= PARITY_TOL


def rows_frame_rows(config: SeamlessConfig, frame: pd.DataFrame) -> list[list[object]]:
    part = frame[list(config.feature_types())]
    return part.astype(object).where(part.notna(), None).values.tolist()


def test_the_server_rechecks_the_graph_on_the_childs_rows() -> None:
    # The serving process gets the graph with scikit-learn's answers on the check rows
    # (compiled.prepare_in_child) and runs them through its own runner before serving.
    config, pipe, x = _fitted("logistic_regression")
    checked = check_graph(pipe, config, x.head(5))
    assert checked.onnx is not None and "parity" in checked.detail
    predictor = onnx_predictor(checked, config)
    assert not isinstance(predictor, str) and predictor.kind == "onnx"
    off = Checked(checked.onnx, checked.detail, checked.rows, [w + 0.01 for w in checked.want])
    reason = onnx_predictor(off, config)
    assert isinstance(reason, str) and "parity failed in the server" in reason


def test_a_step_skl2onnx_cannot_convert_falls_back_to_sklearn() -> None:
    config, pipe, x = _fitted("logistic_regression")
    # A custom function inside the pipeline: skl2onnx has no converter for it.
    odd = Pipeline(
        [("preprocess", pipe.steps[0][1]), ("log", FunctionTransformer(np.tanh)),
         ("model", pipe.steps[-1][1])]
    )  # fmt: skip
    y = (x.iloc[:, 0].fillna(0) > 100).astype(int)
    odd.fit(x, y)
    predictor = compile_model(odd, config, x.head(5), converter=convert)
    assert predictor.kind == "sklearn"
    assert "conversion failed" in predictor.detail
    rows = rows_frame_rows(config, x.head(10))
    assert np.array_equal(predictor.predict(rows), odd.predict_proba(x.head(10))[:, 1])
    checked = check_graph(odd, config, x.head(5))
    assert checked.onnx is None and onnx_predictor(checked, config) == checked.detail


def test_a_graph_that_disagrees_with_sklearn_is_not_used() -> None:
    config, pipe, x = _fitted("logistic_regression")
    _, other, _ = _fitted("hist_gradient_boosting")  # a different model's graph
    predictor = compile_model(pipe, config, x.head(5), converter=lambda m, c: convert(other, c))
    assert predictor.kind == "sklearn"
    assert "parity failed" in predictor.detail


def _only(config: SeamlessConfig, kinds: tuple[str, ...]) -> SeamlessConfig:
    """The config with its feature views cut to features of `kinds`."""
    types = config.feature_types()
    views = [
        view.model_copy(update={"features": [f for f in view.features if types[f] in kinds]})
        for view in config.features.views
    ]
    views = [v for v in views if v.features]
    features = config.features.model_copy(update={"views": views})
    return config.model_copy(update={"features": features})


@pytest.mark.parametrize("estimator", FAMILIES)
@pytest.mark.parametrize("kinds", [("int", "float"), ("string", "bool")], ids=["numeric", "text"])
def test_a_model_with_one_kind_of_feature_compiles(estimator: str, kinds: tuple[str, ...]) -> None:
    # Many tables have only numbers (or only categories): the transformer for the other
    # kind then has no columns, and scikit-learn leaves it unfitted.
    config = _only(_config(estimator), kinds)
    numeric, categorical = feature_columns(config)
    assert (numeric == []) != (categorical == [])
    x, y = _data(config)
    pipe = build_pipeline(config)
    pipe.fit(x, y)
    predictor = compile_model(pipe, config, x.head(20), converter=convert)
    assert predictor.kind == "onnx", predictor.detail
    fresh, _ = _data(config, n=200, seed=3)
    rows = rows_frame_rows(config, fresh)
    want = pipe.predict_proba(rows_frame(config, rows))[:, 1]
    assert np.max(np.abs(want - predictor.predict(rows))) <= PARITY_TOL


def _renamed(config: SeamlessConfig, suffix: str) -> SeamlessConfig:
    """The config with `suffix` appended to every feature's name."""
    new = {f: f + suffix for f in config.feature_types()}
    tables = {
        name: table.model_copy(
            update={"columns": {new.get(c, c): kind for c, kind in table.columns.items()}}
        )
        for name, table in config.tables.items()
    }
    views = [
        v.model_copy(update={"features": [new[f] for f in v.features]})
        for v in config.features.views
    ]
    features = config.features.model_copy(update={"views": views})
    return config.model_copy(update={"tables": tables, "features": features})


def test_feature_names_onnx_cannot_hold_still_compile() -> None:
    # CSV headers such as 'Monthly Charges ($)': skl2onnx renames such inputs.
    config = _renamed(_config("hist_gradient_boosting"), " ($).x-é")
    assert all(" ($)" in name for name in config.feature_types())
    x, y = _data(config)
    pipe = build_pipeline(config).fit(x, y)
    predictor = compile_model(pipe, config, x.head(20), converter=convert)
    assert predictor.kind == "onnx", predictor.detail
    rows = rows_frame_rows(config, _data(config, n=200, seed=5)[0])
    want = pipe.predict_proba(rows_frame(config, rows))[:, 1]
    assert np.max(np.abs(want - predictor.predict(rows))) <= PARITY_TOL


def test_an_empty_column_selection_is_told_from_position_zero() -> None:
    from components.serve.models.compiled import _selects_any

    assert not _selects_any([]) and not _selects_any([False, False])
    assert _selects_any([0]) and _selects_any([""]) and _selects_any([False, True])
