"""Benchmark: the model step of a prediction for tables whose models used not to compile
to ONNX, same models, same run.

Until 2026-12-07 two kinds of table fell back to the plain scikit-learn model in
serving (`components/serve/models/compiled.py`): a table with numeric features only
(the one-hot encoder, given no columns, stays unfitted) and a table whose column names
ONNX cannot hold ('mean radius (mm)', which skl2onnx renames). Both now compile. This
fits each estimator family on scikit-learn's bundled breast-cancer data (569 rows, 30
numeric features; no download), once with its own column names (numbers only) and once
with names made of spaces and brackets, and times per call:

- `sklearn`: the fallback those tables were served with (`sklearn_predictor`);
- `onnx`: the compiled predictor they get now (`compile_model`), checked for parity.

Reported: median milliseconds per call over `--rounds` bounded loops, for 1 and 100
rows a call.

Usage: python benchmarks/compiled_predictor.py [--rounds 5] [--seconds 0.5]
       [--out docs/serving-benchmark.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = ["logistic_regression", "hist_gradient_boosting", "random_forest"]
MAX_CALLS = 20_000
"""Bound on calls in one timing loop."""


def cancer_config(names: list[str], estimator: str) -> Any:
    """A one-table config over the breast-cancer columns `names` (all float)."""
    import yaml

    from components.common.config import parse_config

    raw = {
        "name": "cancer",
        "tables": {
            "cancer": {
                "source": {"kind": "file", "uri": "cancer.csv"},
                "columns": {**dict.fromkeys(names, "float"), "target": "int"},
            }
        },
        "labels": {"table": "cancer", "label_column": "target", "positive_class": 1},
        "features": {
            "service": "cancer_v1",
            "views": [{"name": "cells", "table": "cancer", "features": names}],
        },
        "model": {"name": "cancer", "estimator": estimator, "params": {}},
    }
    return parse_config(yaml.safe_dump(raw, sort_keys=False), origin="cancer.yaml")


def per_call_ms(predict: Any, rows: list[list[Any]], seconds: float) -> float:
    predict(rows)
    calls, start = 0, time.perf_counter()
    while calls < MAX_CALLS and time.perf_counter() - start < seconds:
        predict(rows)
        calls += 1
    return 1e3 * (time.perf_counter() - start) / calls


def measure(rounds: int, seconds: float) -> list[dict[str, Any]]:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from components.common.model_input import model_input
    from components.serve.models.compiled import compile_model, convert, sklearn_predictor
    from components.train.training import build_pipeline

    data = load_breast_cancer(as_frame=True).frame
    plain = [c.replace(" ", "_") for c in data.columns[:-1]]
    variants = {
        "numbers only": plain,
        "names ONNX cannot hold": [f"{c.replace('_', ' ')} (mm)" for c in plain],
    }
    out = []
    for variant, names in variants.items():
        frame = data.iloc[:, :-1].set_axis(names, axis=1)
        y = data["target"]
        rows = frame.astype(object).values.tolist()
        for estimator in FAMILIES:
            config = cancer_config(names, estimator)
            x = model_input(config, frame)
            pipe = build_pipeline(config)
            if estimator == "random_forest":
                pipe.set_params(model__n_estimators=100)
            pipe.fit(x, y)
            compiled = compile_model(pipe, config, x.head(20), converter=convert)
            fallback = sklearn_predictor(pipe, config, "fallback")
            assert compiled.kind == "onnx", compiled.detail
            gap = float(np.max(np.abs(compiled.predict(rows) - fallback.predict(rows))))
            for batch in (1, 100):
                part = rows[:batch]
                times: dict[str, list[float]] = {"sklearn": [], "onnx": []}
                for _ in range(rounds):  # alternate, so load drift hits both alike
                    times["sklearn"].append(per_call_ms(fallback.predict, part, seconds))
                    times["onnx"].append(per_call_ms(compiled.predict, part, seconds))
                sk, ox = (statistics.median(times[k]) for k in ("sklearn", "onnx"))
                out.append(
                    {
                        "variant": variant,
                        "estimator": estimator,
                        "batch": batch,
                        "sklearn_ms": sk,
                        "onnx_ms": ox,
                        "speedup": sk / ox,
                        "max_abs_diff": gap,
                    }
                )
                print(f"{variant:24} {estimator:24} {batch:>4} {sk:9.3f} {ox:8.3f} {sk / ox:7.0f}x")
    return out


def markdown(results: list[dict[str, Any]], rounds: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"### Tables that now compile to ONNX: model step per call ({stamp} UTC)",
        "",
        "`python benchmarks/compiled_predictor.py`: scikit-learn's breast-cancer data (569",
        "rows, 30 numeric features); `sklearn` is the fallback these tables were served with",
        "before 2026-12-07, `onnx` the compiled predictor they get now; median of "
        f"{rounds} alternating rounds.",
        "",
        "| table | estimator | rows/call | sklearn ms | onnx ms | speedup | max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['estimator']} | {r['batch']} | {r['sklearn_ms']:.3f} | "
            f"{r['onnx_ms']:.3f} | {r['speedup']:.0f}x | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per timing loop")
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()
    print(f"{'table':24} {'estimator':24} rows sklearn_ms  onnx_ms speedup")
    results = measure(args.rounds, args.seconds)
    text = markdown(results, args.rounds)
    if args.out:
        with args.out.open("a") as fh:
            fh.write("\n" + text)
    print(text)


if __name__ == "__main__":
    main()
