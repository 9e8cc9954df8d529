"""`seamless ui`: the read-only dashboard (components/dashboard/) under uvicorn.

Registered in pipelines/cli.py with `app.command("ui")(ui_cmd)`. Also runnable as
`python -m pipelines.ui_cli --host 127.0.0.1 --port 8765 ...` (used by the tests).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli_options import LogLevelOpt
from pipelines.output import NoAuthOpt


class _NoQueryStrings(logging.Filter):
    """uvicorn's access lines without query strings: `/login?token=...` must not be logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def ui_cmd(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8765,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder to show; default: SEAMLESS_WORKSPACE or ./.seamless, "
            "stores from the environment (MLFLOW_TRACKING_URI, SEAMLESS_AUDIT_URL, ...).",
        ),
    ] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            envvar="SEAMLESS_SERVE_TOKENS_FILE",
            help="File of 'token:role' lines, serving's (predict: every page but the audit "
            "trail; admin: all).",
        ),
    ] = None,
    no_auth: NoAuthOpt = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this PEM certificate (chain); needs --tls-key."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's PEM private key.")] = None,
    log_level: LogLevelOpt = "info",
) -> None:
    """Serve the dashboard: pipeline runs, data, models, monitoring, lineage, audit trail.

    Tokens are serving's: --tokens-file / SEAMLESS_SERVE_TOKENS_FILE, SEAMLESS_SERVE_TOKENS
    (JSON) and/or OIDC JWTs (SEAMLESS_SERVE_OIDC_*); without any, it refuses to start
    unless --no-auth is given. A browser signs in once at /login (or opens
    /login?token=...&next=/models) and then carries a session cookie.

    Example: seamless ui --workspace .seamless --tokens-file tokens.txt
    """
    import uvicorn

    from components.common.errors import SeamlessError
    from components.dashboard.app import create_app
    from components.dashboard.settings import DashboardSettings
    from pipelines.serve_cli import tls_files

    tls = tls_files(tls_cert, tls_key)
    if workspace is not None:
        if not workspace.is_dir():
            raise SeamlessError(f"Workspace {workspace} does not exist.")
        from pipelines.local import use_workspace

        use_workspace(workspace)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = DashboardSettings.from_env(
        tokens_file=tokens_file,
        auth_disabled=no_auth or None,
        secure_cookies=tls[0] is not None,
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        workers=1,
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
    )
    # After uvicorn configured its loggers, so the filter stays on the access logger.
    logging.getLogger("uvicorn.access").addFilter(_NoQueryStrings())
    uvicorn.Server(config).run()


def main() -> None:
    from pipelines.output import run_alone

    run_alone(ui_cmd)


if __name__ == "__main__":
    main()
