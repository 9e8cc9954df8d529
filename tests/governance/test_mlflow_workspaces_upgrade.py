"""A cluster deployed before MLflow ran with `--enable-workspaces` (issue #16): MLflow's
basic-auth app on PostgreSQL, as on the cluster, first without the flag, then restarted
with the Deployment's auth flags on the same two databases (what `make deploy` does).

Before: the viewer could create (and then managed what it made). After: the old
experiments, runs, artifacts and models read as before, without a migration; the viewer's
creates get 403; the Job's `ensure_viewer` takes away its MANAGE on what it made; the admin
still creates, with new artifacts under `workspaces/default/`."""

from __future__ import annotations

import configparser
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.governance.test_mlflow_accounts import (
    ADMIN,
    MANIFEST,
    MODEL,
    VIEWER,
    _as,
    _client,
    _manifest_auth_flags,
    _refused,
    auth_server_env,
)
from tests.helpers.postgres import PostgresServer, free_port, pg_server  # noqa: F401
from tests.helpers.process import http_daemon

pytestmark = [pytest.mark.governance, pytest.mark.slow]

MLFLOW = Path(sys.executable).parent / "mlflow"


@contextmanager
def _serve(pg: PostgresServer, root: Path, port: int, flags: list[str]) -> Iterator[str]:
    """The server with the manifests' basic_auth.ini, its stores in `pg`."""
    config = configparser.ConfigParser()
    config.read(MANIFEST / "basic_auth.ini")
    config["mlflow"]["database_uri"] = pg.url("mlflow_auth")
    ini = root / "basic_auth.ini"
    with ini.open("w") as f:
        config.write(f)
    cmd = [
        str(MLFLOW), "server", *flags,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", pg.url("mlflow"),
        "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
    ]  # fmt: skip
    env = auth_server_env(ini)
    log = root / f"server-{len(flags)}.log"
    with http_daemon(cmd, log, f"http://127.0.0.1:{port}/health",
                     timeout_s=180, group=True, env=env):  # fmt: skip
        yield f"http://127.0.0.1:{port}"


def test_turning_workspaces_on_keeps_the_data_and_closes_creating(
    pg_server: PostgresServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from components.governance.mlflow_accounts import ensure_viewer

    pg_server.execute("CREATE DATABASE mlflow", "CREATE DATABASE mlflow_auth")
    flags = _manifest_auth_flags()
    assert "--enable-workspaces" in flags, flags
    port = free_port()
    note = tmp_path / "note.txt"
    note.write_text("hello")
    ids: dict[str, Any] = {}

    with _serve(pg_server, tmp_path, port, [f for f in flags if f != "--enable-workspaces"]) as s:
        _as(monkeypatch, ADMIN)
        assert ensure_viewer(s, *VIEWER).creation_refused is False
        admin = _client(s)
        ids["experiment"] = admin.create_experiment("before")
        run = admin.create_run(ids["experiment"])
        ids["run"] = run.info.run_id
        admin.log_metric(ids["run"], "live_roc_auc", 0.81)
        admin.log_artifact(ids["run"], str(note))
        admin.set_terminated(ids["run"])
        admin.create_registered_model(MODEL)
        admin.create_model_version(MODEL, f"runs:/{ids['run']}/note.txt", ids["run"])
        admin.set_registered_model_alias(MODEL, "champion", "1")
        _as(monkeypatch, VIEWER)
        # The gap this closes: without workspaces the viewer creates, and manages that.
        ids["made"] = _client(s).create_experiment("made-by-the-viewer-before")

    with _serve(pg_server, tmp_path, port, flags) as s:
        _as(monkeypatch, VIEWER)
        viewer = _client(s)
        names = {e.name for e in viewer.search_experiments()}
        assert {"before", "made-by-the-viewer-before"} <= names, names
        assert viewer.get_run(ids["run"]).data.metrics["live_roc_auc"] == pytest.approx(0.81)
        local = viewer.download_artifacts(ids["run"], "note.txt", str(tmp_path / "down"))
        assert Path(local).read_text() == "hello"
        assert viewer.get_model_version_by_alias(MODEL, "champion").version == "1"
        _refused(lambda: viewer.create_experiment("made-by-the-viewer-after"))
        _refused(lambda: viewer.create_registered_model("made-by-the-viewer-after"))
        viewer.set_experiment_tag(ids["made"], "k", "v")  # still its own, until the Job runs

        _as(monkeypatch, ADMIN)
        outcome = ensure_viewer(s, *VIEWER)
        assert outcome.creation_refused is True
        assert outcome.own_grants_removed == [f"MANAGE on experiment {ids['made']}"]
        _as(monkeypatch, VIEWER)
        _refused(lambda: _client(s).set_experiment_tag(ids["made"], "k", "w"))
        assert _client(s).get_experiment(ids["made"]).tags["k"] == "v"

        _as(monkeypatch, ADMIN)
        admin = _client(s)
        after = admin.create_experiment("after")
        run_after = admin.create_run(after).info.run_id
        admin.log_artifact(run_after, str(note))
        assert admin.get_run(run_after).info.artifact_uri.startswith(
            "mlflow-artifacts:/workspaces/default/"
        )
        assert [a.path for a in admin.list_artifacts(run_after)] == ["note.txt"]
