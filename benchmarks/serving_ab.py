"""Benchmark: A/B of `seamless serve` variants in one run, server CPU per request.

Two comparisons, each a set of `seamless serve` processes of the same champion (logistic
regression, ONNX predictor, file log, `--log-level warning`, `OMP_NUM_THREADS=1`) up at
once, measured with benchmarks/serving.py's load client (a separate process, closed
loop) in slices interleaved across the variants in a rotated order, CPU seconds of each
server's process tree from /proc. Modes: 1 and 8 clients with one id per request, 8
clients with 16 ids per request. Scores must agree across variants.

- `redis-clients` (issue #18): is `components/serve/lookup/resp.py`, a hand-written
  Redis protocol client, still worth keeping? On one Feast Redis online store (a
  `redis-server` started on loopback):
  - `resp`: as shipped: resp.py's one pipelined connection, on the event loop;
  - `redis-py-async`: `redis.asyncio.Redis` (hiredis parser when installed: the run
    records `redis.utils.HIREDIS_AVAILABLE`), on the event loop, through the same reader
    (HMGET; a non-transactional pipeline for a batch), its errors mapped to the ones
    the server answers 503 for;
  - `redis-py-threads`: no async client: redis-py's sync client in worker threads (what
    the server does for Redis Cluster and Sentinel).
  A launcher (`serving_ab.py _serve VARIANT ...`) replaces
  `components.serve.lookup.features._async_redis` before running the CLI: nothing in the
  package changes. The library replaces resp.py if it costs at most 5% more.
- `revisions --base REV`: this tree against revision REV (a git worktree on PYTHONPATH,
  same virtual environment), on SQLite and on Redis, with REV started twice: the A/A
  difference between its two servers is the run's noise. A regression is head's CPU per
  request above REV's by more than max(5%, the A/A difference).

Usage: python benchmarks/serving_ab.py redis-clients [--seconds 30] [--rows 20000]
       python benchmarks/serving_ab.py revisions --base REV [--seconds 30]
       [--out docs/serving-benchmark.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

MODES = [("conc-1", 1, 1), ("conc-8", 8, 1), ("conc-8-batch-16", 8, 16)]
NOISE_FLOOR = 1.05  # 5%: below it a difference counts as equal


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    store: str  # sqlite | redis
    code: Path | None = None  # another revision's tree (PYTHONPATH), else this one
    client: str = "resp"  # the async Redis client (redis-clients comparison)


# ---------------------------------------------------------------- the Redis variants


class RedisPyAsync:
    """The part of resp.AsyncRedis the reader uses, over `redis.asyncio.Redis`."""

    def __init__(self, host: str, port: int, kwargs: dict[str, Any]) -> None:
        import redis.asyncio

        kwargs = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, **kwargs}
        kwargs.setdefault("retry", None)  # as the server's sync client: an outage is a 503
        self.client = redis.asyncio.Redis(host=host, port=port, **kwargs)

    async def hmget(self, key: bytes, fields: list[bytes]) -> list[bytes | None]:
        with _mapped_errors():
            return list(await self.client.hmget(key, fields))

    async def hmget_many(self, keys: list[bytes], fields: list[bytes]) -> list[list[Any]]:
        with _mapped_errors():
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, fields)
                return list(await pipe.execute())

    def close_threadsafe(self) -> None:
        """The loop closes its sockets at shutdown; nothing to hand over here."""


@contextlib.contextmanager
def _mapped_errors() -> Any:
    import redis.exceptions

    from components.serve.lookup.resp import RespError, RespUnavailable

    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise RespUnavailable(str(exc)) from exc
    except redis.exceptions.ResponseError as exc:
        raise RespError(str(exc)) from exc


def serve_with_client(client: str, argv: list[str]) -> None:
    """`seamless serve ARGV` with the given async Redis client."""
    sys.path.insert(0, str(ROOT))
    import components.serve.lookup.features as features

    if client == "redis-py-async":

        def redis_py(online: Any) -> RedisPyAsync | None:
            from feast.infra.online_stores.redis import RedisOnlineStore

            nodes, kwargs = RedisOnlineStore._parse_connection_string(online.connection_string)
            return RedisPyAsync(nodes[0]["host"], int(nodes[0]["port"]), kwargs)

        features._async_redis = redis_py  # type: ignore[assignment]
    elif client == "redis-py-threads":
        features._async_redis = lambda online: None
    from pipelines.cli import main

    sys.argv = ["seamless", *argv]
    main()


# ---------------------------------------------------------------- running


def start(v: Variant, servers: Any, ws: Path, env: dict, logs: Path,
          config_yaml: Path) -> tuple[dict, list[int], dict]:  # fmt: skip
    from benchmarks import serving

    port = serving.free_port()
    args = ["serve", "--workspace", str(ws), "--port", str(port), "--config", str(config_yaml)]
    args += ["--log-level", "warning"]
    repo = ws / ("feast" if v.store == "sqlite" else "feast-redis")
    senv = {**env, **serving.ONE_THREAD, "SEAMLESS_FEAST_REPO": str(repo)}
    if v.code is not None:  # the other revision's packages come first on the path
        cmd = [str(serving.BIN / "seamless"), *args]
        senv["PYTHONPATH"] = str(v.code)
    elif v.client != "resp":
        cmd = [sys.executable, __file__, "_serve", v.client, *args]
    else:
        cmd = [str(serving.BIN / "seamless"), *args]
    proc = servers.start(cmd, senv, ws, logs / f"{v.name}.log")
    ready = serving.wait_ready(port, "/readyz", proc)
    info = {"start_s": round(ready, 1), "readyz": serving.readyz(port)}
    return {"kind": "seamless", "port": port}, [proc.pid], info


def measure(variants: list[Variant], ws: Path, env: dict, logs: Path, base: dict,
            args: argparse.Namespace, config_yaml: Path) -> dict:  # fmt: skip
    from benchmarks import serving

    servers = serving.Servers()
    results: dict[str, dict] = {}
    try:
        up = {}
        for v in variants:
            print(f"starting {v.name} ...", file=sys.stderr, flush=True)
            spec, roots, info = start(v, servers, ws, env, logs, config_yaml)
            up[v.name] = ({**base, **spec}, roots, info)
        for name, (spec, _, info) in up.items():
            warm = serving.client({**spec, "seconds": args.warmup, "concurrency": 2, "check": True})
            results[name] = {**info, "check": warm["check"], "runs": {}}
        loads = [
            (mode, {"concurrency": conc, "batch": batch}, args.seconds)
            for mode, conc, batch in MODES
        ]
        for name, by_mode in serving.interleaved(up, loads, args.slice, "ab").items():
            results[name]["runs"] = by_mode
        for name, (_, roots, _) in up.items():
            results[name]["server_rss_mib"] = serving.tree_rss_mib(roots)
    finally:
        servers.stop_all()
    return results


def cpu_ratio(results: dict, a: str, b: str, mode: str) -> float:
    """a's server CPU per request over b's."""
    ra, rb = results[a]["runs"][mode], results[b]["runs"][mode]
    return float(ra["server_cpu_ms_per_pred"] / rb["server_cpu_ms_per_pred"])


# ---------------------------------------------------------------- the two comparisons


def redis_clients(args: argparse.Namespace, tmp: Path) -> list[Variant]:
    return [
        Variant("resp", "resp.py (as shipped)", "redis"),
        Variant("redis-py-async", "redis-py asyncio + hiredis", "redis", client="redis-py-async"),
        Variant("redis-py-threads", "redis-py sync, worker threads", "redis",
                client="redis-py-threads"),
    ]  # fmt: skip


def redis_verdict(results: dict, variants: list[Variant]) -> tuple[bool, str]:
    worst = max(cpu_ratio(results, "redis-py-async", "resp", m) for m, _, _ in MODES)
    if worst <= NOISE_FLOOR:
        return True, (
            f"redis-py's asyncio client is within {NOISE_FLOOR - 1:.0%} of resp.py in every "
            f"mode (worst {worst:.2f}x): the library can replace the hand-written client."
        )
    return False, (
        f"redis-py's asyncio client costs up to {worst:.2f}x resp.py's server CPU per "
        f"request (the bar was {NOISE_FLOOR:.2f}x): resp.py stays."
    )


def revisions(args: argparse.Namespace, tmp: Path) -> list[Variant]:
    if not args.base:
        raise SystemExit("revisions needs --base REV")
    tree = tmp / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.base],
        check=True, capture_output=True,
    )  # fmt: skip
    rev = args.base[:12]
    out = []
    for store in ("sqlite", "redis"):
        out += [
            Variant(f"base-{store}", f"{rev}, {store}", store, code=tree),
            Variant(f"base-again-{store}", f"{rev} again (A/A), {store}", store, code=tree),
            Variant(f"head-{store}", f"this tree, {store}", store),
        ]
    return out


def revisions_verdict(results: dict, variants: list[Variant]) -> tuple[bool, str]:
    worse = []
    for store in ("sqlite", "redis"):
        for mode, _, _ in MODES:
            base, again, head = f"base-{store}", f"base-again-{store}", f"head-{store}"
            aa = cpu_ratio(results, again, base, mode)
            noise = max(NOISE_FLOOR, aa, 1 / aa)
            # head against the two base servers, averaged
            pair = cpu_ratio(results, head, base, mode), cpu_ratio(results, head, again, mode)
            ratio = sum(pair) / 2
            if ratio > noise:
                worse.append(f"{store} {mode}: x{ratio:.2f} (noise x{noise:.2f})")
    if worse:
        return False, "Regression beyond noise: " + "; ".join(worse) + "."
    return True, (
        "No regression beyond noise: in every store and mode this tree's server CPU per "
        "request is within max(5%, the A/A difference) of the base revision's."
    )


COMPARISONS = {
    "redis-clients": (redis_clients, redis_verdict, "Redis client: resp.py against redis-py"),
    "revisions": (revisions, revisions_verdict, "Serving A/B against an earlier revision"),
}


# ---------------------------------------------------------------- report


def versions() -> dict[str, Any]:
    import redis
    import redis.utils

    out: dict[str, Any] = {"redis-py": redis.__version__}
    out["hiredis_parser"] = bool(redis.utils.HIREDIS_AVAILABLE)
    for name in ("hiredis", "uvloop"):
        with contextlib.suppress(ImportError):
            out[name] = getattr(__import__(name), "__version__", "installed")
    return out


def write_markdown(summary: dict, variants: list[Variant], out: Path) -> None:
    res = summary["results"]
    ref = variants[0].name
    command = " ".join(summary["argv"])
    lines = [
        "",
        f"## {summary['title']} ({summary['date']})",
        "",
        f"`python benchmarks/serving_ab.py {command}` ({summary['cpus']} cores, "
        f"{summary['rows']} rows, {summary['seconds']:g} s per variant and mode in "
        f"{summary['slice']:g}-s interleaved slices; 1-min load "
        f"{summary['loadavg_before_after'][0]} before, {summary['loadavg_before_after'][1]} "
        f"after; this tree at {summary['head']}; {summary['versions']}). The same "
        "`seamless serve` (tuned, ONNX predictor) "
        f"per variant; server CPU per request and its ratio to `{ref}`:",
        "",
        "| mode | variant | req/s | p50 ms | p99 ms | server CPU ms/req | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, _, _ in MODES:
        for v in variants:
            r = res[v.name]["runs"][mode]
            same_store = next(x.name for x in variants if x.store == v.store)
            ratio = cpu_ratio(res, v.name, same_store, mode)
            errors = f" ({sum(r['errors'].values())} errors)" if r["errors"] else ""
            lines.append(
                f"| {mode} | {v.label}{errors} | {r['throughput']:.0f} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['server_cpu_ms_per_pred']:.3f} | {ratio:.2f} |"
            )
    lines += ["", summary["verdict"], ""]
    with out.open("a") as fh:
        fh.write("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comparison", choices=list(COMPARISONS))
    parser.add_argument("--base", help="revisions: the revision to compare against")
    parser.add_argument("--seconds", type=float, default=30.0, help="per variant and mode")
    parser.add_argument("--slice", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serving-benchmark.md")
    args = parser.parse_args()
    args.models = ["lr"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(ROOT))
    from benchmarks import serving
    from components.common.env import TELEMETRY_OFF

    pick, judge, title = COMPARISONS[args.comparison]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seamless-serving-ab-") as name:
        tmp = Path(name)
        try:
            variants = pick(args, tmp)
            ws, built, yamls, base_config = serving.build(args, tmp)
            logs = tmp / "logs"
            logs.mkdir()
            env = {
                **os.environ,
                **TELEMETRY_OFF,
                "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}",
                "SEAMLESS_WORKSPACE": str(ws),
                "SEAMLESS_SERVE_TOKENS": json.dumps({serving.TOKEN: "predict"}),
            }
            env.pop("SEAMLESS_DERIVED_ENDPOINTS", None)
            base = {
                "ids": random.Random(0).sample(built["entities"], len(built["entities"])),
                "feature_service": base_config.features.service,
                "key": base_config.entity_key(),
            }
            load0 = os.getloadavg()
            with serving.redis_server(tmp) as connection:
                serving.redis_repo(ws, base_config, connection)
                results = measure(variants, ws, env, logs, base, args, yamls["lr"])
            load1 = os.getloadavg()
        finally:
            if (tmp / "base").exists():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "base")],
                    check=False, capture_output=True,
                )  # fmt: skip
    checks = [r.pop("check") for r in results.values()]
    diff = max(abs(c[k] - checks[0][k]) for c in checks for k in checks[0])
    reads = {v.name: results[v.name]["readyz"]["feature_reads"] for v in variants}
    ok, text = judge(results, variants)
    summary = {
        "title": title,
        "argv": sys.argv[1:],
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "seconds": args.seconds,
        "slice": args.slice,
        "versions": versions(),
        "head": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "loadavg_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "score_max_abs_diff": diff,
        "feature_reads": reads,
        "results": results,
        "verdict_ok": ok,
        "verdict": text,
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    if diff > 1e-6:
        raise SystemExit(f"scores differ between variants by {diff}: not the same lookups")
    wrong = {n: r for n, r in reads.items() if r != next(v.store for v in variants if v.name == n)}
    if wrong:
        raise SystemExit(f"a variant did not read its store directly: {wrong}")
    write_markdown(summary, variants, args.out)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_serve":
        serve_with_client(sys.argv[2], sys.argv[3:])
    else:
        main()
