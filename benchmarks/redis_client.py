"""Benchmark: serving's Redis client, hand-written (resp.py) against redis-py, same run.

Issue #18 asks whether `components/serve/resp.py`, a hand-written Redis protocol client,
still earns its keep: if redis-py's asyncio client with the hiredis parser costs the
server no more than 5% more CPU per prediction, the library replaces it. Variants, each a
`seamless serve` of the same champion (logistic regression, ONNX predictor, file log,
`--log-level warning`, `OMP_NUM_THREADS=1`) on the same Feast Redis online store (a
`redis-server` this script starts on loopback):

- `resp`: as shipped: resp.py's one pipelined connection, on the event loop;
- `redis-py-async`: `redis.asyncio.Redis` (hiredis parser when installed: the run
  records `redis.utils.HIREDIS_AVAILABLE`), on the event loop, through the same reader
  (HMGET; a non-transactional pipeline for a batch), its errors mapped to the ones the
  server answers 503 for;
- `redis-py-threads`: no async client: redis-py's sync client in worker threads (what
  the server does for Redis Cluster and Sentinel).

The variants are swapped in by a launcher (`redis_client.py _serve VARIANT ...`) that
replaces `components.serve.features._async_redis` before running the CLI: nothing in
the package changes. Load and measurement are benchmarks/serving.py's: a separate
client process, closed loop, slices interleaved across the variants in a rotated order,
CPU seconds of each server's process tree from /proc. Modes: 1 and 8 clients with one id
per request, 8 clients with 16 ids per request. Scores must agree across variants.

Usage: python benchmarks/redis_client.py [--seconds 30] [--slice 5] [--rows 20000]
       [--out docs/serving-benchmark.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import serving  # noqa: E402 (after the path)

VARIANTS = {
    "resp": "resp.py (as shipped)",
    "redis-py-async": "redis-py asyncio + hiredis",
    "redis-py-threads": "redis-py sync, worker threads",
}
MODES = [("conc-1", 1, 1), ("conc-8", 8, 1), ("conc-8-batch-16", 8, 16)]
GOAL = 1.05  # the library replaces resp.py at or below 5% more server CPU per prediction


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

    from components.serve.resp import RespError, RespUnavailable

    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise RespUnavailable(str(exc)) from exc
    except redis.exceptions.ResponseError as exc:
        raise RespError(str(exc)) from exc


def serve_variant(variant: str, argv: list[str]) -> None:
    """`seamless serve ARGV` with the variant's async Redis client."""
    import components.serve.features as features

    if variant == "redis-py-async":

        def redis_py(online: Any) -> RedisPyAsync | None:
            from feast.infra.online_stores.redis import RedisOnlineStore

            nodes, kwargs = RedisOnlineStore._parse_connection_string(online.connection_string)
            return RedisPyAsync(nodes[0]["host"], int(nodes[0]["port"]), kwargs)

        features._async_redis = redis_py  # type: ignore[assignment]
    elif variant == "redis-py-threads":
        features._async_redis = lambda online: None
    from pipelines.cli import main

    sys.argv = ["seamless", *argv]
    main()


def start(variant: str, servers: serving.Servers, ws: Path, env: dict, logs: Path,
          config_yaml: Path) -> tuple[dict, list[int], dict]:  # fmt: skip
    port = serving.free_port()
    args = ["serve", "--workspace", str(ws), "--port", str(port), "--config", str(config_yaml)]
    args += ["--log-level", "warning"]
    cmd = [sys.executable, __file__, "_serve", variant, *args]
    senv = {**env, **serving.ONE_THREAD, "SEAMLESS_FEAST_REPO": str(ws / "feast-redis")}
    proc = servers.start(cmd, senv, ws, logs / f"{variant}.log")
    ready = serving.wait_ready(port, "/readyz", proc)
    return {"kind": "seamless", "port": port}, [proc.pid], {
        "start_s": round(ready, 1), "readyz": serving.readyz(port)
    }  # fmt: skip


def measure(ws: Path, env: dict, logs: Path, base: dict, args: argparse.Namespace,
            config_yaml: Path) -> dict:  # fmt: skip
    servers = serving.Servers()
    names = list(VARIANTS)
    results: dict[str, dict] = {}
    try:
        up = {}
        for name in names:
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            up[name] = start(name, servers, ws, env, logs, config_yaml)
        for name, (spec, _, info) in up.items():
            warm = serving.client(
                {**base, **spec, "seconds": args.warmup, "concurrency": 2, "check": True}
            )
            results[name] = {**info, "check": warm["check"], "runs": {}}
        slices: dict[tuple[str, str], list[dict]] = {}
        cpu: Counter[tuple[str, str]] = Counter()
        rounds = max(1, math.ceil(args.seconds / args.slice))
        for r in range(rounds):
            print(f"round {r + 1}/{rounds} ...", file=sys.stderr, flush=True)
            order = names[r % len(names) :] + names[: r % len(names)]
            seconds = min(args.slice, args.seconds - r * args.slice)
            for mode, conc, batch in MODES:
                for name in order:
                    spec, roots, _ = up[name]
                    run = {**base, **spec, "seconds": seconds, "check": False,
                           "concurrency": conc, "batch": batch}  # fmt: skip
                    cpu0 = serving.tree_cpu(roots)
                    sl = serving.client(run)
                    cpu[name, mode] += serving.tree_cpu(roots) - cpu0
                    slices.setdefault((name, mode), []).append(sl)
        for (name, mode), sls in slices.items():
            results[name]["runs"][mode] = serving.stats(sls, cpu[name, mode])
        for name, (_, roots, _) in up.items():
            results[name]["server_rss_mib"] = serving.tree_rss_mib(roots)
    finally:
        servers.stop_all()
    return results


def versions() -> dict[str, Any]:
    import redis
    import redis.utils

    out: dict[str, Any] = {"redis-py": redis.__version__}
    out["hiredis_parser"] = bool(redis.utils.HIREDIS_AVAILABLE)
    for name in ("hiredis", "uvloop"):
        with contextlib.suppress(ImportError):
            out[name] = getattr(__import__(name), "__version__", "installed")
    return out


def write_markdown(summary: dict, out: Path) -> None:
    res = summary["results"]
    lines = [
        "",
        f"## Redis client: resp.py against redis-py ({summary['date']})",
        "",
        f"`python benchmarks/redis_client.py --seconds {summary['seconds']:g}` "
        f"({summary['cpus']} cores, {summary['rows']} rows; {summary['versions']}): "
        "the same `seamless serve` (tuned, ONNX predictor) on one Feast Redis store, "
        "three Redis clients, interleaved slices. Server CPU per request (ms), its ratio "
        "to resp.py, requests/s and latency:",
        "",
        "| mode | client | req/s | p50 ms | p99 ms | server CPU ms/req | vs resp.py |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, _, _ in MODES:
        ref = res["resp"]["runs"][mode]["server_cpu_ms_per_pred"]
        for name, label in VARIANTS.items():
            r = res[name]["runs"][mode]
            ratio = r["server_cpu_ms_per_pred"] / ref
            errors = f" ({sum(r['errors'].values())} errors)" if r["errors"] else ""
            lines.append(
                f"| {mode} | {label}{errors} | {r['throughput']:.0f} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['server_cpu_ms_per_pred']:.3f} | {ratio:.2f} |"
            )
    lines += ["", summary["verdict"], ""]
    with out.open("a") as fh:
        fh.write("\n".join(lines))


def verdict(results: dict) -> tuple[bool, str]:
    worst = max(
        results["redis-py-async"]["runs"][m]["server_cpu_ms_per_pred"]
        / results["resp"]["runs"][m]["server_cpu_ms_per_pred"]
        for m, _, _ in MODES
    )
    if worst <= GOAL:
        return True, (
            f"redis-py's asyncio client is within {GOAL - 1:.0%} of resp.py in every mode "
            f"(worst {worst:.2f}x): the library can replace the hand-written client."
        )
    return False, (
        f"redis-py's asyncio client costs up to {worst:.2f}x resp.py's server CPU per "
        f"request (the bar was {GOAL:.2f}x): resp.py stays."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per variant and mode")
    parser.add_argument("--slice", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serving-benchmark.md")
    args = parser.parse_args()
    args.models = ["lr"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from components.common.env import TELEMETRY_OFF

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seamless-redis-bench-") as name:
        tmp = Path(name)
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
            results = measure(ws, env, logs, base, args, yamls["lr"])
        load1 = os.getloadavg()
    checks = [r.pop("check") for r in results.values()]
    diff = max(abs(c[k] - checks[0][k]) for c in checks for k in checks[0])
    reads = {n: r["readyz"]["feature_reads"] for n, r in results.items()}
    replace, text = verdict(results)
    summary = {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "seconds": args.seconds,
        "versions": versions(),
        "loadavg_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "score_max_abs_diff": diff,
        "feature_reads": reads,
        "results": results,
        "replace_resp": replace,
        "verdict": text,
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    if diff > 1e-6:
        raise SystemExit(f"scores differ between variants by {diff}: not the same lookups")
    if any(r != "redis" for r in reads.values()):
        raise SystemExit(f"a variant did not read Redis directly: {reads}")
    write_markdown(summary, args.out)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_serve":
        serve_variant(sys.argv[2], sys.argv[3:])
    else:
        main()
