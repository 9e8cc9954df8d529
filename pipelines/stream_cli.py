"""`seamless stream consume|send|status`; registered by pipelines/cli.py:

from pipelines.stream_cli import stream_app
app.add_typer(stream_app, name="stream")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.output import JsonOpt, WsConfigOpt, stdout_console

stream_app = typer.Typer(
    help="Streaming features: events from Redis Streams into the Feast online and offline "
    "stores (docs/streaming.md).",
    no_args_is_help=True,
)
WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace whose Feast repo is written.")
]
RedisOpt = Annotated[
    str,
    typer.Option(
        "--redis-url",
        envvar="SEAMLESS_STREAM_REDIS_URL",
        help="Redis holding the stream, e.g. redis://:PASSWORD@redis:6379/0 "
        "(env SEAMLESS_STREAM_REDIS_URL; REDIS_PASSWORD is used when the URL has none).",
    ),
]
StreamOpt = Annotated[str, typer.Option("--stream", help="Redis stream key.")]
GroupOpt = Annotated[str, typer.Option("--group", help="Consumer group.")]
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@contextlib.contextmanager
def redis_errors(url: str, after: str = "") -> Iterator[None]:
    """Redis failing (down, refused, wrong password, TLS) as one sentence, exit 1: the
    URL without its password, the first line of the error, and `after` (what it means
    for the events)."""
    import redis

    try:
        yield
    except redis.exceptions.RedisError as exc:
        from urllib.parse import urlsplit

        from components.common.errors import SeamlessError

        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SeamlessError(f"Redis failed (stream at {where}): {first}.{after}") from None


def redis_client(url: str) -> Any:
    """A redis-py client (strings in, strings out); REDIS_PASSWORD fills a URL without one."""
    import redis

    password = os.environ.get("REDIS_PASSWORD") or None
    client = redis.Redis.from_url(url, decode_responses=True)
    if password and not client.connection_pool.connection_kwargs.get("password"):
        client = redis.Redis.from_url(url, decode_responses=True, password=password)
    return client


@stream_app.command("consume")
def consume_cmd(
    config: WsConfigOpt = None,
    workspace: WorkspaceOpt = Path(".seamless"),
    redis_url: RedisOpt = DEFAULT_REDIS,
    stream: StreamOpt = "seamless:features",
    group: GroupOpt = "seamless-stream",
    consumer: Annotated[
        str | None,
        typer.Option(help="Consumer name in the group (default: the host name, a pod's name)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Entries per read.")] = 500,
    claim_idle_s: Annotated[
        float,
        typer.Option(min=0.1, help="Take over entries pending this long at another consumer."),
    ] = 30.0,
    max_events: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many events (tests, demos).")
    ] = None,
    idle_exit_s: Annotated[
        float | None, typer.Option(min=0.1, help="Stop after this long without events.")
    ] = None,
    no_offline: Annotated[
        bool,
        typer.Option("--no-offline", help="Online only (benchmarks): training won't see them."),
    ] = False,
    compact_parts: Annotated[
        int,
        typer.Option(
            min=0,
            help="Compact a view's pushed-events log after this many parts written to it "
            "by this consumer (0: never; `seamless stream compact` does it on demand).",
        ),
    ] = 1000,
    heartbeat_file: Annotated[
        Path | None,
        typer.Option(
            help="Touched after every read of the stream (events or not): a liveness "
            "probe checks its age."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve Prometheus metrics at /metrics on this port (default: none).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Interface the metrics port binds (loopback by default).")
    ] = "127.0.0.1",
    metrics_tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve the metrics over HTTPS with this PEM certificate (chain)."),
    ] = None,
    metrics_tls_key: Annotated[
        Path | None, typer.Option(help="The metrics certificate's PEM private key.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Consume feature events until stopped (SIGTERM/SIGINT finish the batch in hand).

    Every event ends in one outcome, counted here and in Redis (`seamless stream status`):
    written (online and offline), late (offline only: a newer value is online),
    duplicate (event id seen before), malformed (on the dead-letter stream with the reason).

    Example: seamless stream consume --redis-url redis://127.0.0.1:6379/0 --idle-exit-s 5
    """
    from components.common.config import load_config
    from components.common.env import feast_repo_path
    from components.features.store import open_store
    from components.stream.consumer import Consumer, StreamSettings
    from pipelines.local import use_workspace
    from pipelines.output import require_access
    from pipelines.workspace import resolve_config

    cfg = load_config(resolve_config(config, workspace))
    use_workspace(workspace)
    require_access("materialize")  # it writes the feature store, as materialization does
    if not no_offline:
        from components.features.repo import require_durable_offline_root

        require_durable_offline_root()  # on a pod's disk the pushed-events log would vanish
    settings = StreamSettings(
        stream=stream, group=group, consumer=consumer or socket.gethostname(), batch=batch,
        claim_idle_ms=int(claim_idle_s * 1000), offline=not no_offline,
        compact_parts=compact_parts,
    )  # fmt: skip
    client = redis_client(redis_url)
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    worker = Consumer(cfg, feast_repo_path(), open_store(feast_repo_path()), client, settings)
    server = None
    if metrics_port is not None:
        from components.stream.metrics import StreamMetrics, serve
        from pipelines.serve_cli import tls_files

        cert, key = tls_files(metrics_tls_cert, metrics_tls_key)
        worker.metrics = StreamMetrics(client, stream, group)
        try:
            server = serve(worker.metrics, metrics_port, metrics_host, cert, key)
        except OSError as exc:
            from components.common.errors import SeamlessError

            raise SeamlessError(
                f"The metrics port {metrics_host}:{metrics_port} cannot be opened: "
                f"{exc.strerror or exc}."
            ) from None
        scheme = "https" if cert else "http"
        print(f"metrics at {scheme}://{metrics_host}:{metrics_port}/metrics", file=sys.stderr)
    print(f"consuming {stream} as {settings.group}/{settings.consumer}", file=sys.stderr)
    beat = heartbeat_file.touch if heartbeat_file is not None else None
    # The batch in hand is not acknowledged: a restart (or another consumer) takes it over.
    try:
        with redis_errors(redis_url, " The batch in hand was not acknowledged: it is read again."):
            total = worker.run(
                stop=lambda: bool(stopping),
                max_events=max_events,
                idle_exit_s=idle_exit_s,
                on_poll=beat,
            )
    finally:
        if server is not None:
            server.shutdown()
    summary = total.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    out = stdout_console()
    out.print(
        f"events {summary['events']}: written {summary['written']}, late {summary['late']}, "
        f"duplicate {summary['duplicate']}, malformed {summary['malformed']} "
        f"(redelivered {summary['redelivered']}); freshness p99 {summary['freshness_p99_s']} s",
        markup=False,
    )


@stream_app.command("compact")
def compact_cmd(
    config: WsConfigOpt = None,
    workspace: WorkspaceOpt = Path(".seamless"),
    view: Annotated[
        list[str] | None, typer.Option("--view", help="Only this view (repeatable).")
    ] = None,
    min_parts: Annotated[
        int, typer.Option(min=2, help="Compact a view only when it has this many parts.")
    ] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Merge each view's pushed-events parts into one file (docs/streaming.md).

    Safe while consumers write and training reads: the merged file is written (temp
    file, fsync, rename) before the parts it holds are deleted, and readers keep each
    event id once. Prints per view the parts before, the parts merged and the rows.

    Example: seamless stream compact --workspace .seamless --json
    """
    from components.common.config import load_config
    from components.common.env import feast_repo_path
    from components.common.errors import SeamlessError
    from components.stream.compaction import compact
    from pipelines.local import use_workspace
    from pipelines.output import require_access
    from pipelines.workspace import resolve_config

    cfg = load_config(resolve_config(config, workspace))
    use_workspace(workspace)
    require_access("materialize")  # it rewrites the offline store's pushed-events log
    known = [v.name for v in cfg.features.views]
    unknown = [v for v in view or [] if v not in known]
    if unknown:
        raise SeamlessError(f"--view {unknown[0]!r} is not a feature view of the config {known}.")
    done = [compact(feast_repo_path(), v, min_parts) for v in (view or known)]
    if as_json:
        print(json.dumps([asdict(d) for d in done], indent=2))
        return
    out = stdout_console()
    for d in done:
        what = f"{d.parts_merged} parts merged into {d.merged}" if d.merged else "nothing to do"
        out.print(f"{d.view}: {d.parts_before} parts, {what} ({d.rows} rows)", markup=False)


@stream_app.command("send")
def send_cmd(
    source: Annotated[Path, typer.Argument(help="JSON lines file of events ('-': stdin).")],
    redis_url: RedisOpt = DEFAULT_REDIS,
    stream: StreamOpt = "seamless:features",
) -> None:
    """Add events to the stream, one JSON object per line, as they are (the consumer
    checks them). Prints the number sent.

    Example: seamless stream send events.jsonl
    """
    from components.stream.events import EVENT_FIELD

    lines = sys.stdin if str(source) == "-" else source.open(encoding="utf-8")
    client = redis_client(redis_url)
    sent = 0
    again = " Sending the file again is safe: the consumer drops repeated event ids."
    with redis_errors(redis_url, again), client.pipeline(transaction=False) as pipe:
        for line in lines:
            if line.strip():
                pipe.xadd(stream, {EVENT_FIELD: line.strip()})
                sent += 1
        pipe.execute()
    stdout_console().print(f"sent {sent}", markup=False)


@stream_app.command("status")
def status_cmd(
    redis_url: RedisOpt = DEFAULT_REDIS,
    stream: StreamOpt = "seamless:features",
    group: GroupOpt = "seamless-stream",
    as_json: JsonOpt = False,
) -> None:
    """The group's outcome counters (all consumers, all restarts), pending entries and
    the latest dead letters with their reasons.

    Example: seamless stream status --json
    """
    from components.stream.consumer import StreamSettings, stream_status

    with redis_errors(redis_url):
        status = stream_status(redis_client(redis_url), StreamSettings(stream=stream, group=group))
    if as_json:
        print(json.dumps(status, indent=2))
        return
    out = stdout_console()
    counts = ", ".join(f"{k} {v}" for k, v in status["counts"].items())
    out.print(f"{stream} / {group}: {counts}; pending {status['pending']}", markup=False)
    for letter in status["dead_letters"]:
        out.print(f"  dead letter {letter['stream_id']}: {letter['error']}", markup=False)
