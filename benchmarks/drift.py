"""Benchmark: drift of a 1,000,000-row x 20-feature window, three ways in one run.

- **Seamless**: `components.monitor.drift.compare` against a reference profile built by
  `components.common.reference_profile.build_profile` (PSI over the profile's quantile bins, KS
  against its stored sample, missing-rate and range checks), with its default two
  threads, and again with one thread;
- **plain numpy/scipy**: per feature `np.quantile` of the reference column for the bin
  edges, `np.histogram` of both sides for PSI, `scipy.stats.ks_2samp(window, sample)`
  against the same stored sample;
- **Evidently 0.7** `DataDriftPreset` on the same reference and window rows, run by the
  Python of a separate venv (`--evidently-python`; Evidently needs pandas < 3 and is no
  project dependency), skipped when that venv is missing.

Each method runs in its own subprocess, so its peak RSS (VmHWM, polled by the parent,
and the worker's own ru_maxrss) is its own: data loading from Parquet included, the
data generation of the parent excluded. Wall time is the drift computation only (the
Parquet read is reported separately). The KS statistics and p-values of Seamless and of
ks_2samp are compared value by value.

Usage: python benchmarks/drift.py [--rows 1000000] [--reference-rows 200000]
       [--features 20] [--evidently-python /tmp/evvenv/bin/python]
       [--evidently-timeout 200] [--out docs/drift-benchmark.md]
Prints a JSON summary and appends a section to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 1.5
GOAL_MIB = 600
GOAL_RATIO = 50.0

# ------------------------------------------------------------------ workers
# Each runs in its own process (`drift.py _worker <method> <dir>`) and prints one JSON
# line. They import only what their method needs: the Evidently one runs in another venv.


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _read(path: Path) -> Any:
    """A Parquet file as a DataFrame, one column at a time into one preallocated block:
    `pd.read_parquet` holds the Arrow table and the frame at once (~350 MB more peak for
    160 MB of data), which would measure the reader, not the drift computation."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    block = np.empty((len(names), pf.metadata.num_rows))
    for i, name in enumerate(names):
        block[i] = pf.read(columns=[name]).column(0).to_numpy()
    return pd.DataFrame(block.T, columns=names, copy=False)


def _worker_seamless(data: Path, threads: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))

    from components.common.monitoring_config import MonitoringConfig
    from components.monitor import drift

    t0 = time.perf_counter()
    window = _read(data / "current.parquet")
    profile = json.loads((data / "profile.json").read_text())
    load = time.perf_counter() - t0
    rss_loaded = _rss_mib()
    drift.DRIFT_THREADS = threads
    cfg = MonitoringConfig()
    walls, cpus = [], []
    result = None
    for _ in range(3):  # the first run is cold (thread pool, page faults): keep them all
        t0, c0 = time.perf_counter(), time.process_time()
        result = drift.compare(profile, window, cfg)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    assert result is not None
    return {
        "load_s": load,
        "walls_s": walls,
        "cpu_s": cpus,
        "rss_loaded_mib": rss_loaded,
        "status": result.status,
        "drifted": result.by_status(drift.DRIFT),
        "features": {
            f.feature: {"psi": f.psi, "ks": f.statistic, "pvalue": f.pvalue}
            for f in result.features
        },
    }


def _worker_baseline(data: Path) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    t0 = time.perf_counter()
    window = _read(data / "current.parquet")
    reference = _read(data / "reference.parquet")
    profile = json.loads((data / "profile.json").read_text())
    load = time.perf_counter() - t0
    rss_loaded = _rss_mib()
    features: dict[str, Any] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for name in window.columns:
        ref = reference[name].dropna().to_numpy()
        cur = window[name].dropna().to_numpy()
        sample = np.asarray(profile["features"][name]["sample"])
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
        bins = np.concatenate([[-np.inf], edges, [np.inf]])
        e = np.maximum(np.histogram(ref, bins)[0] / len(ref), 1e-4)
        a = (np.histogram(cur, bins)[0] + 0.5) / (len(cur) + 0.5 * (len(bins) - 1))
        ks = stats.ks_2samp(cur, sample)
        features[name] = {
            "psi": float(np.sum((a - e / e.sum()) * np.log(a / (e / e.sum())))),
            "ks": float(ks.statistic),
            "pvalue": float(ks.pvalue),
        }
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "load_s": load,
        "walls_s": [wall],
        "cpu_s": [cpu],
        "rss_loaded_mib": rss_loaded,
        "features": features,
    }


def _worker_evidently(data: Path) -> dict[str, Any]:
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    window = _read(data / "current.parquet")
    reference = _read(data / "reference.parquet")
    load = time.perf_counter() - t0
    rss_loaded = _rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    definition = DataDefinition(numerical_columns=list(window.columns))
    cur = Dataset.from_pandas(window, data_definition=definition)
    ref = Dataset.from_pandas(reference, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = snapshot.dict()
    drifted = None
    for metric in summary.get("metrics", []):
        value = metric.get("value")
        if "DriftedColumnsCount" in str(metric.get("metric_name", "")) and isinstance(value, dict):
            drifted = value.get("count")
    return {
        "version": evidently.__version__,
        "load_s": load,
        "walls_s": [wall],
        "cpu_s": [cpu],
        "rss_loaded_mib": rss_loaded,
        "drifted_count": drifted,
    }


def worker(method: str, data: Path) -> None:
    if method == "seamless":
        out = _worker_seamless(data, threads=2)
    elif method == "seamless-1thread":
        out = _worker_seamless(data, threads=1)
    elif method == "baseline":
        out = _worker_baseline(data)
    elif method == "evidently":
        out = _worker_evidently(data)
    else:
        raise SystemExit(f"unknown method {method}")
    out["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


# ------------------------------------------------------------------ parent


def make_data(
    data: Path, rows: int, reference_rows: int, features: int
) -> tuple[list[str], list[str]]:
    """Reference and window Parquet files and the reference profile; names of the
    features whose window distribution was shifted, and of those tied at a bin edge."""
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from components.common.reference_profile import build_profile

    def draw(rng: np.random.Generator, j: int, n: int, shift: float) -> np.ndarray:
        kind = j % 10
        if kind == 0:
            x = rng.normal(50 + 10 * shift, 10, n)
        elif kind == 1:
            x = np.round(rng.lognormal(8 + shift, 0.6, n), 2)
        elif kind == 2:
            x = rng.exponential(3 * (1 + shift), n)
        elif kind == 3:
            x = rng.poisson(4 + 4 * shift, n).astype(float)  # integer: tied values
        elif kind == 4:
            x = rng.uniform(0, 1 + shift, n)
        elif kind == 5:
            x = rng.gamma(2.0, 3.5 * (1 + shift), n)
        elif kind == 6:
            x = np.clip(np.rint(700 + (1 + shift) * rng.normal(0, 60, n)), 300, 850)
        elif kind == 7:
            x = rng.beta(2, 5 + 5 * shift, n)
        elif kind == 8:
            x = rng.standard_t(5, n) + shift
        else:  # mixture with a point mass at 0
            x = np.where(rng.random(n) < 0.2 + shift, 0.0, np.round(rng.lognormal(5.7, 0.8, n), 2))
        if j % 7 == 1:  # a few missing values
            x[rng.random(n) < 0.02 + 0.1 * shift] = np.nan
        return x

    shifted = {j for j in range(features) if j % 4 == 3}
    rng = np.random.default_rng(0)
    names = [f"f{j:02d}" for j in range(features)]
    reference = pd.DataFrame({n: draw(rng, j, reference_rows, 0.0) for j, n in enumerate(names)})
    current = pd.DataFrame(
        {n: draw(rng, j, rows, 0.3 if j in shifted else 0.0) for j, n in enumerate(names)}
    )
    reference.to_parquet(data / "reference.parquet")
    current.to_parquet(data / "current.parquet")
    profile = build_profile(reference, names, [])
    (data / "profile.json").write_text(json.dumps(profile))
    # Features with values equal to a bin edge: there the two bin conventions differ.
    tied = [
        n
        for n in names
        if np.isin(profile["features"][n]["bin_edges"], current[n].to_numpy()).any()
        or np.isin(profile["features"][n]["bin_edges"], reference[n].to_numpy()).any()
    ]
    return [names[j] for j in sorted(shifted)], tied


def run_worker(python: str, method: str, data: Path, timeout: float) -> dict[str, Any]:
    """Run one worker; its peak RSS from /proc (VmHWM) even when it times out."""
    cmd = [python, str(Path(__file__).resolve()), "_worker", method, str(data)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hwm = 0.0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]) / 1024)
        except OSError:
            pass
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.wait()
            return {"timeout": True, "elapsed_s": time.perf_counter() - t0, "hwm_mib": hwm}
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["hwm_mib"] = max(hwm, result["ru_maxrss_mib"])
    result["elapsed_s"] = time.perf_counter() - t0
    return result


def best(r: dict[str, Any]) -> float:
    return float(min(r["walls_s"]))


def compare_stats(a: dict[str, Any], b: dict[str, Any], integer: list[str]) -> dict[str, float]:
    fa, fb = a["features"], b["features"]
    out = {key: max(abs(fa[n][key] - fb[n][key]) for n in fa) for key in ("ks", "pvalue")}
    out["psi"] = max(abs(fa[n]["psi"] - fb[n]["psi"]) for n in fa if n not in integer)
    out["psi_integer"] = max(
        (abs(fa[n]["psi"] - fb[n]["psi"]) for n in integer), default=float("nan")
    )
    return out


def markdown(summary: dict[str, Any]) -> str:
    s = summary
    sm, one, base, ev = s["seamless"], s["seamless_1thread"], s["baseline"], s["evidently"]
    lines = [
        f"\n### Drift, {s['rows']:,} rows x {s['features']} features, {s['cpus']} CPUs "
        f"({s['date']})\n",
        f"Reference {s['reference_rows']:,} rows (profile: 10 quantile bins, 5,000-value "
        f"sample); shifted features: {', '.join(s['shifted'])}. Wall time = the drift "
        "computation (best of 3 for Seamless; each run listed), peak RSS = the method's own "
        "process, Parquet read included.\n",
        f"1-minute load average at start / end: {s['loadavg_1min'][0]:.1f} / "
        f"{s['loadavg_1min'][1]:.1f} (other jobs on the "
        "machine slow every method; CPU seconds are less sensitive to them).\n",
        "| method | wall (s) | CPU (s) | peak RSS (MiB) | RSS after load (MiB) "
        "| wall vs Seamless |",
        "|---|---|---|---|---|---|",
        f"| Seamless `drift.compare`, 2 threads | **{best(sm):.3f}** "
        f"({', '.join(f'{w:.3f}' for w in sm['walls_s'])}) | {min(sm['cpu_s']):.3f} | "
        f"**{sm['hwm_mib']:.0f}** | {sm['rss_loaded_mib']:.0f} | 1x |",
        f"| Seamless, 1 thread | {best(one):.3f} | {min(one['cpu_s']):.3f} | "
        f"{one['hwm_mib']:.0f} | {one['rss_loaded_mib']:.0f} | {best(one) / best(sm):.1f}x |",
        f"| numpy/scipy: `np.quantile` + `np.histogram` + `ks_2samp` | {best(base):.3f} | "
        f"{base['cpu_s'][0]:.3f} | {base['hwm_mib']:.0f} | {base['rss_loaded_mib']:.0f} | "
        f"{best(base) / best(sm):.1f}x |",
    ]
    if ev.get("walls_s"):
        lines.append(
            f"| Evidently {ev['version']} `DataDriftPreset` | {best(ev):.1f} | "
            f"{ev['cpu_s'][0]:.1f} | {ev['hwm_mib']:.0f} | {ev['rss_loaded_mib']:.0f} | "
            f"{best(ev) / best(sm):.0f}x |"
        )
    elif ev.get("timeout"):
        lines.append(
            f"| Evidently `DataDriftPreset` | > {ev['elapsed_s']:.0f} (stopped) | - | "
            f">= {ev['hwm_mib']:.0f} | - | > {ev['elapsed_s'] / best(sm):.0f}x |"
        )
    else:
        lines.append(
            f"| Evidently `DataDriftPreset` | not run: {ev.get('skipped') or ev} | | | | |"
        )
    d = s["seamless_vs_ks_2samp"]
    lines += [
        "",
        f"- Seamless vs `scipy.stats.ks_2samp`, all features: max |statistic diff| "
        f"{d['ks']:.3g}, max |p-value diff| {d['pvalue']:.3g} (goal <= 1e-9).",
        f"- PSI, Seamless vs the `np.histogram` baseline: max |diff| {d['psi']:.3g} on the "
        f"features without values at a bin edge, {d['psi_integer']:.3g} on those with "
        f"({', '.join(s['integer_features'])}): the profile's bins are (a, b], "
        "np.histogram's [a, b), so values equal to an edge fall in different bins.",
        f"- Drift verdict: `{sm['status']}`, drifted features: {', '.join(sm['drifted'])}"
        + (
            f"; Evidently flags {ev['drifted_count']} drifted columns."
            if ev.get("drifted_count") is not None
            else "."
        ),
        f"- Goals: <= {GOAL_SECONDS} s: **{'met' if best(sm) <= GOAL_SECONDS else 'missed'}**; "
        f"<= {GOAL_MIB} MB: **{'met' if sm['hwm_mib'] * 1.048576 <= GOAL_MIB else 'missed'}**"
        f" ({sm['hwm_mib'] * 1.048576:.0f} MB); statistics to 1e-9: "
        f"**{'met' if max(d['ks'], d['pvalue']) <= 1e-9 else 'missed'}**"
        + (
            f"; >= {GOAL_RATIO:.0f}x faster than Evidently: "
            f"**{'met' if s['evidently_ratio'] >= GOAL_RATIO else 'missed'}** "
            f"({s['evidently_ratio']:.0f}x{' or more' if ev.get('timeout') else ''})"
            if s.get("evidently_ratio")
            else "; Evidently ratio: not measured"
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--evidently-python", default="/tmp/evvenv/bin/python")
    parser.add_argument("--evidently-timeout", type=float, default=200.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "drift-benchmark.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="seamless-drift-bench-", dir="/tmp") as tmp:
        data = Path(tmp)
        load_start = os.getloadavg()[0]
        t0 = time.perf_counter()
        shifted, integer = make_data(data, args.rows, args.reference_rows, args.features)
        print(f"data: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        runs: dict[str, Any] = {}
        for method in ("seamless", "seamless-1thread", "baseline"):
            runs[method] = run_worker(sys.executable, method, data, timeout=120)
            if "walls_s" not in runs[method]:
                raise SystemExit(f"{method} failed: {runs[method]}")
            print(f"{method}: {runs[method]['walls_s']}", file=sys.stderr)
        if Path(args.evidently_python).exists():
            runs["evidently"] = run_worker(
                args.evidently_python, "evidently", data, timeout=args.evidently_timeout
            )
        else:
            runs["evidently"] = {"skipped": f"no {args.evidently_python}"}
        print(f"evidently: {runs['evidently'].get('walls_s')}", file=sys.stderr)

    ev = runs["evidently"]
    ratio = None
    if ev.get("walls_s"):
        ratio = best(ev) / best(runs["seamless"])
    elif ev.get("timeout"):
        ratio = ev["elapsed_s"] / best(runs["seamless"])
    summary = {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "rows": args.rows,
        "reference_rows": args.reference_rows,
        "features": args.features,
        "cpus": os.cpu_count(),
        "shifted": shifted,
        "seamless": runs["seamless"],
        "seamless_1thread": runs["seamless-1thread"],
        "baseline": runs["baseline"],
        "evidently": ev,
        "evidently_ratio": ratio,
        "integer_features": integer,
        "loadavg_1min": [load_start, os.getloadavg()[0]],
        "seamless_vs_ks_2samp": compare_stats(runs["seamless"], runs["baseline"], integer),
    }
    if not args.out.exists():
        args.out.write_text(
            "# Drift benchmark\n\nRecorded by `benchmarks/drift.py` (see its docstring).\n",
            encoding="utf-8",
        )
    with args.out.open("a", encoding="utf-8") as fh:
        fh.write(markdown(summary))
    for r in runs.values():
        r.pop("features", None)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_worker":
        worker(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
