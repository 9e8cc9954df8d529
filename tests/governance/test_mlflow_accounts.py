"""The dashboard's READ-only MLflow account (issue #16 part 1), against a real
`mlflow server --app-name basic-auth` run with the flags and basic_auth.ini of
manifests/base/mlflow (`--enable-workspaces` among them; SQLite stores in tmp, plain HTTP
on 127.0.0.1: TLS is tests/serving/test_mlflow_tls.py's subject).

`ensure_viewer` is run twice before the admin creates anything, so the `*` grants must
cover resources created later. The viewer then reads what the dashboard reads, through
the dashboard's own functions, and every change is refused, creating new experiments,
registered models, prompts, gateway secrets and MCP servers included (MLflow refuses
those without a grant on the workspace), while the admin and a workspace member still
create."""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.postgres import free_port
from tests.helpers.process import http_daemon
from tests.helpers.require import require_module

pytestmark = [pytest.mark.governance, pytest.mark.slow]

MLFLOW = Path(sys.executable).parent / "mlflow"
MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "base" / "mlflow"
ADMIN = ("admin", "admin-password-1234")
VIEWER = ("dashboard", "viewer-password-5678")
MODEL = "churn"

# MLflow's basic-auth app needs Flask-WTF (skips here without it, fails in CI).
require_module(
    "flask_wtf", "MLflow's basic-auth app needs Flask-WTF: pip install -e '.[dev]' (make venv)"
)


def auth_server_env(ini: Path) -> dict[str, str]:
    """The environment of a basic-auth `mlflow server` with `ini` as its auth config and
    ADMIN as its admin."""
    return {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key-0123456789",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def _manifest_auth_flags() -> list[str]:
    """The Deployment's flags that decide who may do what: the auth app and workspaces
    (the rest, stores, TLS and hosts, are the cluster's)."""
    import yaml

    deployment = yaml.safe_load((MANIFEST / "deployment.yaml").read_text())
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = [a for a in args if a.startswith(("--app-name", "--enable-workspaces"))]
    assert "--app-name=basic-auth" in flags, flags
    return flags


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-auth")
    # The manifests' basic_auth.ini with a SQLite database in place of PostgreSQL.
    config = configparser.ConfigParser()
    config.read(MANIFEST / "basic_auth.ini")
    config["mlflow"]["database_uri"] = f"sqlite:///{root / 'auth.db'}"
    ini = root / "basic_auth.ini"
    with ini.open("w") as f:
        config.write(f)
    port = free_port()
    cmd = [
        str(MLFLOW), "server", *_manifest_auth_flags(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    env = auth_server_env(ini)
    with http_daemon(cmd, root / "server.log", f"http://127.0.0.1:{port}/health",
                     timeout_s=180, group=True, env=env):  # fmt: skip
        yield f"http://127.0.0.1:{port}"


def _client(server: str) -> Any:
    """A client whose model registry is this server too: an earlier test in the same
    process may have set MLflow's global registry URI (mlflow.set_registry_uri), which
    MlflowClient(server) alone would still use for every registry call."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server, registry_uri=server)


def _as(monkeypatch: pytest.MonkeyPatch, user: tuple[str, str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


@pytest.fixture(scope="module")
def world(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The viewer set up (twice: first with another password), then, as the admin, an
    experiment with a monitoring run (metrics, params, an artifact) and a registered
    model with two versions and the champion alias."""

    from components.governance.mlflow_accounts import ensure_viewer

    mp = pytest.MonkeyPatch()
    _as(mp, ADMIN)
    first = ensure_viewer(server, VIEWER[0], "an-older-password-000")
    second = ensure_viewer(server, VIEWER[0], VIEWER[1])
    admin = _client(server)
    experiment = admin.create_experiment("created-after-the-viewer")
    run = admin.create_run(
        experiment,
        tags={"seamless.stage": "monitor", "seamless.model_name": MODEL,
              "seamless.model_version": "2", "seamless.decision": "keep"},
    )  # fmt: skip
    run_id = run.info.run_id
    admin.log_metric(run_id, "psi.age", 0.05)
    admin.log_metric(run_id, "live_roc_auc", 0.81)
    admin.log_param(run_id, "window", "7d")
    note = tmp_path_factory.mktemp("artifact") / "note.txt"
    note.write_text("hello")
    admin.log_artifact(run_id, str(note))
    admin.set_terminated(run_id)
    admin.create_registered_model(MODEL, description="the churn model")
    for _ in range(2):
        admin.create_model_version(
            MODEL, f"runs:/{run_id}/note.txt", run_id, tags={"holdout.roc_auc": "0.8"}
        )
    admin.set_registered_model_alias(MODEL, "champion", "2")
    yield {"first": first, "second": second, "experiment": experiment, "run_id": run_id}
    mp.undo()


@pytest.fixture()
def viewer(server: str, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:

    _as(monkeypatch, VIEWER)
    return _client(server)


def test_ensure_viewer_is_idempotent(server: str, world: dict[str, Any]) -> None:
    first, second = world["first"], world["second"]
    assert first.user_created and first.role_created and first.role_assigned
    assert first.grants_added == ["READ on experiment *", "READ on registered_model *"]
    assert not (second.user_created or second.role_created or second.role_assigned)
    assert second.grants_added == [] and second.grants_removed == []
    assert first.creation_refused and second.creation_refused
    assert "creating experiments and models refused (workspaces on)" in second.summary()


def test_the_summary_warns_when_the_server_lets_the_viewer_create() -> None:
    from components.governance.mlflow_accounts import ViewerOutcome

    outcome = ViewerOutcome(username="dashboard", role="seamless-viewer")
    outcome.creation_refused = False
    assert "WARNING: the server runs without workspaces" in outcome.summary()


def test_viewer_reads_experiments_runs_and_artifacts(
    viewer: Any, world: dict[str, Any], tmp_path: Path
) -> None:
    names = {e.name for e in viewer.search_experiments()}
    assert "created-after-the-viewer" in names
    runs = viewer.search_runs([world["experiment"]])
    assert [r.info.run_id for r in runs] == [world["run_id"]]
    run = viewer.get_run(world["run_id"])
    assert run.data.metrics["live_roc_auc"] == pytest.approx(0.81)
    assert run.data.params == {"window": "7d"}
    assert len(viewer.get_metric_history(world["run_id"], "psi.age")) == 1
    assert [a.path for a in viewer.list_artifacts(world["run_id"])] == ["note.txt"]
    local = viewer.download_artifacts(world["run_id"], "note.txt", str(tmp_path))
    assert Path(local).read_text() == "hello"


def test_viewer_reads_models_versions_and_aliases(viewer: Any) -> None:
    assert [m.name for m in viewer.search_registered_models()] == [MODEL]
    assert viewer.get_registered_model(MODEL).aliases == {"champion": "2"}
    assert len(viewer.search_model_versions(f"name = '{MODEL}'")) == 2
    assert viewer.get_model_version_by_alias(MODEL, "champion").version == "2"
    assert viewer.get_model_version(MODEL, "1").tags["holdout.roc_auc"] == "0.8"


def test_the_dashboards_reading_code_works_as_the_viewer(viewer: Any) -> None:
    from components.dashboard.models import list_models, model_overview, model_version
    from components.dashboard.monitoring import latest_runs_as_prometheus, monitoring_runs

    (listed,) = list_models(viewer)
    assert listed["name"] == MODEL and listed["aliases"] == {"champion": "2"}
    overview = model_overview(viewer, MODEL, [])
    assert overview is not None
    assert [v["version"] for v in overview["versions"]] == ["2", "1"]
    assert overview["aliases"]["champion"] == "2"
    one = model_version(viewer, MODEL, "2", [])
    assert one is not None and one["holdout"] == {"roc_auc": 0.8}
    (monitored,) = monitoring_runs(viewer, MODEL)
    assert monitored["psi"] == {"age": 0.05} and monitored["decision"] == "keep"
    assert b'seamless_monitor_last_run_timestamp_seconds{model="churn"' in (
        latest_runs_as_prometheus(viewer)
    )


def _refused(call: Any) -> str:
    from mlflow.exceptions import MlflowException, RestException

    with pytest.raises((MlflowException, RestException, OSError)) as caught:
        call()
    text = str(caught.value)
    assert "403" in text or "PERMISSION_DENIED" in text, text
    return text


def test_viewer_changes_nothing(viewer: Any, world: dict[str, Any], tmp_path: Path) -> None:
    run_id, experiment = world["run_id"], world["experiment"]
    # (creating new containers: test_viewer_creates_nothing_new)
    note = tmp_path / "again.txt"
    note.write_text("x")
    attempts = {
        "create_run": lambda: viewer.create_run(experiment),
        "create_logged_model": lambda: viewer.create_logged_model(experiment, name="m"),
        "log_metric": lambda: viewer.log_metric(run_id, "live_roc_auc", 0.1),
        "log_param": lambda: viewer.log_param(run_id, "other", "1"),
        "set_tag": lambda: viewer.set_tag(run_id, "seamless.decision", "promote"),
        "log_artifact": lambda: viewer.log_artifact(run_id, str(note)),
        "delete_run": lambda: viewer.delete_run(run_id),
        "delete_experiment": lambda: viewer.delete_experiment(experiment),
        "create_model_version": lambda: viewer.create_model_version(
            MODEL, f"runs:/{run_id}/note.txt", run_id
        ),
        "set_registered_model_alias": lambda: viewer.set_registered_model_alias(
            MODEL, "champion", "1"
        ),
        "delete_registered_model_alias": lambda: viewer.delete_registered_model_alias(
            MODEL, "champion"
        ),
        "set_model_version_tag": lambda: viewer.set_model_version_tag(MODEL, "2", "k", "v"),
        "delete_model_version": lambda: viewer.delete_model_version(MODEL, "1"),
        "delete_registered_model": lambda: viewer.delete_registered_model(MODEL),
    }
    for name, call in attempts.items():
        try:
            _refused(call)
        except AssertionError as exc:  # name the write that went through
            raise AssertionError(f"the viewer's {name} was not refused: {exc}") from exc
    # Nothing moved.
    assert viewer.get_registered_model(MODEL).aliases == {"champion": "2"}
    assert len(viewer.search_model_versions(f"name = '{MODEL}'")) == 2
    assert viewer.get_run(run_id).data.tags["seamless.decision"] == "keep"


# What creates a new container, on every path MLflow 3.17 serves it (REST and the UI's
# ajax-api): a prompt is a registered model with a tag; gateway secrets and MCP servers are
# workspace-level too. Logged models live in an experiment (test_viewer_changes_nothing).
CREATES: dict[str, tuple[str, dict[str, Any]]] = {
    **{
        f"experiment {api}": (f"/{api}/2.0/mlflow/experiments/create", {"name": "new-exp"})
        for api in ("api", "ajax-api")
    },
    **{
        f"registered model {api}": (
            f"/{api}/2.0/mlflow/registered-models/create",
            {"name": "new-model"},
        )
        for api in ("api", "ajax-api")
    },
    "prompt": (
        "/api/2.0/mlflow/registered-models/create",
        {"name": "new-prompt", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]},
    ),
    **{
        f"gateway secret {api}": (
            f"/{api}/3.0/mlflow/gateway/secrets/create",
            {"secret_name": "new-secret", "secret_value": {"api_key": "k"}, "provider": "openai"},
        )
        for api in ("api", "ajax-api")
    },
    "mcp server": ("/api/3.0/mlflow/mcp-servers", {"name": "io.example/new-server"}),
}


def _post(server: str, user: tuple[str, str], path: str, body: dict[str, Any]) -> Any:
    import requests

    return requests.post(f"{server}{path}", json=body, auth=user, timeout=30)


def test_viewer_creates_nothing_new(viewer: Any, server: str) -> None:
    """MLflow's basic-auth app without workspaces lets every signed-in user create these
    (and then manage them); with `--enable-workspaces` creating needs a workspace grant,
    which the viewer's role does not have."""
    _refused(lambda: viewer.create_experiment("made-by-the-viewer"))
    _refused(lambda: viewer.create_registered_model("made-by-the-viewer"))
    went_through = {
        what: f"{resp.status_code} {resp.text[:200]}"
        for what, (path, body) in CREATES.items()
        if (resp := _post(server, VIEWER, path, body)).status_code != 403
    }
    assert went_through == {}, went_through
    names = {e.name for e in viewer.search_experiments()}
    assert not names & {"made-by-the-viewer", "new-exp"}, names
    models = {m.name for m in viewer.search_registered_models()}
    assert not models & {"made-by-the-viewer", "new-model", "new-prompt"}, models


def test_the_admin_and_a_workspace_member_still_create(
    server: str, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating is the workspace's right: the admin has it, a user given USE on
    `workspace *` has it (and manages what it made), a user with no role in the workspace
    has not. The viewer still reads what the member made (READ on `*`)."""
    from mlflow.server.auth.client import AuthServiceClient

    _as(monkeypatch, ADMIN)
    admin = _client(server)
    assert admin.create_experiment("made-by-the-admin")
    assert admin.create_registered_model("made-by-the-admin").name == "made-by-the-admin"
    auth = AuthServiceClient(server)
    member, outsider = ("writer", "writer-password-1234"), ("outsider", "outsider-pass-1234")
    for user in (member, outsider):
        auth.create_user(*user)
    writers = auth.create_role("default", "seamless-writers")
    auth.add_role_permission(writers.id, "workspace", "*", "USE")
    auth.assign_role(member[0], writers.id)

    _as(monkeypatch, member)
    writer = _client(server)
    experiment = writer.create_experiment("made-by-a-member")
    writer.create_run(experiment)
    assert writer.create_registered_model("made-by-a-member").name == "made-by-a-member"
    path = CREATES["experiment ajax-api"][0]
    resp = _post(server, member, path, {"name": "made-by-a-member-in-the-ui"})
    assert resp.status_code == 200, resp.text

    _as(monkeypatch, outsider)
    _refused(lambda: _client(server).create_experiment("made-by-an-outsider"))
    _refused(lambda: _client(server).create_registered_model("made-by-an-outsider"))

    _as(monkeypatch, VIEWER)
    viewer = _client(server)
    assert viewer.get_experiment_by_name("made-by-a-member") is not None
    assert viewer.get_registered_model("made-by-a-member").name == "made-by-a-member"


def test_admin_failures_are_one_sentence(
    server: str, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.common.errors import SeamlessError
    from components.governance.mlflow_accounts import ensure_viewer

    _as(monkeypatch, VIEWER)
    with pytest.raises(SeamlessError, match="is not an MLflow admin"):
        ensure_viewer(server, "someone", "some-password-123")
    _as(monkeypatch, (ADMIN[0], "wrong-password"))
    with pytest.raises(SeamlessError, match="refused the credentials of 'admin'"):
        ensure_viewer(server, "someone", "some-password-123")
    _as(monkeypatch, ADMIN)
    with pytest.raises(SeamlessError, match="cannot be reached"):
        ensure_viewer(f"http://127.0.0.1:{free_port()}", "someone", "some-password-123")
    with pytest.raises(SeamlessError, match="is the admin account"):
        ensure_viewer(server, ADMIN[0], "some-password-123")


def test_cli_runs_it_from_the_environment(
    server: str, world: dict[str, Any], tmp_path: Path
) -> None:
    import subprocess

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "MLFLOW_TRACKING_USERNAME": ADMIN[0],
        "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
        "VIEWER_NAME": VIEWER[0],
        "VIEWER_PASSWORD": VIEWER[1],
    }
    seamless = Path(sys.executable).parent / "seamless"
    done = subprocess.run(
        [str(seamless), "mlflow", "ensure-viewer", "--username-env", "VIEWER_NAME",
         "--password-env", "VIEWER_PASSWORD"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "role already assigned" in done.stdout
    env.pop("VIEWER_PASSWORD")
    done = subprocess.run(
        [str(seamless), "mlflow", "ensure-viewer", "--username", "x"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "SEAMLESS_VIEWER_PASSWORD" in done.stdout + done.stderr


def test_ensure_viewer_repairs_a_widened_account(
    server: str, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone gave the role EDIT and the right to create, granted the viewer EDIT on an
    experiment by name and made it an admin: the next run takes all of it back, so the Job
    restores READ-only (what a viewer created before workspaces were on stays, but the
    viewer no longer manages it)."""
    from mlflow.server.auth.client import AuthServiceClient

    from components.governance.mlflow_accounts import ensure_viewer

    _as(monkeypatch, ADMIN)
    auth = AuthServiceClient(server)
    (role,) = [r for r in auth.list_roles("default") if r.name == "seamless-viewer"]
    (granted,) = [
        p for p in auth.list_role_permissions(role.id) if p.resource_type == "registered_model"
    ]
    auth.update_role_permission(granted.id, "EDIT")
    auth.add_role_permission(role.id, "run", "*", "EDIT")
    auth.add_role_permission(role.id, "workspace", "*", "USE")
    auth.grant_user_permission(VIEWER[0], "experiment", world["experiment"], "EDIT")
    auth.update_user_admin(VIEWER[0], True)
    _as(monkeypatch, VIEWER)
    widened = _post(
        server, VIEWER, CREATES["experiment api"][0], {"name": "made-by-a-widened-viewer"}
    )
    assert widened.status_code == 200, widened.text  # the grants did widen it
    _as(monkeypatch, ADMIN)
    repaired = ensure_viewer(server, VIEWER[0], VIEWER[1])
    assert repaired.admin_revoked
    assert sorted(repaired.grants_removed) == [
        "EDIT on registered_model *",
        "EDIT on run *",
        "USE on workspace *",
    ]
    assert repaired.grants_added == ["READ on registered_model *"]
    # MANAGE on the experiment it just created, and the EDIT given by name.
    assert sorted(repaired.own_grants_removed) == [
        f"EDIT on experiment {world['experiment']}",
        f"MANAGE on experiment {widened.json()['experiment_id']}",
    ]
    assert not auth.get_user(VIEWER[0]).is_admin
    _as(monkeypatch, VIEWER)
    viewer = _client(server)
    _refused(lambda: viewer.set_registered_model_alias(MODEL, "x", "1"))
    _refused(lambda: viewer.set_experiment_tag(world["experiment"], "k", "v"))
    _refused(lambda: viewer.set_experiment_tag(widened.json()["experiment_id"], "k", "v"))
    assert _post(server, VIEWER, *CREATES["registered model api"]).status_code == 403
