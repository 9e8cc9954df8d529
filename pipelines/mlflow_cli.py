"""`seamless mlflow ensure-viewer`; registered by pipelines/cli.py:

from pipelines.mlflow_cli import mlflow_app
app.add_typer(mlflow_app, name="mlflow")
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from pipelines.output import stdout_console

mlflow_app = typer.Typer(
    help="Accounts on the MLflow server (basic-auth app).", no_args_is_help=True
)


def _from_env(var: str, what: str) -> str:
    from components.common.errors import SeamlessError

    value = os.environ.get(var, "")
    if not value:
        raise SeamlessError(f"{var} (the viewer's {what}) is not set or empty.")
    return value


@mlflow_app.command("ensure-viewer")
def ensure_viewer_cmd(
    username: Annotated[
        str | None, typer.Option(help="The viewer's user name (or --username-env).")
    ] = None,
    username_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the user name.")
    ] = None,
    password_env: Annotated[
        str, typer.Option(help="Environment variable holding the viewer's password.")
    ] = "SEAMLESS_VIEWER_PASSWORD",
    role: Annotated[str, typer.Option(help="The READ-only role the viewer is given.")] = (
        "seamless-viewer"
    ),
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow server (default: MLFLOW_TRACKING_URI).")
    ] = None,
) -> None:
    """Create or update a READ-only MLflow user: READ on every experiment and registered
    model through one role, and none of its own grants (a server run with
    --enable-workspaces then refuses its creates too). Runs with an admin's
    MLFLOW_TRACKING_USERNAME/PASSWORD; safe to run again (the password is set to the given
    one).

    Example: SEAMLESS_VIEWER_PASSWORD=... seamless mlflow ensure-viewer --username dashboard
    """
    from components.common.errors import SeamlessError
    from components.governance.mlflow_accounts import ensure_viewer

    if (username is None) == (username_env is None):
        raise SeamlessError(
            "Give the viewer's user name with exactly one of --username, --username-env."
        )
    name = username if username is not None else _from_env(str(username_env), "user name")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        raise SeamlessError(
            "MLFLOW_TRACKING_URI (or --tracking-uri) must be the MLflow server's http(s) address."
        )
    outcome = ensure_viewer(uri, name, _from_env(password_env, "password"), role=role)
    stdout_console().print(f"MLflow viewer: {outcome.summary()}", markup=False)
