"""Pipeline runs: their steps, durations, status and artifacts, from where runs are recorded.

Two records, merged by the pipeline run id (`dsl.PIPELINE_JOB_ID_PLACEHOLDER`, which
every stage passes to its audit hook):

- the audit trail (everywhere: local file or PostgreSQL): one entry per step that
  finished its work (`data_access` with `details.step` ingest/validate/features/train,
  `registry_change`, `promotion`, `deployment`, `batch_scoring`), with what it did;
- the local step logs `<workspace>/logs/<pipeline>-<date>-<time>.log` written by
  `pipelines/local.py` (embedded mode only): kfp.local's own lines give each task's
  start, end and status, including the tasks that failed (which write no audit entry)
  and pipelines whose steps write none (monitoring). On a cluster the KFP UI holds the
  same; the audit part of this page still works there.

Durations come from the log when there is one; from audit times alone, a step's
duration is the time since the previous step's entry (`timing: "audit"`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from components.common.times import parse_utc
from components.dashboard.markup import path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TIME = r"(\d\d:\d\d:\d\d\.\d{3}) - \w+ - "
_START = re.compile(_TIME + r"Running pipeline: '([\w-]+)'")
_TASK = re.compile(_TIME + r"Executing task '([\w-]+)'")
_TASK_END = re.compile(_TIME + r"Task '([\w-]+)' finished with status (\w+)")
_END = re.compile(_TIME + r"Pipeline '([\w-]+)' finished with status (\w+)")
_RUN_ID = re.compile(r'"pipeline_run_id": "([^"]+)"')
_LOG_NAME = re.compile(r"^([a-z][\w-]*?)-(\d{8})-(\d{6})\.log$")
_KFP_DIR = re.compile(r"^(seamless-[\w-]+?)-(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-\d+$")
# Reports a local run folder holds, by task: shown as the run's artifacts.
RUN_REPORTS = {"validate": "validate/report", "monitor": "monitor/report"}
MAX_LOG_BYTES = 64 << 20
"""Logs larger than this are not parsed (a runaway step log); the audit part remains."""


@dataclass
class Step:
    name: str
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    status: str = "done"
    summary: str = ""
    links: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Run:
    id: str
    pipeline: str = ""
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    status: str = "recorded"
    timing: str = "audit"
    outcome: str = ""
    steps: list[Step] = field(default_factory=list)
    dataset: str | None = None
    model: dict[str, str] | None = None
    log: str | None = None
    artifacts: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(start: str | None, end: str | None) -> float | None:
    a, b = parse_utc(start), parse_utc(end)
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


# ----------------------------------------------------------------- audit entries


def _audit_step(entry: dict[str, Any]) -> tuple[str, str, list[dict[str, str]]] | None:
    """(step name, summary, links) of an audit entry that belongs to a pipeline run."""
    action = entry.get("action")
    d = entry.get("details") or {}
    subject = str(entry.get("subject") or "")
    sha = subject.removeprefix("dataset:") if subject.startswith("dataset:") else ""
    model = subject.removeprefix("model:") if subject.startswith("model:") else ""
    name, _, version = model.rpartition("/")
    model_links = [{"label": f"{name} v{version}", "href": path("models", name, version)}]
    if action == "data_access":
        step = str(d.get("step") or "data")
        links = [{"label": f"data {sha[:12]}", "href": path("data", sha)}] if sha else []
        if step == "ingest":
            sources = d.get("sources") or {}
            rows = sum(int(s.get("rows") or 0) for s in sources.values())
            return step, f"{len(sources)} tables, {rows} rows", links
        if step == "validate":
            report = str(d.get("report") or "")
            if report and sha:
                links.append(
                    {
                        "label": "validation report",
                        "href": path("data", sha, "reports", Path(report).name),
                    }
                )
            return step, f"verdict {d.get('decision')}", links
        if step == "features":
            return step, f"{d.get('rows')} training rows, service {d.get('feature_service')}", links
        if step == "train":
            return step, f"MLflow run {d.get('run_id')}", links
        return step, "", links
    if action == "registry_change" and model:
        verdict = "promoted" if d.get("promoted") else "kept as challenger"
        return "register", f"version {version} {verdict}", model_links
    if action == "promotion" and model:
        return "promote", f"champion -> v{version}", model_links
    if action == "deployment" and model:
        return "deploy", f"v{version} to {d.get('target', 'local')}", model_links
    if action == "batch_scoring" and model:
        return "batch-score", f"{d.get('rows')} rows scored by v{version}", model_links
    return None


def runs_from_audit(entries: Iterable[dict[str, Any]]) -> dict[str, Run]:
    """Runs keyed by pipeline run id, steps in audit order with their audit times."""
    runs: dict[str, Run] = {}
    for entry in entries:
        details = entry.get("details") or {}
        run_id = str(details.get("pipeline_run_id") or "")
        if not run_id:
            continue
        found = _audit_step(entry)
        if found is None:
            continue
        name, summary, links = found
        run = runs.setdefault(run_id, Run(id=run_id))
        previous = run.steps[-1].ended if run.steps else None
        when = str(entry.get("time") or "")
        run.steps.append(
            Step(name, previous, when, _seconds(previous, when), "done", summary, links)
        )
        run.started = run.started or when
        run.ended = when
        subject = str(entry.get("subject") or "")
        if subject.startswith("dataset:"):
            run.dataset = run.dataset or subject.removeprefix("dataset:")
        if subject.startswith("model:"):
            name_, _, version = subject.removeprefix("model:").rpartition("/")
            run.model = {"name": name_, "version": version}
    for run in runs.values():
        names = [s.name for s in run.steps]
        run.pipeline = (
            "training"
            if "ingest" in names or "register" in names
            else "batch-scoring"
            if "batch-score" in names
            else ""
        )
        run.seconds = _seconds(run.steps[0].ended, run.ended) if run.steps else None
        run.outcome = _outcome(run)
    return runs


def _outcome(run: Run) -> str:
    by_name = {s.name: s for s in run.steps}
    if "validate" in by_name and "verdict fail" in by_name["validate"].summary:
        return "validation failed: nothing trained on this data is promoted"
    if "register" in by_name and run.model:
        return f"{run.model['name']} {by_name['register'].summary}"
    if "batch-score" in by_name:
        return by_name["batch-score"].summary
    return ""


# ----------------------------------------------------------------- local step logs


@dataclass
class LogRun:
    file: Path
    pipeline: str
    run_id: str | None
    started: datetime
    status: str
    ended: datetime | None
    tasks: list[Step]


def _clock(day: datetime, stamp: str, last: datetime | None) -> datetime:
    """A log line's `HH:MM:SS.mmm` (local time) on the log's day, past midnight if needed."""
    t = datetime.strptime(stamp, "%H:%M:%S.%f").time()
    when = day.replace(hour=t.hour, minute=t.minute, second=t.second, microsecond=t.microsecond)
    if last is not None and when < last - timedelta(hours=1):
        when += timedelta(days=1)
    return when


def parse_log(file: Path) -> LogRun | None:
    """One kfp.local step log; None when the name or content is not one."""
    m = _LOG_NAME.match(file.name)
    if m is None:
        return None
    try:
        if file.stat().st_size > MAX_LOG_BYTES:
            return None
        # Local wall-clock time, as time.strftime named the file and kfp.local logs.
        day = datetime.strptime(m.group(2) + m.group(3), "%Y%m%d%H%M%S").astimezone()
    except (OSError, ValueError):
        return None
    run = LogRun(file, m.group(1), None, day, "unfinished", None, [])
    open_tasks: dict[str, Step] = {}
    last: datetime | None = None
    failed = False
    with open(file, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            if run.run_id is None and '"pipeline_run_id"' in raw:
                found = _RUN_ID.search(raw)
                if found:
                    run.run_id = found.group(1)
            if not raw[:1].isdigit() or " - " not in raw[:30]:
                continue
            line = _ANSI.sub("", raw)
            if hit := _START.match(line):
                last = run.started = _clock(day, hit.group(1), last)
                run.pipeline = hit.group(2).removeprefix("seamless-")
            elif hit := _TASK.match(line):
                last = _clock(day, hit.group(1), last)
                step = Step(hit.group(2), last.astimezone(UTC).isoformat(), status="running")
                open_tasks[step.name] = step
                run.tasks.append(step)
            elif hit := _TASK_END.match(line):
                last = _clock(day, hit.group(1), last)
                name = hit.group(2)
                begun = open_tasks.pop(name, None)
                if begun is None:  # no start line: it began when the previous event ended
                    prev = run.tasks[-1].ended if run.tasks else run.started.isoformat()
                    begun = Step(name, prev)
                    run.tasks.append(begun)
                step = begun
                step.ended = last.astimezone(UTC).isoformat()
                step.seconds = _seconds(step.started, step.ended)
                step.status = "succeeded" if hit.group(3) == "SUCCESS" else "failed"
                failed = failed or step.status == "failed"
            elif hit := _END.match(line):
                last = run.ended = _clock(day, hit.group(1), last)
                run.status = "succeeded" if hit.group(3) == "SUCCESS" else "failed"
    if failed:
        run.status = "failed"
    return run


def recent_logs(logs_dir: Path | None, limit: int) -> list[LogRun]:
    """The newest `limit` step logs, parsed (newest first)."""
    if logs_dir is None or not logs_dir.is_dir():
        return []
    files = sorted(
        (f for f in logs_dir.iterdir() if _LOG_NAME.match(f.name)),
        key=lambda f: _LOG_NAME.match(f.name).group(2, 3),  # type: ignore[union-attr]
        reverse=True,
    )
    out = []
    for f in files[:limit]:
        parsed = parse_log(f)
        if parsed is not None:
            out.append(parsed)
    return out


def run_folder(kfp_root: Path | None, log: LogRun) -> Path | None:
    """The kfp.local pipeline root folder of a logged run: same pipeline, started within
    five seconds of the log (both are named from the local clock)."""
    if kfp_root is None or not kfp_root.is_dir():
        return None
    best: tuple[float, Path] | None = None
    for folder in kfp_root.glob(f"seamless-{log.pipeline}-*"):
        m = _KFP_DIR.match(folder.name)
        if m is None or m.group(1) != f"seamless-{log.pipeline}":
            continue
        try:
            when = datetime.strptime(m.group(2), "%Y-%m-%d-%H-%M-%S").astimezone()
        except ValueError:
            continue
        gap = abs((when - log.started).total_seconds())
        if gap <= 5 and (best is None or gap < best[0]):
            best = (gap, folder)
    return best[1] if best else None


# ----------------------------------------------------------------- merged


def _log_key(log: LogRun) -> str:
    return log.run_id or f"log:{log.file.stem}"


def pipeline_runs(
    entries: Iterable[dict[str, Any]],
    logs_dir: Path | None,
    kfp_root: Path | None,
    limit: int = 20,
) -> list[Run]:
    """The newest `limit` runs, audit and log records merged (newest first)."""
    runs = runs_from_audit(entries)
    for log in recent_logs(logs_dir, limit):
        key = _log_key(log)
        run = runs.get(key) or Run(id=key)
        runs[key] = run
        audit_steps = {s.name: s for s in run.steps}
        steps = []
        for task in log.tasks:
            recorded = audit_steps.pop(task.name, None)
            if recorded is not None:
                task.summary, task.links = recorded.summary, recorded.links
            steps.append(task)
        # Audit-only steps (promote: part of the register task) follow their task.
        run.steps = steps + list(audit_steps.values())
        run.pipeline = log.pipeline
        run.started = log.started.astimezone(UTC).isoformat()
        run.ended = log.ended.astimezone(UTC).isoformat() if log.ended else run.ended
        run.seconds = _seconds(run.started, run.ended) if log.ended else None
        run.status = log.status
        run.timing = "log"
        run.log = log.file.name
        folder = run_folder(kfp_root, log)
        if folder is not None:
            for task_name, rel in RUN_REPORTS.items():
                if (folder / rel).is_file():
                    run.artifacts.append(
                        {
                            "label": f"{task_name} report",
                            "href": path("runs", key, "report", task_name),
                        }
                    )
        run.outcome = run.outcome or _outcome(run)
    ordered = sorted(runs.values(), key=lambda r: r.started or "", reverse=True)
    return ordered[:limit]


def find_run(runs: list[Run], run_id: str) -> Run | None:
    return next((r for r in runs if r.id == run_id), None)


def run_report(kfp_root: Path | None, logs_dir: Path | None, run_id: str, task: str) -> Path:
    """The report file a local run's task wrote (KeyError: no such run, task or file)."""
    rel = RUN_REPORTS[task]
    for log in recent_logs(logs_dir, 200):
        if _log_key(log) == run_id:
            folder = run_folder(kfp_root, log)
            if folder is not None and (folder / rel).is_file():
                return folder / rel
    raise KeyError(run_id)
