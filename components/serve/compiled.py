"""The compiled predictor: the fitted scikit-learn pipeline run by ONNX Runtime.

scikit-learn spends milliseconds of Python per call on one row (DataFrame checks,
ColumnTransformer dispatch); ONNX Runtime runs the same graph in tens of microseconds.
The conversion (skl2onnx) runs in a child process, so the serving process never imports
skl2onnx/onnx (~45 MB of RSS) and a converter crash cannot take it down. The compiled
graph is used only when it reproduces scikit-learn's probabilities on sample rows to
`PARITY_TOL`; otherwise, or when anything fails, the plain model serves and the reason
is kept (`Predictor.detail`, shown in /readyz and as a metric label).

Rows are lists of feature values in the config's feature order (`None` = missing).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import SeamlessConfig
from components.train.training import feature_columns, model_input

log = logging.getLogger(__name__)
PARITY_TOL = 1e-5
CONVERT_TIMEOUT_S = 300.0
# scikit-learn's string imputers match NaN only, so a None category reaches the encoder
# as its own value. In the converted copy None becomes NONE_TOKEN (in the encoder's
# categories and in the inputs) and the imputers match NAN_TOKEN, which is never fed:
# the graph then treats None exactly as scikit-learn does.
NONE_TOKEN = "\x00seamless:none"
NAN_TOKEN = "\x00seamless:nan"

Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Predictor:
    """Positive-class probabilities for rows; `kind` is `onnx` or `sklearn`."""

    kind: str
    detail: str
    predict: Callable[[Rows], np.ndarray]


def rows_frame(config: SeamlessConfig, rows: Rows) -> pd.DataFrame:
    """The model's input frame for rows (what the sklearn pipeline was trained on)."""
    return model_input(config, pd.DataFrame(list(rows), columns=list(config.feature_types())))


def sklearn_predictor(model: Any, config: SeamlessConfig, detail: str) -> Predictor:
    def predict(rows: Rows) -> np.ndarray:
        return np.asarray(model.predict_proba(rows_frame(config, rows))[:, 1], dtype=float)

    return Predictor("sklearn", detail, predict)


def convert(model: Any, config: SeamlessConfig) -> bytes:
    """The ONNX graph of `model` (a fitted pipeline over the config's features)."""
    import copy

    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    numeric, categorical = feature_columns(config)
    work = copy.deepcopy(model)
    for step in _walk(work):
        strings = isinstance(step, SimpleImputer) and any(
            isinstance(v, str) for v in np.ravel(getattr(step, "statistics_", []))
        )
        if strings and _is_nan(step.missing_values):
            step.missing_values = NAN_TOKEN
        if isinstance(step, OneHotEncoder):
            step.categories_ = [
                np.array([NONE_TOKEN if v is None else v for v in cats], dtype=object)
                if cats.dtype == object
                else cats
                for cats in step.categories_
            ]
    # float32: ONNX Runtime's Imputer has no double kernel, and scikit-learn's tree
    # ensembles compare float32 inputs anyway; the parity check guards the rest.
    types = [(c, FloatTensorType([None, 1])) for c in numeric]
    types += [(c, StringTensorType([None, 1])) for c in categorical]
    est = work.steps[-1][1] if hasattr(work, "steps") else work
    onx = convert_sklearn(
        work,
        initial_types=types,
        options={id(est): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return bytes(onx.SerializeToString())


def _walk(obj: Any) -> list[Any]:
    """Every estimator inside pipelines and column transformers (depth first)."""
    out = [obj]
    for _, child in getattr(obj, "steps", []):
        out += _walk(child)
    for _, child, _ in getattr(obj, "transformers_", []):
        if not isinstance(child, str):
            out += _walk(child)
    return out


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def convert_in_child(model: Any, config: SeamlessConfig, timeout: float) -> bytes:
    """`convert` in a child process (see the module docstring): pickles in, ONNX out."""
    payload = pickle.dumps((model, config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "components.serve.compiled"],
        input=payload,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"skl2onnx conversion failed: {tail[0][:300]}")
    return done.stdout


class OnnxRunner:
    """Runs the converted graph on rows; built once per loaded model version."""

    def __init__(self, onnx_bytes: bytes, config: SeamlessConfig) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # One thread: requests already run concurrently; a per-call thread team only
        # spins on a shared 2-core machine (see docs/serving-benchmark.md).
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        inputs = {i.name: i.type for i in self.session.get_inputs()}
        names = list(config.feature_types())
        numeric, categorical = feature_columns(config)
        self._num = [(names.index(c), c) for c in numeric]
        self._cat = [(names.index(c), c) for c in categorical]
        self._dtype = (
            np.float64
            if inputs.get(numeric[0] if numeric else "") == "tensor(double)"
            else np.float32
        )
        outputs = [o.name for o in self.session.get_outputs()]
        self._proba = [outputs[-1]]  # label, probabilities: only the second is needed
        self._nan = float("nan")

    def __call__(self, rows: Rows) -> np.ndarray:
        n, nan = len(rows), self._nan
        feeds: dict[str, np.ndarray] = {}
        for j, name in self._num:
            col = [nan if (v := r[j]) is None else v for r in rows]
            feeds[name] = np.array(col, dtype=self._dtype).reshape(n, 1)
        for j, name in self._cat:
            col = [NONE_TOKEN if (v := r[j]) is None else str(v) for r in rows]
            feeds[name] = np.array(col, dtype=object).reshape(n, 1)
        proba = self.session.run(self._proba, feeds)[0]
        return np.asarray(proba[:, 1], dtype=float)


def parity_rows(config: SeamlessConfig, sample: pd.DataFrame | None) -> list[list[Any]]:
    """Rows to compare on: the sample, and copies with values missing, scaled and unseen."""
    names = list(config.feature_types())
    numeric, categorical = feature_columns(config)
    if sample is not None and len(sample) and set(names) <= set(sample.columns):
        base = sample[names].astype(object).where(sample[names].notna(), None)
        rows = [list(r) for r in base.itertuples(index=False)][:50]
    else:
        rows = [[1.0 if c in numeric else "a" for c in names]]
    out = [list(r) for r in rows]
    num_idx = [names.index(c) for c in numeric]
    cat_idx = [names.index(c) for c in categorical]
    for k, row in enumerate(rows):
        missing = list(row)
        for j in num_idx if k % 2 == 0 else cat_idx:
            missing[j] = None
        scaled = [
            (v * (0.5 + k % 3) if j in num_idx and v is not None else v) for j, v in enumerate(row)
        ]
        unseen = [("__unseen__" if j in cat_idx else v) for j, v in enumerate(row)]
        out += [missing, scaled, unseen]
    return out


def compile_model(
    model: Any,
    config: SeamlessConfig,
    sample: pd.DataFrame | None = None,
    *,
    converter: Callable[[Any, SeamlessConfig], bytes] | None = None,
) -> Predictor:
    """The ONNX predictor when it converts and matches scikit-learn, else the model itself.

    `converter` defaults to a child-process `convert` (tests pass `convert` directly).
    """
    convert_fn = converter or (lambda m, c: convert_in_child(m, c, CONVERT_TIMEOUT_S))
    try:
        runner = OnnxRunner(convert_fn(model, config), config)
        rows = parity_rows(config, sample)
        want = np.asarray(model.predict_proba(rows_frame(config, rows))[:, 1], dtype=float)
        got = runner(rows)
        diff = float(np.max(np.abs(want - got)))
    except Exception as exc:
        detail = f"ONNX conversion failed ({type(exc).__name__}: {str(exc)[:300]})"
        log.warning("Serving the plain scikit-learn model: %s.", detail)
        return sklearn_predictor(model, config, detail)
    if not diff <= PARITY_TOL:  # also catches NaN
        detail = f"ONNX parity failed: max |diff| {diff:.2e} > {PARITY_TOL:.0e} on {len(rows)} rows"
        log.warning("Serving the plain scikit-learn model: %s.", detail)
        return sklearn_predictor(model, config, detail)
    log.info("Serving the ONNX graph (max |diff| %.1e on %d rows).", diff, len(rows))
    return Predictor("onnx", f"parity max |diff| {diff:.1e} on {len(rows)} rows", runner)


def _child_main() -> None:
    """Child side of `convert_in_child`: pickled (model, config) on stdin, ONNX on stdout."""
    import warnings

    warnings.filterwarnings("ignore")
    model, config = pickle.loads(sys.stdin.buffer.read())  # our own parent's bytes
    sys.stdout.buffer.write(convert(model, config))


if __name__ == "__main__":
    _child_main()
