"""Embedded local mode: run a pipeline with kfp.local against a workspace folder.

The workspace holds the MLflow store (SQLite + artifacts), the Feast repo (registry,
SQLite online store, Parquet offline store), the KFP pipeline root and the deployment
records. Endpoints are passed to the steps as environment variables, exactly as a
cluster passes them, so the components do not know which mode they run in.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig, load_config
from components.common.config_param import packed
from components.common.env import disable_telemetry
from components.common.errors import SeamlessError


@dataclass
class RunOutcome:
    validation: str
    """`pass`, `warn` or `fail`."""
    model_name: str
    version: str | None = None
    decision: str | None = None
    reason: str | None = None
    champion_version: str | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    compliance: str | None = None
    """The new version's compliance result: `pass`, `fail` or `none` (no policy)."""
    model_card: str | None = None
    """Where the new version's model card is in MLflow (`runs:/<run id>/model_card/v<n>`)."""
    run_dir: str = ""
    reports: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    log_file: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    """Per table rows, values coerced to null, label values mapped or left out of training, and the
    failed validation checks as sentences (pipelines/run_summary.py)."""
    notifications_not_sent: list[str] = field(default_factory=list)
    """Events of this run no receiver took (kept in the dead-letter file)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


log = logging.getLogger(__name__)
_DERIVED = "SEAMLESS_DERIVED_ENDPOINTS"
"""Which endpoint variables `use_workspace` derived itself (and may replace)."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_LINE = re.compile(r"Executing task '([\w-]+)'")


class StepLog(io.TextIOBase):
    """Stdout replacement: everything goes to the log file; step starts go to `on_step`.

    kfp.local prints every step's full executor input (the whole config included);
    users get a progress line instead and the log file for details.
    """

    def __init__(
        self,
        fh: Any,
        on_step: Callable[[str], None] | None,
        echo: Any = None,
    ) -> None:
        self._fh = fh
        self._on_step = on_step
        self._echo = echo

    def write(self, text: str) -> int:
        self._fh.write(text)
        if self._echo is not None:
            self._echo.write(text)
        if self._on_step and "Executing task" in text:
            m = _TASK_LINE.search(_ANSI.sub("", text))
            if m:
                self._on_step(m.group(1))
        return len(text)

    def flush(self) -> None:
        self._fh.flush()


def use_workspace(workspace: Path) -> dict[str, str]:
    """Point this process (and the steps it starts) at the workspace; returns the settings.

    Endpoints set by the user (a tracking server, a cluster's Feast repo) are kept; the
    ones an earlier call derived from another workspace are replaced, so one process can
    move between workspaces (tests, the demo loop) without writing into the wrong store.
    """
    workspace = workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    disable_telemetry()
    derived = set(filter(None, os.environ.get(_DERIVED, "").split(",")))
    defaults = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow' / 'mlflow.db'}",
        "SEAMLESS_FEAST_REPO": str(workspace / "feast"),
    }
    settings = {"SEAMLESS_WORKSPACE": str(workspace)}
    now_derived = []
    for key, value in defaults.items():
        if key in os.environ and key not in derived:
            settings[key] = os.environ[key]
        else:
            settings[key] = value
            now_derived.append(key)
    if "MLFLOW_TRACKING_URI" in now_derived:
        # Exported by MLflow for the previous store; meaningless for this one.
        for key in ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
            os.environ.pop(key, None)
    os.environ.update(settings)
    os.environ[_DERIVED] = ",".join(now_derived)
    _relocate(workspace, now_derived)
    return settings


def _relocate(workspace: Path, derived: list[str]) -> None:
    """A workspace moved or copied since its stores were written reads and writes its own
    files: the absolute locations MLflow and Feast keep are rewritten (said on stderr)."""
    from components.common.tracking import relocate_local_store

    moved: list[str] = []
    if "MLFLOW_TRACKING_URI" in derived:
        old = relocate_local_store(workspace / "mlflow" / "mlflow.db")
        if old:
            moved.append(f"MLflow artifact locations from {', '.join(old)}")
    if "SEAMLESS_FEAST_REPO" in derived:
        from components.features import repo

        if repo.moved_from(workspace / "feast") is not None:
            old_repo = repo.relocate_repo(workspace / "feast")
            moved.append(f"the Feast registry and file sources from {old_repo}")
    if moved:
        log.warning(
            "Workspace %s was moved or copied: now using its own stores (rewrote %s).",
            workspace,
            "; ".join(moved),
        )


def _latest_run_dir(root: Path, prefix: str, since: float) -> Path | None:
    runs = [p for p in root.glob(f"{prefix}-*") if p.is_dir() and p.stat().st_mtime >= since]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def _reports(run_dir: Path | None) -> dict[str, str]:
    if run_dir is None:
        return {}
    found = {}
    for name, rel in (("validation", "validate/report"), ("monitoring", "monitor/report")):
        hits = sorted(run_dir.rglob(rel))
        if hits and hits[0].is_file():
            found[name] = str(hits[0])
    return found


@dataclass
class LocalRun:
    output: str
    run_dir: Path | None
    log_file: Path
    started: float


def run_locally(
    pipeline_name: str,
    pipeline: Any,
    arguments: dict[str, Any],
    workspace: Path,
    data_dir: Path | None,
    runner: str = "subprocess",
    on_step: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> LocalRun:
    """Run a pipeline with kfp.local against the workspace; a failed step's own sentence
    becomes the SeamlessError. Step logs go to `<workspace>/logs/` (and stdout if verbose)."""
    settings = use_workspace(workspace)
    from kfp import local

    from pipelines.runners import make_runner

    root = workspace.resolve() / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    # The runtime image is this very environment (the project installed), which is
    # what kfp.local's "non-Python base image" warning cannot know.
    warnings.filterwarnings("ignore", message=".*non-Python base image", category=RuntimeWarning)
    # Limits and retries are for the cluster; the local runner says it ignores them.
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
    logs = workspace.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Inside the workspace, so a step in a container can write it too.
    error_file = logs / f".error-{os.getpid()}-{time.time_ns()}.txt"
    os.environ["SEAMLESS_ERROR_FILE"] = str(error_file)
    try:
        local.init(
            runner=make_runner(runner, workspace, data_dir, settings), pipeline_root=str(root)
        )
    except SeamlessError:
        os.environ.pop("SEAMLESS_ERROR_FILE", None)
        raise
    started = time.time()
    kind = pipeline_name.removeprefix("seamless-")
    log_file = logs / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    try:
        with open(log_file, "w", encoding="utf-8") as fh:
            sink = StepLog(fh, on_step, echo=sys.stdout if verbose else None)
            with contextlib.redirect_stdout(sink):
                task = pipeline(**arguments)
    except (RuntimeError, ValueError) as exc:
        # ValueError: kfp.local's DockerRunner can lose a failed container's exit code
        # (auto-removed before wait), and the next step then finds no outputs.
        message = error_file.read_text().strip().splitlines() if error_file.exists() else []
        if message:
            raise SeamlessError(message[-1]) from None
        raise pipeline_failure(kind, exc, log_file) from None
    finally:
        os.environ.pop("SEAMLESS_ERROR_FILE", None)
        error_file.unlink(missing_ok=True)
    run_dir = _latest_run_dir(root, pipeline_name, started - 1)
    return LocalRun(str(task.output), run_dir, log_file, started)


def pipeline_failure(kind: str, exc: BaseException, log_file: Path) -> SeamlessError:
    """The error of a run whose failed step left no sentence of its own. kfp colours its
    task names; the sentence may go to a file or a log collector, so without the codes."""
    reason = _ANSI.sub("", str(exc))
    return SeamlessError(f"The {kind} pipeline failed: {reason} (log: {log_file})")


def data_location(data_dir: str | Path | None, runner: str) -> tuple[str, Path | None]:
    """(the pipelines' `data_dir` argument, the local folder a container runner mounts).

    An object store prefix (s3://...) goes to the steps as it is; they read it with the
    S3 credentials of this environment, which only the subprocess runner shares.
    """
    from components.common.storage import is_remote

    if data_dir is None or str(data_dir) == "":
        return "", None
    if is_remote(str(data_dir)):
        if runner != "subprocess":
            raise SeamlessError(
                f"--data-dir {data_dir} is in object storage, which the {runner} runner's "
                "containers cannot reach; use --runner subprocess."
            )
        return str(data_dir), None
    folder = Path(data_dir).resolve()
    return str(folder), folder


def run_training(
    config_path: Path,
    data_dir: str | Path | None,
    workspace: Path,
    runner: str = "subprocess",
    on_step: Callable[[str], None] | None = None,
    verbose: bool = False,
    config: SeamlessConfig | None = None,
) -> RunOutcome:
    """Run the training pipeline locally and summarize what it decided.

    The workspace records the config (`<workspace>/config.yaml`, see pipelines/workspace.py)
    before the first step; a config for another model than the one the workspace holds
    is refused before anything is written. `config`: the file already loaded and checked
    against the workspace (`workspace.resolve_training_config`); else that is done here.
    """
    from pipelines.run_summary import data_summary
    from pipelines.training import PIPELINE_NAME, build_training_pipeline
    from pipelines.workspace import original_text, record_config, resolve_training_config

    if config is None:  # fail on a bad config before any step starts
        config = resolve_training_config(config_path, workspace).config
    data_arg, data_folder = data_location(data_dir, runner)
    record_config(workspace.resolve(), config_path)
    undelivered = _dead_letters(config, workspace)
    done = run_locally(
        PIPELINE_NAME,
        build_training_pipeline(retries=0),
        {"config_yaml": packed(original_text(config_path), str(config_path)), "data_dir": data_arg},
        workspace,
        data_folder,
        runner,
        on_step,
        verbose,
    )
    outcome = summarize(config, done.output, done.started)
    outcome.run_dir = str(done.run_dir or "")
    outcome.reports = _reports(done.run_dir)
    outcome.data = data_summary(done.run_dir)
    outcome.seconds = time.time() - done.started
    outcome.log_file = str(done.log_file)
    outcome.notifications_not_sent = undelivered()
    return outcome


@dataclass
class MonitoringOutcome:
    decision: str
    """retrain, ok or not_enough_data."""
    events: list[dict[str, Any]]
    """Audit events of this run: monitoring decisions, rollbacks, promotions, deployments."""
    champion_before: str | None
    champion_after: str | None
    reports: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    log_file: str = ""
    notifications_not_sent: list[str] = field(default_factory=list)
    """Events of this run no receiver took (kept in the dead-letter file)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dead_letters(config: SeamlessConfig, workspace: Path) -> Callable[[], list[str]]:
    """A function that returns what was dead-lettered since this call: a step's stderr
    goes to the log file, so the run summary says it instead."""
    from components.governance import notify

    path = notify.dead_letter_path(config.notifications, workspace.resolve())
    before = len(notify.dead_lettered(path))
    return lambda: notify.dead_lettered(path)[before:]


def run_monitoring(
    config_path: Path,
    data_dir: str | Path | None,
    workspace: Path,
    runner: str = "subprocess",
    window_hours: float = 0.0,
    on_step: Callable[[str], None] | None = None,
    verbose: bool = False,
    max_rows: int = 0,
) -> MonitoringOutcome:
    """Run the monitoring pipeline locally (post-deploy check, monitor, maybe retrain).

    The config must be the one the workspace was trained with (pipelines/workspace.py);
    a workspace that records none records this one, since a retrain trains with it.
    """
    config = load_config(config_path)
    from components.common.tracking import CHAMPION, champion_version, mlflow_client
    from components.governance.audit import audit_log
    from pipelines.monitoring import PIPELINE_NAME, build_monitoring_pipeline
    from pipelines.workspace import original_text, record_config, recorded_config, resolve_config

    resolve_config(config_path, workspace)
    data_arg, data_folder = data_location(data_dir, runner)
    use_workspace(workspace)
    if recorded_config(workspace.resolve()) is None:
        record_config(workspace.resolve(), config_path)
    client = mlflow_client()
    before = champion_version(client, config.model.name, CHAMPION)
    log = audit_log()
    head = sum(1 for _ in log.entries())
    undelivered = _dead_letters(config, workspace)
    done = run_locally(
        PIPELINE_NAME,
        build_monitoring_pipeline(retries=0),
        {
            "config_yaml": packed(original_text(config_path), str(config_path)),
            "data_dir": data_arg,
            "window_hours": float(window_hours),
            "max_rows": int(max_rows),
        },
        workspace,
        data_folder,
        runner,
        on_step,
        verbose,
    )
    after = champion_version(client, config.model.name, CHAMPION)
    return MonitoringOutcome(
        decision=done.output,
        events=list(log.entries())[head:],
        champion_before=None if before is None else str(before.version),
        champion_after=None if after is None else str(after.version),
        reports=_reports(done.run_dir),
        seconds=time.time() - done.started,
        log_file=str(done.log_file),
        notifications_not_sent=undelivered(),
    )


def run_batch_scoring(
    config_path: Path,
    workspace: Path,
    arguments: dict[str, str],
    runner: str = "subprocess",
    on_step: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run the batch scoring pipeline locally; returns the step's result (the scores
    artifact's metadata: batch id, version, rows, hashes, where the scores went)."""
    import json

    from pipelines.batch_scoring import PIPELINE_NAME, build_batch_scoring_pipeline
    from pipelines.workspace import original_text, resolve_config

    resolve_config(config_path, workspace)
    mounts = [Path(arguments[k]).parent for k in ("input_uri",) if not _remote(arguments[k])]
    done = run_locally(
        PIPELINE_NAME,
        build_batch_scoring_pipeline(retries=0),
        {"config_yaml": packed(original_text(config_path), str(config_path)), **arguments},
        workspace,
        mounts[0] if mounts else None,
        runner,
        on_step,
        verbose,
    )
    hits = sorted(done.run_dir.rglob("executor_output.json")) if done.run_dir else []
    for path in hits:
        artifacts = json.loads(path.read_text()).get("artifacts", {})
        for item in artifacts.get("scores", {}).get("artifacts", []):
            return {**item.get("metadata", {}), "log_file": str(done.log_file)}
    raise SeamlessError(f"The batch scoring run left no result (log: {done.log_file}).")


def _remote(uri: str) -> bool:
    from components.common.storage import is_remote

    return is_remote(uri)


def summarize(config: SeamlessConfig, validation: str, since: float) -> RunOutcome:
    """What this run registered (if anything) and who is champion now."""
    from components.common.tracking import CHAMPION, champion_version, mlflow_client

    client = mlflow_client()
    name = config.model.name
    outcome = RunOutcome(validation=validation, model_name=name)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception:
        versions = []
    mine = [v for v in versions if v.creation_timestamp >= int(since * 1000)]
    if mine:
        newest = max(mine, key=lambda v: int(v.version))
        outcome.version = str(newest.version)
        outcome.decision = newest.tags.get("seamless.decision")
        outcome.reason = newest.tags.get("seamless.decision_reason")
        outcome.compliance = newest.tags.get("seamless.compliance")
        outcome.model_card = newest.tags.get("seamless.model_card") or None
    champ = champion_version(client, name, CHAMPION)
    if champ is not None:
        outcome.champion_version = str(champ.version)
        outcome.champion_metrics = {
            k.removeprefix("holdout."): float(v)
            for k, v in champ.tags.items()
            if k.startswith("holdout.")
        }
    return outcome
