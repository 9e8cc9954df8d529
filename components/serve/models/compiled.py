"""The compiled predictor: the fitted scikit-learn pipeline run by ONNX Runtime.

scikit-learn spends milliseconds of Python per call on one row (DataFrame checks,
ColumnTransformer dispatch); ONNX Runtime runs the same graph in tens of microseconds.

A new model version is prepared in a child process (`prepare_in_child`): it loads the
model from MLflow, converts it with skl2onnx and compares ONNX Runtime's probabilities
with scikit-learn's on sample rows to `PARITY_TOL`. The serving process receives only the
graph plus those rows and scikit-learn's answers, checks its own runner on them again,
and so never imports scikit-learn, SciPy, skl2onnx or the pickled model (~150 MB of RSS;
docs/serving-benchmark.md), and a converter crash cannot take it down. When the graph
is unusable (no converter, parity failed) the serving process loads the plain model
itself and the reason is kept (`Predictor.detail`, shown in /readyz and as a metric label).
The last few prepared graphs are kept (`prepare`), so a rollback needs no child.

Rows are lists of feature values in the config's feature order (`None` = missing).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import resource
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from components.common.config import SeamlessConfig, feature_columns

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
PARITY_TOL = 1e-5
PREPARE_TIMEOUT_S = 300.0
# scikit-learn's string imputers match NaN only, so a None category reaches the encoder
# as its own value. In the converted copy None becomes NONE_TOKEN (in the encoder's
# categories and in the inputs) and the imputers match NAN_TOKEN, which is never fed:
# the graph then treats None exactly as scikit-learn does.
NONE_TOKEN = "\x00seamless:none"
NAN_TOKEN = "\x00seamless:nan"
# The graph's two inputs: every numeric feature as float32, every categorical as string,
# in the config's feature order.
NUMERIC_INPUT = "seamless_numeric"
CATEGORICAL_INPUT = "seamless_categorical"

Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Predictor:
    """Positive-class probabilities for rows; `kind` is `onnx` or `sklearn`."""

    kind: str
    detail: str
    predict: Callable[[Rows], np.ndarray]


@dataclass(frozen=True)
class Checked:
    """What the preparing child hands over: the graph (None: unusable, see `detail`), the
    rows it was checked on and scikit-learn's probabilities for them."""

    onnx: bytes | None
    detail: str
    rows: list[list[Any]]
    want: list[float]


def rows_frame(config: SeamlessConfig, rows: Rows) -> pd.DataFrame:
    """The model's input frame for rows (what the sklearn pipeline was trained on)."""
    import pandas as pd

    from components.common.model_input import model_input

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
    # skl2onnx picks the lowest opset the graph needs (11 for numbers only), and Split
    # takes its sizes as an attribute before opset 13, as an input from 13 on.
    opset = next(o.version for o in onx.opset_import if o.domain in ("", "ai.onnx"))
    # skl2onnx renames inputs to legal ONNX names ('Monthly Charges ($)' becomes
    # 'Monthly_Charges____'), keeping their order.
    named = [i.name for i in onx.graph.input]
    if len(named) != len(types):
        raise ValueError(f"the graph has {len(named)} inputs for {len(types)} features")
    _bundle_inputs(onx.graph, NUMERIC_INPUT, named[: len(numeric)], opset)
    _bundle_inputs(onx.graph, CATEGORICAL_INPUT, named[len(numeric) :], opset)
    return bytes(onx.SerializeToString())


def _bundle_inputs(graph: Any, name: str, columns: list[str], opset: int) -> None:
    """Replace the graph's one-column inputs `columns` by one [N, len(columns)] input
    `name`, split back into the columns inside the graph: a call then converts and
    validates two arrays instead of one per feature."""
    from onnx import helper, numpy_helper

    if not columns:
        return
    old = {i.name: i for i in graph.input}
    elem_type = old[columns[0]].type.tensor_type.elem_type
    keep = [i for i in graph.input if i.name not in columns]
    bundled = helper.make_tensor_value_info(name, elem_type, [None, len(columns)])
    node = f"{name}_split"
    ones = [1] * len(columns)
    if opset < 13:
        split = helper.make_node("Split", [name], list(columns), axis=1, split=ones, name=node)
    else:
        graph.initializer.append(numpy_helper.from_array(np.array(ones, np.int64), node))
        split = helper.make_node("Split", [name, node], list(columns), axis=1, name=node)
    del graph.input[:]
    graph.input.extend([bundled, *keep])
    graph.node.insert(0, split)


def _walk(obj: Any) -> list[Any]:
    """Every estimator inside pipelines and column transformers (depth first)."""
    out = [obj]
    for _, child in getattr(obj, "steps", []):
        out += _walk(child)
    for _, child, columns in getattr(obj, "transformers_", []):
        # A transformer given no columns (a table with no categories, say) is left
        # unfitted by scikit-learn and is not in the graph.
        if not isinstance(child, str) and _selects_any(columns):
            out += _walk(child)
    return out


def _selects_any(columns: Any) -> bool:
    """A column transformer's fitted selection picks at least one column (names,
    positions or a boolean mask)."""
    picked = np.atleast_1d(np.asarray(columns))
    return bool(picked.any()) if picked.dtype == bool else picked.size > 0


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


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
        names = list(config.feature_types())
        numeric, categorical = feature_columns(config)
        self._num = [names.index(c) for c in numeric]
        self._cat = [names.index(c) for c in categorical]
        outputs = [o.name for o in self.session.get_outputs()]
        self._proba = [outputs[-1]]  # label, probabilities: only the second is needed
        # The binding's run, not the wrapper's: the feeds are built here, always both
        # inputs with their own dtypes, so its per-call input checks are redundant.
        self._run = getattr(self.session, "_sess", self.session).run
        self._nan = float("nan")

    def __call__(self, rows: Rows) -> np.ndarray:
        nan, feeds = self._nan, {}
        if self._num:
            num = [[nan if (v := r[j]) is None else v for j in self._num] for r in rows]
            feeds[NUMERIC_INPUT] = np.array(num, dtype=np.float32).reshape(
                len(rows), len(self._num)
            )
        if self._cat:
            cat = [[NONE_TOKEN if (v := r[j]) is None else str(v) for j in self._cat] for r in rows]
            feeds[CATEGORICAL_INPUT] = np.array(cat, dtype=object).reshape(
                len(rows), len(self._cat)
            )
        proba = self._run(self._proba, feeds, None)[0]
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


def check_graph(
    model: Any,
    config: SeamlessConfig,
    sample: pd.DataFrame | None = None,
    converter: Callable[[Any, SeamlessConfig], bytes] = convert,
) -> Checked:
    """Convert `model` and compare the graph with scikit-learn on `parity_rows`."""
    rows = parity_rows(config, sample)
    want = np.asarray(model.predict_proba(rows_frame(config, rows))[:, 1], dtype=float)
    try:
        onnx = converter(model, config)
        diff = _max_diff(want, OnnxRunner(onnx, config)(rows))
    except Exception as exc:
        detail = f"ONNX conversion failed ({type(exc).__name__}: {str(exc)[:300]})"
        return Checked(None, detail, rows, want.tolist())
    if not diff <= PARITY_TOL:  # also catches NaN
        detail = f"ONNX parity failed: max |diff| {diff:.2e} > {PARITY_TOL:.0e} on {len(rows)} rows"
        return Checked(None, detail, rows, want.tolist())
    return Checked(onnx, f"parity max |diff| {diff:.1e} on {len(rows)} rows", rows, want.tolist())


def _max_diff(want: np.ndarray, got: np.ndarray) -> float:
    return float(np.max(np.abs(want - got)))


def onnx_predictor(checked: Checked, config: SeamlessConfig) -> Predictor | str:
    """The graph's predictor, checked here once more on the child's rows (this process
    feeds the graph with its own code); else the reason it cannot serve."""
    if checked.onnx is None:
        return checked.detail
    try:
        runner = OnnxRunner(checked.onnx, config)
        diff = _max_diff(np.asarray(checked.want, dtype=float), runner(checked.rows))
    except Exception as exc:
        return f"ONNX session failed ({type(exc).__name__}: {str(exc)[:300]})"
    if not diff <= PARITY_TOL:
        return (
            f"ONNX parity failed in the server: max |diff| {diff:.2e} on {len(checked.rows)} rows"
        )
    return Predictor("onnx", checked.detail, runner)


def choose_predictor(
    checked: Checked, config: SeamlessConfig, load_model: Callable[[], Any]
) -> tuple[Predictor, Any]:
    """(predictor, model) from a checked graph: the graph when it serves (model None),
    else the plain model from `load_model`, with the reason the graph does not serve."""
    result = onnx_predictor(checked, config)
    if not isinstance(result, str):
        log.info("Serving the ONNX graph (%s).", result.detail)
        return result, None
    log.warning("Serving the plain scikit-learn model: %s.", result)
    model = load_model()
    return sklearn_predictor(model, config, result), model


def compile_model(
    model: Any,
    config: SeamlessConfig,
    sample: pd.DataFrame | None = None,
    *,
    converter: Callable[[Any, SeamlessConfig], bytes] = convert,
) -> Predictor:
    """`choose_predictor` in one process, for a model in hand (what the serving process
    does with `prepare_in_child`'s result)."""
    checked = check_graph(model, config, sample, converter)
    return choose_predictor(checked, config, lambda: model)[0]


def prepare_version(name: str, version: str, config: SeamlessConfig) -> Checked:
    """Load one registered version from MLflow and check its graph (the child's work)."""
    from components.serve.models.model_store import load_input_example, load_version

    model = load_version(name, version)
    return check_graph(model, config, load_input_example(name, version))


def prepare_in_child(
    name: str, version: str, config: SeamlessConfig, timeout: float = PREPARE_TIMEOUT_S
) -> Checked:
    """`prepare_version` in a child process (see the module docstring).

    Raises RuntimeError with the child's last error line when the version cannot be
    loaded at all (missing or damaged artifacts, registry unreachable)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "components.serve.models.compiled"],
        input=pickle.dumps((name, version, config)),
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(lines[-1][:500] if lines else f"exit code {done.returncode}")
    checked: Checked = pickle.loads(done.stdout)  # our own child's bytes
    # The largest child so far: this process starts no children but these.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    seconds = time.perf_counter() - started
    cost = f"prepared by a child process in {seconds:.1f} s, peak RSS {peak_mib} MiB"
    return replace(checked, detail=f"{checked.detail}; {cost}")


# The graphs of the last few versions this process prepared, so a rollback (or a new app
# in the same process) swaps one back in without another child. Keyed by the version's
# identity in its registry (a version re-created under the same number is another key)
# and by the config it was checked against; a graph is a few hundred KB.
KEEP_PREPARED = 3
_prepared: OrderedDict[tuple[str, ...], Checked] = OrderedDict()
_prepared_lock = threading.Lock()


def _version_key(name: str, version: str, config: SeamlessConfig) -> tuple[str, ...]:
    import mlflow

    from components.common.tracking import mlflow_client

    mv = mlflow_client().get_model_version(name, version)
    config_digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()
    identity = (str(mv.creation_timestamp), str(mv.source), str(mv.run_id or ""))
    return (mlflow.get_registry_uri(), name, version, *identity, config_digest)


def prepare(name: str, version: str, config: SeamlessConfig) -> Checked:
    """`prepare_in_child`, or the graph this process prepared for the same registered
    version and config before (see `KEEP_PREPARED`)."""
    key = _version_key(name, version, config)
    with _prepared_lock:
        earlier = _prepared.get(key)
        if earlier is not None:
            _prepared.move_to_end(key)
            return replace(earlier, detail=f"{earlier.detail}; kept from an earlier load")
    checked = prepare_in_child(name, version, config)
    with _prepared_lock:
        _prepared[key] = checked
        while len(_prepared) > KEEP_PREPARED:
            _prepared.popitem(last=False)
    return checked


def _child_main() -> None:
    """Child side of `prepare_in_child`: pickled (name, version, config) on stdin, a
    pickled `Checked` on stdout; a failure is one line on stderr and exit code 1."""
    import warnings

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    name, version, config = pickle.loads(sys.stdin.buffer.read())  # our own parent's bytes
    # Whatever the libraries print goes to stderr: stdout carries the result only.
    result = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        checked = prepare_version(name, version, config)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr, flush=True)
        sys.exit(1)
    result.write(pickle.dumps(checked))
    result.close()


if __name__ == "__main__":
    # Run the imported module's copy, so the pickled `Checked` names its real module.
    from components.serve.models import compiled

    compiled._child_main()
