"""Benchmark: one online prediction (entity id -> online features -> score), same run.

Side by side, on one machine, for two models (a logistic regression and a 100-tree
random forest, each registered as `champion` in the workspace's MLflow store) and one
online store (the workspace's Feast SQLite store; with `--redis`, also a Feast Redis
store on a `redis-server` this script starts on loopback):

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
On Redis only the tuned configurations run (the defaults differ from them as on SQLite).

Load comes from a separate client process (threads, one keep-alive `http.client`
connection per server per thread) on 127.0.0.1, bounded in time: closed loop at each
`--concurrency` for `--seconds`, then open loop at a fixed `--rate` (requests are sent
on a fixed schedule; latency counts from the scheduled time, so a stalled server is
not hidden by a client that waits for it). The servers of one model run at once and
are measured in short slices interleaved across the configurations (rotated order each
round): the build machines are shared, and a burst of someone else's load then lands on
every configuration rather than on one. Recorded: predictions/s, latency p50/p95/p99,
errors, and CPU seconds per prediction of the server process trees
(utime+stime+cutime+cstime from /proc/<pid>/stat: a gunicorn worker restarted mid-run
is counted through its parent) and of the client.

`--saturation` instead measures Seamless (tuned, logistic regression, SQLite) alone: its
saturation rate (closed loop, `--sat-concurrency` clients), then `--hold` seconds
(default 300) open loop at 80% of it (errors must be zero), then `--over` seconds at
150% of it with more clients than `--max-concurrency`, where it must shed (429 from the
limiter, 503 from the queueing budget). With several `--max-queue-ms` values (default
`0 50`: off, then 50 ms) each gets its own server at the same offered rates, one after
the other in the same run. A 429/503 answer keeps its keep-alive connection (as HTTP
client libraries do); other failures reconnect.

Usage: python benchmarks/serving.py [--seconds 10] [--concurrency 1 8] [--rate 200]
       [--models lr rf] [--redis] [--rows 20000] [--saturation [--hold 300] [--over 15]
       [--max-queue-ms 0 50] [--over-rate R] [--reconnect-on-error] [--over-clients N]]
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


class HttpStatus(RuntimeError):
    """A complete non-200 answer: the connection stays usable (keep-alive), as with any
    HTTP client library; only other failures drop it."""


def _post(conn: http.client.HTTPConnection, path: str, body: dict, headers: dict) -> Any:
    conn.request("POST", path, json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise HttpStatus(f"http_{resp.status}")
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

    def batch(self, entity_id: int) -> list[int]:
        """`entity_id` and, with `batch` n > 1 in the spec, the n - 1 ids after it."""
        n = self.spec.get("batch", 1)
        if n == 1:
            return [entity_id]
        ids = self.spec["ids"]
        if not hasattr(self, "_at"):
            self._at = {e: i for i, e in enumerate(ids)}
        at = self._at[entity_id]
        return [ids[(at + k) % len(ids)] for k in range(n)]

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
                {"entity_ids": self.batch(entity_id)},
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
    """Closed loop (`concurrency` clients back to back) or, with `rate`, open loop."""
    ids: list[int] = spec["ids"]
    check = {str(i): Target(spec).predict(i) for i in ids[:CHECK_IDS]} if spec["check"] else {}
    deadline_s = spec["seconds"]
    rate = spec.get("rate")
    n_workers = spec["concurrency"]
    lat: list[list[float]] = [[] for _ in range(n_workers)]
    errors: list[Counter[str]] = [Counter() for _ in range(n_workers)]
    barrier = threading.Barrier(n_workers + 1)
    start_at: list[float] = []
    next_slot = [0]
    slot_lock = threading.Lock()

    def scheduled() -> float | None:
        """Open loop: the next send time on the fixed schedule (None past the end)."""
        with slot_lock:
            k = next_slot[0]
            next_slot[0] += 1
        t = start_at[0] + k / rate
        return t if t < start_at[0] + deadline_s else None

    def worker(w: int) -> None:
        target = Target(spec)
        rng = random.Random(w)
        barrier.wait()
        end = start_at[0] + deadline_s
        while True:
            if rate:
                due = scheduled()
                if due is None:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t0 = due  # latency from the schedule: queueing in the client counts too
            else:
                t0 = time.perf_counter()
                if t0 >= end:
                    break
            try:
                target.predict(rng.choice(ids))
                lat[w].append(time.perf_counter() - t0)
            except Exception as exc:  # counted, never retried: a user would see it
                msg = str(exc)
                errors[w][msg if msg.startswith(("http_", "unknown")) else type(exc).__name__] += 1
                if spec.get("reconnect_on_error") or not isinstance(exc, HttpStatus):
                    target.reset()
        target.reset()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_workers)]
    for t in threads:
        t.start()
    cpu0, t_start = os.times(), time.perf_counter()
    start_at.append(t_start + 0.05)
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
    "seamless-write-tuned": "Seamless (tuned, --log-sync write)",
    "pair-default": "Feast + MLflow (default)",
    "pair-tuned": "Feast + MLflow (tuned)",
}
MODELS = {
    "lr": ("logistic_regression", {"C": [1.0]}, "logistic regression"),
    "rf": ("random_forest", {"n_estimators": [100]}, "random forest, 100 trees"),
}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
MLFLOW_TUNED = {"UVICORN_ACCESS_LOG": "false", **ONE_THREAD}


def model_config(base: Any, key: str) -> Any:
    """The bundled config with this benchmark's model (its own registered name)."""
    estimator, space, _ = MODELS[key]
    search = base.model.search.model_copy(update={"n_iter": 1, "cv": 2, "space": space})
    model = base.model.model_copy(
        update={"name": f"credit_risk_{key}", "experiment": f"credit_risk_{key}",
                "estimator": estimator, "params": {}, "search": search}
    )  # fmt: skip
    return base.model_copy(update={"model": model})


def config_names(stores: list[str]) -> list[tuple[str, str]]:
    """(configuration, store): every configuration on SQLite, the tuned ones on Redis."""
    out = [(name, "sqlite") for name in CONFIGS]
    if "redis" in stores:
        out += [(name, "redis") for name in CONFIGS if name.endswith("tuned")]
    return out


def start_config(
    name: str, store: str, servers: Servers, ws: Path, env: dict[str, str], logs: Path,
    model: str, config_yaml: Path, extra: list[str] | None = None,
) -> tuple[dict, list[int], dict]:  # fmt: skip
    """Start one configuration's servers; returns (client spec, root pids, command info)."""
    tuned = name.endswith("tuned")
    repo = ws / ("feast" if store == "sqlite" else "feast-redis")
    env = {**env, "SEAMLESS_FEAST_REPO": str(repo)}
    tag = f"{model}-{store}-{name}"
    if name.startswith("seamless"):
        port = free_port()
        cmd = [str(BIN / "seamless"), "serve", "--workspace", str(ws), "--port", str(port)]
        cmd += ["--config", str(config_yaml), *(extra or [])]
        cmd += ["--log-level", "warning"] if tuned else []
        # Answered once the log line is written, fsynced each second (not per request).
        cmd += ["--log-sync", "write"] if name == "seamless-write-tuned" else []
        senv = {**env, **ONE_THREAD} if tuned else env
        proc = servers.start(cmd, senv, ws, logs / f"{tag}.log")
        ready = wait_ready(port, "/readyz", proc)
        info = {"seamless": cmd, "start_s": round(ready, 1), "readyz": readyz(port)}
        return {"kind": "seamless", "port": port}, [proc.pid], info
    fport, mport = free_port(), free_port()
    fcmd = [str(BIN / "feast"), "serve", "-h", "127.0.0.1", "-p", str(fport)]
    fcmd += ["--max-requests", "0", "--no-access-log"] if tuned else []
    mcmd = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/credit_risk_{model}@champion"]
    mcmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(mport)]
    menv = {**env, **MLFLOW_TUNED} if tuned else env
    fproc = servers.start(fcmd, env, repo, logs / f"{tag}-feast.log")
    mproc = servers.start(mcmd, menv, ws, logs / f"{tag}-mlflow.log")
    ready = max(wait_ready(fport, "/health", fproc), wait_ready(mport, "/health", mproc))
    spec = {"kind": "pair", "feast_port": fport, "mlflow_port": mport}
    info: dict[str, Any] = {"feast": fcmd, "mlflow": mcmd, "start_s": round(ready, 1)}
    return spec, [fproc.pid, mproc.pid], info


def readyz(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/readyz")
    body = json.loads(conn.getresponse().read())
    return {
        "predictor": body["model"].get("predictor"),
        "predictor_detail": body["model"].get("predictor_detail"),
        "feature_reads": body.get("feature_reads"),
    }


def client(spec: dict) -> dict:
    timeout = spec["seconds"] + 120  # bounded: a hung server cannot hang the benchmark
    out = subprocess.run(
        [sys.executable, __file__, "_client", json.dumps(spec)],
        capture_output=True, text=True, check=False, timeout=timeout,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def access_log_lines(logs: Path, tag: str) -> int:
    """Requests lines the servers logged (evidence the tuned runs log none)."""
    n = 0
    for f in logs.glob(f"{tag}*.log"):
        n += sum('"POST /' in line for line in f.read_text(errors="replace").splitlines())
    return n


def measure_model(
    model: str, ws: Path, env: dict, logs: Path, base: dict, args: argparse.Namespace,
    config_yaml: Path,
) -> dict:  # fmt: skip
    """Every configuration of one model up at once, measured in interleaved slices.

    The build machines are shared and their load drifts: each configuration gets
    `--seconds` per concurrency (and `--rate-seconds` at the fixed rate) as
    `--slice`-second slices, every round visiting the configurations in a rotated order,
    so a busy minute hurts them all alike.
    """
    servers = Servers()
    names = config_names(args.stores)
    modes = [("conc", c) for c in args.concurrency] + [("rate", args.rate)]
    try:
        up = {}
        for name, store in names:  # one at a time: start-up does not compete
            print(f"[{model}] starting {name} on {store} ...", file=sys.stderr, flush=True)
            spec, roots, info = start_config(
                name, store, servers, ws, env, logs, model, config_yaml
            )
            up[name, store] = ({**base, **spec}, roots, info)
        results: dict[str, dict] = {}
        for (name, store), (spec, _, info) in up.items():
            warm = client({**spec, "seconds": args.warmup, "concurrency": 2, "check": True})
            results[f"{name}@{store}"] = {
                **info, "check": warm["check"], "warmup_errors": warm["errors"], "runs": {}
            }  # fmt: skip
        loads = [
            (f"{kind}-{value:g}", {"rate": value, "concurrency": args.rate_clients}
             if kind == "rate" else {"concurrency": value},
             args.rate_seconds if kind == "rate" else args.seconds)
            for kind, value in modes
        ]  # fmt: skip
        runs = interleaved({f"{n}@{s}": v for (n, s), v in up.items()}, loads, args.slice, model)
        for key, by_mode in runs.items():
            results[key]["runs"] = by_mode
        for (name, store), (_, roots, _) in up.items():
            results[f"{name}@{store}"]["server_rss_mib"] = tree_rss_mib(roots)
    finally:
        servers.stop_all()
    for name, store in names:
        results[f"{name}@{store}"]["access_log_lines"] = access_log_lines(
            logs, f"{model}-{store}-{name}"
        )
    return results


def interleaved(
    up: dict[str, tuple[dict, list[int], dict]],
    loads: list[tuple[str, dict, float]],
    slice_s: float,
    label: str,
) -> dict[str, dict[str, dict]]:
    """Each server of `up` (key -> client spec, root pids, info) under each load (mode
    name, client settings, total seconds), in `slice_s`-second slices: every round visits
    the servers in a rotated order, so a burst of someone else's load on a shared machine
    lands on all of them alike. Returns key -> mode -> `stats` (server CPU of the slices)."""
    names = list(up)
    slices: dict[tuple[str, str], list[dict]] = {}
    cpu: Counter[tuple[str, str]] = Counter()
    rounds = max(1, math.ceil(max(total for _, _, total in loads) / slice_s))
    for r in range(rounds):
        print(f"[{label}] round {r + 1}/{rounds} ...", file=sys.stderr, flush=True)
        order = names[r % len(names) :] + names[: r % len(names)]
        for mode, settings, total in loads:
            seconds = min(slice_s, total - r * slice_s)
            if seconds <= 0:
                continue
            for key in order:
                spec, roots, _ = up[key]
                cpu0 = tree_cpu(roots)
                sl = client({**spec, "seconds": seconds, "check": False, **settings})
                cpu[key, mode] += tree_cpu(roots) - cpu0
                slices.setdefault((key, mode), []).append(sl)
    out: dict[str, dict[str, dict]] = {key: {} for key in names}
    for (key, mode), sls in slices.items():
        out[key][mode] = stats(sls, cpu[key, mode])
    return out


def saturation(ws: Path, env: dict, logs: Path, base: dict, args: argparse.Namespace,
               config_yaml: Path) -> dict:  # fmt: skip
    """Saturation rate, then 80% of it held for `--hold` s, then 150% (shedding).

    The saturation rate is measured once, on the first `--max-queue-ms` value's server;
    then each value gets its own server and the same offered rates (an A/B in one run)."""
    out: dict[str, Any] = {"runs": {}}
    sat = 0.0
    for budget in args.max_queue_ms:
        servers = Servers()
        try:
            extra = ["--max-concurrency", str(args.max_concurrency)]
            extra += ["--max-queue-ms", f"{budget:g}"]
            spec, roots, info = start_config(
                "seamless-tuned", "sqlite", servers, ws, env, logs, "lr", config_yaml, extra
            )
            spec = {**base, **spec}
            client({**spec, "seconds": args.warmup, "concurrency": 2, "check": False})
            run: dict[str, Any] = {"command": info["seamless"], "readyz": info["readyz"]}
            if not sat:
                cpu0 = tree_cpu(roots)
                sl = client({**spec, "concurrency": args.sat_concurrency,
                             "seconds": args.sat_seconds, "check": False})  # fmt: skip
                run["saturation"] = stats([sl], tree_cpu(roots) - cpu0)
                sat = run["saturation"]["throughput"]
            spec["reconnect_on_error"] = args.reconnect_on_error
            for label, factor, seconds, clients in (
                ("hold_80pct", 0.8, args.hold, args.rate_clients),
                ("over_150pct", 1.5, args.over, args.over_clients or args.max_concurrency * 3),
            ):
                if seconds <= 0:
                    continue
                if label == "over_150pct" and args.over_rate:
                    factor = args.over_rate / sat  # a fixed offered rate instead
                print(
                    f"[saturation] max-queue-ms {budget:g}, {label}: {factor * sat:.0f}/s "
                    f"for {seconds:.0f} s, {clients} clients",
                    file=sys.stderr,
                    flush=True,
                )
                cpu0, load0 = tree_cpu(roots), os.getloadavg()[0]
                load = {**spec, "seconds": seconds, "check": False, "rate": factor * sat,
                        "concurrency": clients}  # fmt: skip
                res = stats([client(load)], tree_cpu(roots) - cpu0)
                run[label] = {
                    **res,
                    "rate": factor * sat,
                    "clients": clients,
                    "loadavg": [round(load0, 2), round(os.getloadavg()[0], 2)],
                }
            run["server_rss_mib"] = tree_rss_mib(roots)
            run["shed_total"] = shed_total(spec["port"])
        finally:
            servers.stop_all()
        key = f"{budget:g}"  # a value repeated (e.g. 0 50 0: drift check) gets a suffix
        out["runs"][key if key not in out["runs"] else f"{key} (again)"] = run
    return out


def shed_total(port: int) -> float:
    """The server's own count of requests shed (503, overload.py)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith("seamless_serve_shed_total "):
            return float(line.split()[1])
    return 0.0


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("feast", "mlflow", "uvicorn", "gunicorn", "fastapi", "onnxruntime", "skl2onnx")
    return {p: version(p) for p in names}


def ratios(res: dict, mode: str, store: str) -> dict[str, dict[str, float]]:
    out = {}
    for variant in ("default", "tuned"):
        sk, pk = f"seamless-{variant}@{store}", f"pair-{variant}@{store}"
        if sk not in res or pk not in res:
            continue
        s, p = res[sk]["runs"][mode], res[pk]["runs"][mode]
        out[variant] = {
            "throughput_x": round(s["throughput"] / p["throughput"], 2),
            "p99_x": round(s["p99_ms"] / p["p99_ms"], 3),
            "server_cpu_per_pred_x": round(
                s["server_cpu_ms_per_pred"] / p["server_cpu_ms_per_pred"], 3
            ),
        }
    return out


def label(key: str) -> str:
    name, store = key.split("@")
    return f"{CONFIGS[name]}, {store}"


def write_markdown(summary: dict, out: Path, plot: Path) -> None:
    lines = [
        f"\n### Online prediction, {summary['rows']:,} rows ({summary['entities']:,} entities), "
        f"{summary['cpus']} CPUs ({summary['date']})\n",
        "Entity id -> online features -> score, one entity per request. Closed loop at "
        f"concurrency {', '.join(map(str, summary['concurrency']))} for "
        f"{summary['seconds']:.0f} s each, and open loop at {summary['rate']:.0f} requests/s "
        f"for {summary['rate_seconds']:.0f} s, per configuration, measured in "
        f"{summary['slice']:.0f}-s slices interleaved across the configurations of a model "
        "(all up at once), client in its own process on 127.0.0.1 (it shares the CPUs with "
        "the servers). The machine is shared with other jobs: 1-min load average "
        f"{summary['loadavg_before_after'][0]} before, {summary['loadavg_before_after'][1]} "
        "after. Versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()) + ".\n",
    ]
    for model, res in summary["results"].items():
        lines += [
            f"#### {MODELS[model][2]}\n",
            "| configuration | load | pred/s | p50 ms | p95 ms | p99 ms | errors "
            "| server CPU ms/pred | client CPU ms/pred |",
            "|---|---|--:|--:|--:|--:|---|--:|--:|",
        ]
        for key, r0 in res.items():
            for mode, r in r0["runs"].items():
                errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
                load = mode.replace("conc-", "conc. ").replace("rate-", "") + (
                    "/s open" if mode.startswith("rate") else ""
                )
                lines.append(
                    f"| {label(key)} | {load} | {r['throughput']:,.0f} | {r['p50_ms']} "
                    f"| {r['p95_ms']} | {r['p99_ms']} | {errs} "
                    f"| {r['server_cpu_ms_per_pred']:.3f} | {r['client_cpu_ms_per_pred']:.3f} |"
                )
        lines.append("")
        for (mode, store), rr in summary["ratios"][model].items():
            for variant, r in rr.items():
                lines.append(
                    f"- {mode}, {store}, {variant} vs {variant}: Seamless throughput "
                    f"**x{r['throughput_x']}**, p99 x{r['p99_x']}, server CPU per prediction "
                    f"x{r['server_cpu_per_pred_x']} (Seamless / Feast + MLflow)"
                )
        lines.append(
            "- server RSS at the end (MiB): "
            + ", ".join(f"{label(k)} {v['server_rss_mib']:.0f}" for k, v in res.items())
        )
        lines.append(
            "- Seamless predictor: "
            + ", ".join(
                f"{label(k)}: {v['readyz']['predictor']} ({v['readyz']['predictor_detail']}), "
                f"reads {v['readyz']['feature_reads']}"
                for k, v in res.items()
                if "readyz" in v
            )
        )
        lines.append(
            "- request lines in the server logs: "
            + ", ".join(f"{label(k)} {v.get('access_log_lines', '?')}" for k, v in res.items())
            + "\n"
        )
    lines += [
        f"- scores agree across configurations: max |diff| {summary['score_max_abs_diff']:.2e} "
        f"over {CHECK_IDS} entities (Seamless scores with the ONNX graph, float32 inside; "
        "it must match scikit-learn to 1e-5)",
        "- commands: Seamless `seamless serve --workspace WS --config MODEL.yaml --port P` "
        "(tuned: + `--log-level warning`, env `OMP_NUM_THREADS=1`); Feast `feast serve -h "
        "127.0.0.1 -p P` in the repo folder (tuned: + `--max-requests 0 --no-access-log`); "
        "MLflow `mlflow models serve -m models:/MODEL@champion --env-manager local -h "
        "127.0.0.1 -p P` (tuned: env `UVICORN_ACCESS_LOG=false`, as the command has no flag "
        "for it, and `OMP_NUM_THREADS=1`).",
        "- Seamless does more per request: bearer-token check, unknown-entity check and a "
        "prediction-log line (fsynced before the answer; with `--log-sync write` written "
        "before the answer and fsynced each second); the pair's client does the "
        "unknown-entity check.",
        f"\n![serving benchmark]({plot.name})\n",
    ]
    append(out, lines)


def append(out: Path, lines: list[str]) -> None:
    if not out.exists():
        out.write_text(
            "# Serving benchmark\n\nRecorded by `benchmarks/serving.py`: Seamless serving "
            "next to Feast's feature server + MLflow's scoring server, same run.\n",
            encoding="utf-8",
        )
    with out.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def write_saturation(summary: dict, out: Path) -> None:
    runs = summary["saturation"]["runs"]
    first = next(iter(runs.values()))
    lines = [
        f"\n### Saturation and shedding, Seamless (tuned, logistic regression, SQLite), "
        f"{summary['cpus']} CPUs ({summary['date']})\n",
        f"Closed loop with {summary['sat_concurrency']} clients for "
        f"{summary['sat_seconds']:.0f} s gives the saturation rate (on the first server); "
        "then, for each `--max-queue-ms` (0: shedding off), a fresh server, open loop at "
        f"80% of it for {summary['hold']:.0f} s and at 150% for {summary['over']:.0f} s "
        f"(`--max-concurrency {summary['max_concurrency']}`"
        + (f", `--over-rate {summary['over_rate']:g}`" if summary["over_rate"] else "")
        + (
            ", client reconnects after a 429/503"
            if summary["reconnect_on_error"]
            else ", client keeps its connection after a 429/503"
        )
        + "). Latency percentiles are of "
        "the answered (200) requests, from their scheduled send time. 1-min load average "
        f"{summary['loadavg_before_after'][0]} before, {summary['loadavg_before_after'][1]} "
        "after (shared machine; per phase in the table).\n",
        "| max-queue-ms | phase | offered /s | clients | answered /s | p50 ms | p99 ms "
        "| refused | server CPU ms/pred | load avg |",
        "|--:|---|--:|--:|--:|--:|--:|---|--:|---|",
    ]
    r = first["saturation"]
    lines.append(
        f"| {next(iter(runs))} | saturation | closed loop | {summary['sat_concurrency']} "
        f"| {r['throughput']:,.0f} | {r['p50_ms']} | {r['p99_ms']} "
        f"| {', '.join(f'{k} {v}' for k, v in r['errors'].items()) or '0'} "
        f"| {r['server_cpu_ms_per_pred']:.3f} | |"
    )
    for budget, run in runs.items():
        for phase in ("hold_80pct", "over_150pct"):
            if phase not in run:
                continue
            r = run[phase]
            errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
            lines.append(
                f"| {budget} | {phase} | {r['rate']:,.0f} | {r['clients']} "
                f"| {r['throughput']:,.0f} | {r['p50_ms']} | {r['p99_ms']} | {errs} "
                f"| {r['server_cpu_ms_per_pred']:.3f} | {r['loadavg'][0]}-{r['loadavg'][1]} |"
            )
    lines.append("")
    for budget, run in runs.items():
        lines.append(
            f"- max-queue-ms {budget}: server RSS at the end {run['server_rss_mib']:.0f} MiB, "
            f"`seamless_serve_shed_total` {run['shed_total']:.0f}"
        )
    append(out, [*lines, ""])


def draw(summary: dict, plot: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(summary["results"])
    fig, axes = plt.subplots(len(models), 3, figsize=(16, 4.6 * len(models)), squeeze=False)
    rate_mode = f"rate-{summary['rate']:g}"
    conc_mode = f"conc-{max(summary['concurrency'])}"
    for row, model in zip(axes, models, strict=True):
        res = summary["results"][model]
        keys = list(res)
        colors = ["#1f77b4" if k.startswith("seamless") else "#d62728" for k in keys]
        names = [label(k).replace("Feast + MLflow", "pair") for k in keys]
        panels = (
            ("server CPU ms / prediction", conc_mode, "server_cpu_ms_per_pred"),
            (f"predictions / s ({conc_mode})", conc_mode, "throughput"),
            (f"p99 ms at {summary['rate']:g}/s open loop (log)", rate_mode, "p99_ms"),
        )
        for ax, (title, mode, field_) in zip(row, panels, strict=True):
            vals = [res[k]["runs"][mode][field_] for k in keys]
            ax.barh(range(len(keys)), vals, color=colors)
            ax.set_yticks(range(len(keys)), names, fontsize=8)
            ax.invert_yaxis()
            if field_ == "p99_ms":
                ax.set_xscale("log")
            ax.set_title(f"{MODELS[model][2]}: {title}", fontsize=9)
    fig.suptitle(f"Online prediction: Seamless vs Feast + MLflow ({summary['date']})")
    fig.tight_layout()
    fig.savefig(plot, dpi=100)
    plt.close(fig)


def build(args: argparse.Namespace, tmp: Path) -> tuple[Path, dict, dict[str, Path], Any]:
    """Workspace: features (SQLite, and Redis with --redis), one champion per model."""
    import yaml

    from components.common.config import default_config_path, load_config
    from tests.serving.workspace import build_workspace, train_and_promote

    base = load_config(default_config_path())
    configs = {m: model_config(base, m) for m in args.models}
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; stdout is JSON
        first, *rest = args.models
        built = build_workspace(tmp, configs[first], rows=args.rows)  # sets this env
        for m in rest:
            train_and_promote(configs[m], built["training"])
    yamls = {}
    for m, c in configs.items():
        yamls[m] = tmp / f"credit_risk_{m}.yaml"
        # Only what is set: a revision compared in benchmarks/serving_ab.py may predate a key.
        yamls[m].write_text(
            yaml.safe_dump(c.model_dump(mode="json", exclude_unset=True), sort_keys=False)
        )
    return built["workspace"], built, yamls, base


def redis_repo(ws: Path, base: Any, connection: str) -> None:
    """`ws/feast-redis`: the workspace's repo (same registry) on Redis, materialized."""
    from datetime import UTC, datetime

    import yaml

    from components.features.store import open_store

    src = yaml.safe_load((ws / "feast" / "feature_store.yaml").read_text())
    src["online_store"] = {"type": "redis", "connection_string": connection}
    repo = ws / "feast-redis"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(src, sort_keys=False))
    store = open_store(repo)
    with contextlib.redirect_stdout(sys.stderr):
        store.materialize(
            start_date=datetime(2000, 1, 1, tzinfo=UTC),
            end_date=datetime.now(UTC),
            feature_views=[v.name for v in base.features.views],
        )


@contextlib.contextmanager
def redis_server(tmp: Path) -> Any:
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--redis needs redis-server (apt-get install -y redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
         "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per config and conc.")
    parser.add_argument("--slice", type=float, default=5.0, help="seconds per interleaved slice")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--rate-clients", type=int, default=16, help="open-loop client threads")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--redis", action="store_true", help="also a Feast Redis store")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--saturation", action="store_true", help="the saturation mode")
    parser.add_argument("--sat-concurrency", type=int, default=16)
    parser.add_argument("--sat-seconds", type=float, default=20.0)
    parser.add_argument("--hold", type=float, default=300.0, help="seconds at 80%%")
    parser.add_argument("--over", type=float, default=15.0, help="seconds at 150%%")
    parser.add_argument("--max-concurrency", type=int, default=32)
    parser.add_argument(
        "--max-queue-ms",
        type=float,
        nargs="+",
        default=[0.0, 50.0],
        help="saturation: one server per value (0: shedding off)",
    )
    parser.add_argument(
        "--over-rate",
        type=float,
        default=0.0,
        help="offered /s in the over phase instead of 150%% of saturation",
    )
    parser.add_argument(
        "--reconnect-on-error",
        action="store_true",
        help="client drops its connection after a 429/503 too (as before)",
    )
    parser.add_argument(
        "--over-clients",
        type=int,
        default=0,
        help="client threads at 150%% (default 3x --max-concurrency)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serving-benchmark.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "serving-benchmark.png")
    args = parser.parse_args()
    args.stores = ["sqlite", "redis"] if args.redis else ["sqlite"]
    if args.saturation:
        args.models = ["lr"]
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(ROOT))
    from components.common.env import TELEMETRY_OFF

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seamless-serving-bench-") as name:
        tmp = Path(name)
        ws, built, yamls, base_config = build(args, tmp)
        logs = tmp / "logs"
        logs.mkdir()
        env = {
            **os.environ,
            **TELEMETRY_OFF,
            # `mlflow models serve` execs `uvicorn` by name
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}",
            "SEAMLESS_WORKSPACE": str(ws),
            "SEAMLESS_SERVE_TOKENS": json.dumps({TOKEN: "predict"}),
        }
        env.pop("SEAMLESS_DERIVED_ENDPOINTS", None)  # SEAMLESS_FEAST_REPO is set per server
        base = {
            "ids": random.Random(0).sample(built["entities"], len(built["entities"])),
            "feature_service": base_config.features.service,
            "key": base_config.entity_key(),
        }
        summary: dict[str, Any] = {
            "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "rows": args.rows,
            "entities": len(built["entities"]),
            "versions": versions(),
        }
        load0 = os.getloadavg()
        if args.saturation:
            summary["saturation"] = saturation(ws, env, logs, base, args, yamls["lr"])
            summary.update(
                {k: getattr(args, k) for k in ("sat_concurrency", "sat_seconds", "hold",
                                               "over", "max_concurrency", "over_rate",
                                               "reconnect_on_error")}
            )  # fmt: skip
        else:
            with contextlib.ExitStack() as stack:
                if args.redis:
                    redis_repo(ws, base_config, stack.enter_context(redis_server(tmp)))
                results = {
                    m: measure_model(m, ws, env, logs, base, args, yamls[m]) for m in args.models
                }
        load1 = os.getloadavg()
    if not args.saturation:  # kept even if the report below fails
        (tmp.parent / f"{tmp.name}.json").write_text(json.dumps(results, default=str))
    summary["loadavg_before_after"] = [round(load0[0], 2), round(load1[0], 2)]
    summary["total_s"] = round(time.perf_counter() - started, 1)
    if args.saturation:
        print(json.dumps(summary, indent=2))
        write_saturation(summary, args.out)
        return
    diffs = []
    for res in results.values():
        checks = [r.pop("check") for r in res.values()]
        diffs += [abs(c[k] - checks[0][k]) for c in checks for k in checks[0]]
    modes = [f"conc-{c}" for c in args.concurrency] + [f"rate-{args.rate:g}"]
    summary.update(
        {
            "seconds": args.seconds, "slice": args.slice, "rate": args.rate,
            "rate_seconds": args.rate_seconds, "concurrency": args.concurrency,
            "score_max_abs_diff": max(diffs),
            "results": results,
            "ratios": {
                m: {(mode, store): ratios(res, mode, store) for mode in modes
                    for store in args.stores}
                for m, res in results.items()
            },
        }
    )  # fmt: skip
    printable = {**summary, "ratios": {m: {f"{a}@{b}": v for (a, b), v in r.items()}
                                       for m, r in summary["ratios"].items()}}  # fmt: skip
    print(json.dumps(printable, indent=2))
    if max(diffs) > 1e-5:
        raise SystemExit(
            f"scores differ between configurations by {max(diffs)}: not the same model"
        )
    draw(summary, args.plot)
    write_markdown(summary, args.out, args.plot)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_client":
        print(json.dumps(run_client(json.loads(sys.argv[2]))))
    else:
        main()
