"""Peak memory of one pushed-events log operation, measured in a fresh process.

`python -m tests.stream.peak compact|read <feast repo> <view> [module]` prints JSON:
the Python heap's peak during the call (tracemalloc: Python objects and numpy arrays),
Arrow's memory pool peak (pyarrow's buffers, which tracemalloc does not see) and their
sum, an upper bound of what the call held at once. A fresh process per measurement:
Arrow's peak cannot be reset, and nothing else has used the pool before the call.
`module` (default components.stream.compaction for `compact`, components.stream.pushed
for `read`) names the module whose `compact` or `read_pushed` runs, so an earlier
version can be measured on the same log.
"""

from __future__ import annotations

import importlib
import json
import sys
import tracemalloc
from pathlib import Path

DEFAULT_MODULE = {"compact": "components.stream.compaction", "read": "components.stream.pushed"}


def main(mode: str, repo: str, view: str, module: str = "") -> None:
    import pyarrow as pa

    code = importlib.import_module(module or DEFAULT_MODULE[mode])
    pool = pa.default_memory_pool()
    arrow_before = pool.max_memory()
    tracemalloc.start()
    if mode == "compact":
        done = code.compact(Path(repo), view)
        extra = {"rows": done.rows, "held_rows": getattr(done, "held_rows", None)}
    else:
        frame = code.read_pushed(Path(repo), view)
        extra = {"rows": 0 if frame is None else len(frame)}
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrow_peak = pool.max_memory()
    out = {"python_peak": python_peak, "arrow_peak": arrow_peak, "arrow_before": arrow_before}
    out["peak"] = python_peak + arrow_peak
    print(json.dumps({**out, **extra}))


if __name__ == "__main__":
    main(*sys.argv[1:])
