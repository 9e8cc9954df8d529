"""Benchmark: one online prediction (entity id -> online features -> score), same run.

Side by side, on one machine, with one model (the `champion` in the workspace's MLflow
store) and one online store (the workspace's Feast SQLite store):

- **Seamless**: `seamless serve`, one `POST /v1/predict {"entity_ids": [id]}`
  (lookup, scoring, prediction log with fsync, bearer token);
- **Feast + MLflow**: what a user would otherwise deploy: `feast serve` (Feast's feature
  server) and `mlflow models serve` (MLflow's scoring server), chained by the client:
  `POST /get-online-features`, unknown-entity check, `POST /invocations`.

Each is run with its defaults, and tuned:
- Seamless tuned: `--log-level warning` (no uvicorn access log) and `OMP_NUM_THREADS=1`;
- Feast tuned: `--max-requests 0 --no-access-log` (no worker restart every ~1,000 requests);
- MLflow tuned: `UVICORN_ACCESS_LOG=false` and `OMP_NUM_THREADS=1` in its environment:
  `mlflow models serve` runs `uvicorn ... mlflow.pyfunc.scoring_server.app:app` and has
  no flag for the access log, but the uvicorn CLI reads `UVICORN_<OPTION>` variables.
`OMP_NUM_THREADS=1` for both model servers: HistGradientBoosting predicts with an OpenMP
team per calling thread; for one row it gains nothing, and when the CPUs are busy its
spin-waiting threads were measured here burning 60-300 ms of CPU per prediction.

Load comes from a separate client process (threads, one keep-alive `http.client`
connection per server per thread) on 127.0.0.1, for `--seconds` at each fixed concurrency.
All servers run at once and are measured in short slices interleaved across the
configurations (rotated order each round): the build machines are shared, and a burst
of someone else's load then lands on every configuration rather than on one.
Recorded: predictions/s, latency p50/p95/p99, errors, and CPU seconds per prediction of
the server process trees (utime+stime+cutime+cstime from /proc/<pid>/stat: a gunicorn
worker restarted mid-run is counted through its parent) and of the client.

Usage: python benchmarks/serving.py [--seconds 20] [--concurrency 1 8] [--rows 20000]
       [--out docs/serving-benchmark.md] [--plot docs/serving-benchmark.png]
Prints a JSON summary; appends a section to --out and draws --plot.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "bench-token-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CHECK_IDS = 20  # ids scored through every configuration: the scores must agree

# ---------------------------------------------------------------- load client
# Runs in its own process (`serving.py _client '<json>'`): only the standard library, so
# it starts fast and its CPU use is its own.


def _post(conn: http.client.HTTPConnection, path: str, body: dict, headers: dict) -> Any:
    conn.request("POST", path, json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"http_{resp.status}")
    return json.loads(data)


class Target:
    """One prediction through a configuration; returns the positive-class score."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.conns: dict[int, http.client.HTTPConnection] = {}

    def conn(self, port: int) -> http.client.HTTPConnection:
        if port not in self.conns:
            self.conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        return self.conns[port]

    def reset(self) -> None:
        """After an error: drop the connections (the server may have closed them)."""
        for c in self.conns.values():
            c.close()
        self.conns.clear()

    def predict(self, entity_id: int) -> float:
        s = self.spec
        json_ct = {"Content-Type": "application/json"}
        if s["kind"] == "seamless":
            out = _post(
                self.conn(s["port"]),
                "/v1/predict",
                {"entity_ids": [entity_id]},
                {**json_ct, "Authorization": f"Bearer {TOKEN}"},
            )
            return float(out["predictions"][0]["score"])
        # The glue a user writes: features from Feast, unknown entities caught, then MLflow.
        feats = _post(
            self.conn(s["feast_port"]),
            "/get-online-features",
            {"feature_service": s["feature_service"], "entities": {s["key"]: [entity_id]}},
            json_ct,
        )
        names = feats["metadata"]["feature_names"]
        columns, row, present = [], [], False
        for name, col in zip(names, feats["results"], strict=True):
            if name == s["key"]:
                continue
            columns.append(name)
            row.append(col["values"][0])
            present = present or col["statuses"][0] == "PRESENT"
        if not present:
            raise RuntimeError("unknown_entity")
        out = _post(
            self.conn(s["mlflow_port"]),
            "/invocations",
            {"dataframe_split": {"columns": columns, "data": [row]}},
            json_ct,
        )
        return float(out["predictions"][0][1])  # predict_proba: [p0, p1]


def run_client(spec: dict) -> dict:
    ids: list[int] = spec["ids"]
    check = {str(i): Target(spec).predict(i) for i in ids[:CHECK_IDS]} if spec["check"] else {}
    deadline_s = spec["seconds"]
    lat: list[list[float]] = [[] for _ in range(spec["concurrency"])]
    errors: list[Counter[str]] = [Counter() for _ in range(spec["concurrency"])]
    barrier = threading.Barrier(spec["concurrency"] + 1)

    def worker(w: int) -> None:
        target = Target(spec)
        rng = random.Random(w)
        barrier.wait()
        end = time.perf_counter() + deadline_s
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            try:
                target.predict(rng.choice(ids))
                lat[w].append(time.perf_counter() - t0)
            except Exception as exc:  # counted, never retried: a user would see it
                msg = str(exc)
                errors[w][msg if msg.startswith(("http_", "unknown")) else type(exc).__name__] += 1
                target.reset()
        target.reset()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(spec["concurrency"])]
    for t in threads:
        t.start()
    cpu0, t_start = os.times(), time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    cpu1 = os.times()
    return {
        "lat_ms": [round(x * 1000, 3) for part in lat for x in part],
        "errors": dict(sum(errors, Counter())),
        "wall_s": wall,
        "client_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "check": check,
    }


def stats(slices: list[dict], server_cpu_s: float) -> dict:
    """Throughput, latency percentiles (nearest rank) and CPU per prediction over slices."""
    lat = sorted(x for sl in slices for x in sl["lat_ms"])
    n, wall = len(lat), sum(sl["wall_s"] for sl in slices)
    errors: Counter[str] = Counter()
    for sl in slices:
        errors.update(sl["errors"])

    def pct(q: float) -> float | None:
        return round(lat[min(n - 1, int(q * n))], 2) if n else None

    per = max(n, 1)
    client_cpu = sum(sl["client_cpu_s"] for sl in slices)
    return {
        "predictions": n,
        "errors": dict(errors),
        "wall_s": round(wall, 1),
        "throughput": round(n / wall, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 1) if n else None,
        "server_cpu_s": round(server_cpu_s, 2),
        "server_cpu_ms_per_pred": round(server_cpu_s / per * 1000, 3),
        "client_cpu_ms_per_pred": round(client_cpu / per * 1000, 3),
    }


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, cpu seconds incl. reaped children) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
        ppid = int(fields[1])
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        table[int(entry)] = (ppid, ticks / CLK_TCK)
    return table


def tree(root: int, table: dict[int, tuple[int, float]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo += [p for p, (pp, _) in table.items() if pp == pid]
    return out


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds of the process trees: live processes plus the children they reaped."""
    table = _proc_table()
    return sum(table[p][1] for r in roots for p in tree(r, table))


def tree_rss_mib(roots: list[int]) -> float:
    table, total = _proc_table(), 0
    for r in roots:
        for p in tree(r, table):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
    return round(total / 1024, 1)


@dataclass
class Servers:
    """Every server process this run started; each is a session leader (own group)."""

    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
        fh = open(log, "ab")  # noqa: SIM115 (kept open for the server's lifetime)
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        fh.close()  # the child has its own descriptor
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # its own group: gunicorn/uvicorn kids
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 90) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited ({proc.returncode}) before it was up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"127.0.0.1:{port}{path} not ready after {timeout:.0f} s")


# ---------------------------------------------------------------- orchestration

CONFIGS = {
    "seamless-default": "Seamless (default)",
    "seamless-tuned": "Seamless (tuned)",
    "pair-default": "Feast + MLflow (default)",
    "pair-tuned": "Feast + MLflow (tuned)",
}


ONE_THREAD = {"OMP_NUM_THREADS": "1"}
MLFLOW_TUNED = {"UVICORN_ACCESS_LOG": "false", **ONE_THREAD}


def start_config(
    name: str, servers: Servers, ws: Path, env: dict[str, str], logs: Path
) -> tuple[dict, list[int], dict]:
    """Start one configuration's servers; returns (client spec, root pids, command info)."""
    tuned = name.endswith("tuned")
    if name.startswith("seamless"):
        port = free_port()
        cmd = [str(BIN / "seamless"), "serve", "--workspace", str(ws), "--port", str(port)]
        cmd += ["--log-level", "warning"] if tuned else []
        senv = {**env, **ONE_THREAD} if tuned else env
        proc = servers.start(cmd, senv, ws, logs / f"{name}.log")
        ready = wait_ready(port, "/readyz", proc)
        info = {"seamless": cmd, "start_s": round(ready, 1)}
        if tuned:
            info["seamless_env"] = ONE_THREAD
        return {"kind": "seamless", "port": port}, [proc.pid], info
    fport, mport = free_port(), free_port()
    fcmd = [str(BIN / "feast"), "serve", "-h", "127.0.0.1", "-p", str(fport)]
    fcmd += ["--max-requests", "0", "--no-access-log"] if tuned else []
    mcmd = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/credit_risk@champion"]
    mcmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(mport)]
    menv = {**env, **MLFLOW_TUNED} if tuned else env
    fproc = servers.start(fcmd, env, ws / "feast", logs / f"{name}-feast.log")
    mproc = servers.start(mcmd, menv, ws, logs / f"{name}-mlflow.log")
    ready = max(wait_ready(fport, "/health", fproc), wait_ready(mport, "/health", mproc))
    spec = {"kind": "pair", "feast_port": fport, "mlflow_port": mport}
    info: dict[str, Any] = {"feast": fcmd, "mlflow": mcmd, "start_s": round(ready, 1)}
    if tuned:
        info["mlflow_env"] = MLFLOW_TUNED
    return spec, [fproc.pid, mproc.pid], info


def client(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "_client", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def access_log_lines(logs: Path, name: str) -> int:
    """Requests lines the servers logged (evidence the tuned runs log none)."""
    n = 0
    for f in logs.glob(f"{name}*.log"):
        n += sum('"POST /' in line for line in f.read_text(errors="replace").splitlines())
    return n


def measure_all(ws: Path, env: dict, logs: Path, base: dict, args: argparse.Namespace) -> dict:
    """Every configuration up at once, measured in interleaved slices.

    The build machines are shared and their load drifts: each configuration gets
    `--seconds` per concurrency as `--slice`-second slices, and every round visits the
    configurations in a rotated order, so a busy minute hurts them all alike.
    """
    servers = Servers()
    names = list(CONFIGS)
    try:
        up = {}
        for name in names:  # one at a time: start-up does not compete with another's
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            spec, roots, info = start_config(name, servers, ws, env, logs)
            up[name] = ({**base, **spec}, roots, info)
        results: dict[str, dict] = {}
        for name, (spec, _, info) in up.items():
            # Warm-up (lazy imports, first SQLite reads), and the scores for the cross-check.
            warm = client({**spec, "seconds": args.warmup, "concurrency": 2, "check": True})
            results[name] = {**info, "check": warm["check"], "warmup_errors": warm["errors"]}
        rounds = max(1, math.ceil(args.seconds / args.slice))
        slices: dict[tuple[str, int], list[dict]] = {}
        cpu: Counter[tuple[str, int]] = Counter()
        for r in range(rounds):
            print(f"round {r + 1}/{rounds} ...", file=sys.stderr, flush=True)
            order = names[r % len(names) :] + names[: r % len(names)]
            for conc in args.concurrency:
                for name in order:
                    spec, roots, _ = up[name]
                    seconds = min(args.slice, args.seconds - r * args.slice)
                    cpu0 = tree_cpu(roots)
                    sl = client({**spec, "seconds": seconds, "concurrency": conc, "check": False})
                    cpu[name, conc] += tree_cpu(roots) - cpu0
                    slices.setdefault((name, conc), []).append(sl)
        for name, (_, roots, _) in up.items():
            results[name]["runs"] = {
                str(c): stats(slices[name, c], cpu[name, c]) for c in args.concurrency
            }
            results[name]["server_rss_mib"] = tree_rss_mib(roots)
    finally:
        servers.stop_all()
    for name in names:
        results[name]["access_log_lines"] = access_log_lines(logs, name)
    return results


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("feast", "mlflow", "uvicorn", "gunicorn", "fastapi")}


def ratios(results: dict, conc: str) -> dict[str, dict[str, float]]:
    out = {}
    for variant in ("default", "tuned"):
        s = results[f"seamless-{variant}"]["runs"][conc]
        p = results[f"pair-{variant}"]["runs"][conc]
        out[variant] = {
            "throughput_x": round(s["throughput"] / p["throughput"], 2),
            "p50_x": round(s["p50_ms"] / p["p50_ms"], 2),
            "p95_x": round(s["p95_ms"] / p["p95_ms"], 2),
            "server_cpu_per_pred_x": round(
                s["server_cpu_ms_per_pred"] / p["server_cpu_ms_per_pred"], 2
            ),
        }
    return out


def write_markdown(summary: dict, out: Path, plot: Path) -> None:
    res, conc = summary["results"], summary["concurrency"]
    lines = [
        f"\n### Online prediction, {summary['rows']:,} rows ({summary['entities']:,} entities), "
        f"{summary['cpus']} CPUs ({summary['date']})\n",
        "Entity id -> online features -> score, one entity per request, "
        f"{summary['seconds']:.0f} s per configuration and concurrency, measured in "
        f"{summary['slice']:.0f}-s slices interleaved across the configurations (all servers "
        "up at once), client in its own process on 127.0.0.1 (it shares the CPUs with the "
        "servers). The machine is shared with other jobs: 1-min load average "
        f"{summary['loadavg_before_after'][0]} before, {summary['loadavg_before_after'][1]} "
        "after. Versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()) + ".\n",
        "| configuration | conc. | pred/s | p50 ms | p95 ms | p99 ms | errors "
        "| server CPU ms/pred | client CPU ms/pred |",
        "|---|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for name, label in CONFIGS.items():
        for c in conc:
            r = res[name]["runs"][str(c)]
            errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
            lines.append(
                f"| {label} | {c} | {r['throughput']:,.0f} | {r['p50_ms']} | {r['p95_ms']} "
                f"| {r['p99_ms']} | {errs} | {r['server_cpu_ms_per_pred']:.2f} "
                f"| {r['client_cpu_ms_per_pred']:.2f} |"
            )
    lines.append("")
    for c in conc:
        for variant, r in summary["ratios"][str(c)].items():
            lines.append(
                f"- concurrency {c}, {variant} vs {variant}: Seamless throughput "
                f"**x{r['throughput_x']}**, p50 x{r['p50_x']}, p95 x{r['p95_x']}, server CPU "
                f"per prediction x{r['server_cpu_per_pred_x']} (Seamless / Feast + MLflow)"
            )
    lines += [
        f"- scores agree across configurations: max |diff| {summary['score_max_abs_diff']:.2e} "
        f"over {CHECK_IDS} entities",
        "- server RSS at the end (MiB): "
        + ", ".join(f"{CONFIGS[n]} {res[n]['server_rss_mib']:.0f}" for n in CONFIGS),
        "- request lines in the server logs: "
        + ", ".join(f"{CONFIGS[n]} {res[n].get('access_log_lines', '?')}" for n in CONFIGS),
        "- commands: Seamless `seamless serve --workspace WS --port P` (tuned: + "
        "`--log-level warning`, env `OMP_NUM_THREADS=1`); Feast `feast serve -h 127.0.0.1 "
        "-p P` in the repo folder (tuned: + `--max-requests 0 --no-access-log`); MLflow "
        "`mlflow models serve -m models:/credit_risk@champion --env-manager local -h "
        "127.0.0.1 -p P` (tuned: env `UVICORN_ACCESS_LOG=false`, as the command has no flag "
        "for it, and `OMP_NUM_THREADS=1`).",
        "- `OMP_NUM_THREADS=1`: the model (HistGradientBoosting) predicts with an OpenMP "
        "team per calling thread; one row gains nothing from it, and on busy CPUs its "
        "spin-waiting threads burn CPU (the default Seamless rows show it: a threaded "
        "server calls the model from several threads).",
        "- Seamless does more per request: bearer-token check, unknown-entity check and an "
        "fsynced prediction-log line; the pair's client does the unknown-entity check.",
        f"\n![serving benchmark]({plot.name})\n",
    ]
    if not out.exists():
        out.write_text(
            "# Serving benchmark\n\nRecorded by `benchmarks/serving.py`: Seamless serving "
            "next to Feast's feature server + MLflow's scoring server, same run.\n",
            encoding="utf-8",
        )
    with out.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def draw(summary: dict, plot: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res, conc = summary["results"], summary["concurrency"]
    names = list(CONFIGS)
    colors = ["#1f77b4", "#6baed6", "#d62728", "#fc9272"]
    fig, axes = plt.subplots(1, len(conc) + 1, figsize=(5 * (len(conc) + 1), 4.2))
    width = 0.8 / len(names)
    for ax, c in zip(axes, conc, strict=False):
        for i, n in enumerate(names):
            r = res[n]["runs"][str(c)]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(2)]
            ax.bar(xs, [r["p50_ms"], r["p95_ms"]], width, color=colors[i], label=CONFIGS[n])
        ax.set_xticks([0, 1], ["p50", "p95"])
        ax.set_ylabel("latency per prediction (ms)")
        ax.set_title(f"latency, concurrency {c}")
    ax = axes[-1]
    for i, n in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(conc))]
        ax.bar(xs, [res[n]["runs"][str(c)]["throughput"] for c in conc], width, color=colors[i])
    ax.set_xticks(range(len(conc)), [f"concurrency {c}" for c in conc])
    ax.set_ylabel("predictions / s")
    ax.set_title("throughput")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(names))
    fig.suptitle(f"Online prediction: Seamless vs Feast + MLflow ({summary['date']})")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(plot, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per configuration+conc.")
    parser.add_argument("--slice", type=float, default=5.0, help="seconds per interleaved slice")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serving-benchmark.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "serving-benchmark.png")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(ROOT))
    from components.common.config import default_config_path, load_config
    from components.common.env import TELEMETRY_OFF
    from tests.serving.workspace import build_workspace, small_config

    started = time.perf_counter()
    config = small_config(load_config(default_config_path()))
    with tempfile.TemporaryDirectory(prefix="seamless-serving-bench-") as name:
        tmp = Path(name)
        with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; stdout is JSON
            built = build_workspace(tmp, config, rows=args.rows)  # sets this process's env
        ws: Path = built["workspace"]
        logs = tmp / "logs"
        logs.mkdir()
        env = {
            **os.environ,
            **TELEMETRY_OFF,
            # `mlflow models serve` execs `uvicorn` by name
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}",
            "SEAMLESS_WORKSPACE": str(ws),
            "SEAMLESS_FEAST_REPO": str(ws / "feast"),
            "SEAMLESS_SERVE_TOKENS": json.dumps({TOKEN: "predict"}),
        }
        base = {
            "ids": random.Random(0).sample(built["entities"], len(built["entities"])),
            "feature_service": config.features.service,
            "key": config.entity_key(),
        }
        load0 = os.getloadavg()
        results = measure_all(ws, env, logs, base, args)
        load1 = os.getloadavg()
    checks = [r.pop("check") for r in results.values()]
    diff = max(abs(c[k] - checks[0][k]) for c in checks for k in checks[0])
    summary = {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "entities": len(built["entities"]),
        "seconds": args.seconds,
        "slice": args.slice,
        "concurrency": args.concurrency,
        "versions": versions(),
        "score_max_abs_diff": diff,
        # Other jobs on the machine (its 1-min load average, before and after the run).
        "loadavg_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "results": results,
        "ratios": {str(c): ratios(results, str(c)) for c in args.concurrency},
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    if diff > 1e-6:
        raise SystemExit(f"scores differ between configurations by {diff}: not the same model")
    draw(summary, args.plot)
    write_markdown(summary, args.out, args.plot)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_client":
        print(json.dumps(run_client(json.loads(sys.argv[2]))))
    else:
        main()
