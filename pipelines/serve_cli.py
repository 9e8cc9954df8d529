"""`seamless serve`: the online serving app under uvicorn.

Register in pipelines/cli.py with `app.command("serve")(serve_cmd)`. Also runnable as
`python -m pipelines.serve_cli --host 127.0.0.1 --port 8080 ...` (used by the tests).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from components.serve.settings import SPOOL_MAX_BYTES
from pipelines.cli_options import LogLevelOpt
from pipelines.output import NoAuthOpt, WsConfigOpt


def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    config: WsConfigOpt = None,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (MLflow store, Feast repo, prediction logs); default: "
            "SEAMLESS_WORKSPACE or ./.seamless, endpoints from the environment.",
        ),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(help="Seconds between checks of the champion alias (0: off).")
    ] = 30.0,
    max_batch: Annotated[int, typer.Option(help="Largest batch accepted (else 413).")] = 1000,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            envvar="SEAMLESS_SERVE_MAX_BODY_BYTES", help="Largest request body (else 413)."
        ),
    ] = 8 * 1024 * 1024,
    max_concurrency: Annotated[
        int, typer.Option(help="Prediction requests in flight (beyond: 429).")
    ] = 32,
    max_queue_ms: Annotated[
        float,
        typer.Option(
            envvar="SEAMLESS_SERVE_MAX_QUEUE_MS",
            help="Queueing budget in ms: while the event loop lags more, prediction "
            "requests get 503 + Retry-After at once (0: off).",
        ),
    ] = 50.0,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            envvar="SEAMLESS_SERVE_TOKENS_FILE", help="File of 'token:role[,role]' lines."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            envvar="SEAMLESS_SERVE_TLS_CERT",
            help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(envvar="SEAMLESS_SERVE_TLS_KEY", help="The certificate's PEM private key."),
    ] = None,
    no_auth: NoAuthOpt = False,
    log_url: Annotated[
        str | None,
        typer.Option(
            envvar="SEAMLESS_SERVE_LOG_URL",
            show_envvar=True,
            help="Log predictions and feedback to PostgreSQL tables (postgresql://user@host"
            ":port/db; password from the URL or PGPASSWORD) instead of workspace files.",
        ),
    ] = None,
    log_sync: Annotated[
        str,
        typer.Option(
            envvar="SEAMLESS_SERVE_LOG_SYNC",
            show_envvar=True,
            help="fsync: answer a prediction once its log record is on disk; write: once "
            "written, fsync every second (a killed server loses nothing it answered, an OS "
            "crash up to a second).",
        ),
    ] = "fsync",
    spool_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="SEAMLESS_SERVE_SPOOL_DIR",
            show_envvar=True,
            help="With --log-url: folder where log records are spooled (fsynced) while "
            "PostgreSQL is unreachable, drained in order once it is back; default "
            "<workspace>/spool.",
        ),
    ] = None,
    spool_max_bytes: Annotated[
        int,
        typer.Option(
            envvar="SEAMLESS_SERVE_SPOOL_MAX_BYTES",
            show_envvar=True,
            help="With --log-url: most bytes each log may spool; beyond it 503 and not "
            "ready until drained (0: no spool, an outage means 503).",
        ),
    ] = SPOOL_MAX_BYTES,
    log_level: LogLevelOpt = "info",
) -> None:
    """Serve the champion model: /v1/predict, Open Inference Protocol v2, /metrics.

    Tokens: --tokens-file / SEAMLESS_SERVE_TOKENS_FILE and/or SEAMLESS_SERVE_TOKENS (JSON),
    and/or JWTs of an OIDC provider (SEAMLESS_SERVE_OIDC_ISSUER and _AUDIENCE; see
    components/serve/README.md); without any, the server refuses to start unless
    --no-auth is given.

    Example: seamless serve --workspace .seamless --port 8080 --no-auth
    """
    import os

    import uvicorn

    from components.serve.api.app import create_app
    from components.serve.settings import ServeSettings, oidc_from_env
    from pipelines.local import use_workspace

    tls = tls_files(tls_cert, tls_key)
    config_path = serve_config(config, workspace)
    if workspace is not None:
        use_workspace(workspace)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = ServeSettings(
        config_path=config_path,
        poll_seconds=poll_seconds,
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        max_concurrency=max_concurrency,
        max_queue_ms=max_queue_ms,
        tokens_file=tokens_file,
        tokens_json=os.environ.get("SEAMLESS_SERVE_TOKENS") or None,
        auth_disabled=no_auth,
        log_url=log_url or None,
        log_sync=log_sync,
        spool_dir=spool_dir,
        spool_max_bytes=spool_max_bytes,
        **oidc_from_env(os.environ),  # type: ignore[arg-type]
    )
    app = create_app(settings)
    # One process: the model poller and the prediction log writer are per process.
    # Access lines are INFO: above that they would be built per request, then dropped.
    access_log = log_level.lower() in ("trace", "debug", "info")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        workers=1,
        access_log=access_log,
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
    )


def tls_files(cert: Path | None, key: Path | None) -> tuple[str | None, str | None]:
    """uvicorn's TLS arguments, checked before anything starts: both files or neither,
    and a key that belongs to the certificate."""
    import ssl

    from components.common.errors import SeamlessError

    if cert is None and key is None:
        return None, None
    if cert is None or key is None:
        raise SeamlessError("HTTPS needs both --tls-cert and --tls-key.")
    for path in (cert, key):
        if not path.is_file():
            raise SeamlessError(f"TLS file {path} does not exist.")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise SeamlessError(
            f"--tls-cert {cert} and --tls-key {key} are not a PEM certificate and its key "
            f"({exc.__class__.__name__})."
        ) from None
    return str(cert), str(key)


def serve_config(config: Path | None, workspace: Path | None) -> Path:
    """The config served: --config, which must match the workspace's recorded config, else
    the recorded one, else the bundled demo (pipelines/workspace.py). Without --workspace,
    the workspace is SEAMLESS_WORKSPACE or ./.seamless."""
    from components.common.env import workspace as default_workspace
    from pipelines.workspace import resolve_config

    return resolve_config(config, workspace if workspace is not None else default_workspace())


def main() -> None:
    from pipelines.output import run_alone

    run_alone(serve_cmd)


if __name__ == "__main__":
    main()
