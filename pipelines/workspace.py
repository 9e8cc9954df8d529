"""What a workspace was made with: the use-case config it was trained with.

`seamless run training` (and the demo loop, through `run_training`) copies the config's
text into `<workspace>/config.yaml`, atomically, under a comment header naming where it
came from and the sha256 of the original text. Later commands (status, serve, monitor,
lineage, promote, rollback, the monitoring run) use that copy when `--config` is not
given; a `--config` that names another model, or the same model with other settings,
is refused with one sentence instead of being used against the wrong store.

A workspace with no recorded config (made before this file existed) falls back to the
bundled demo config only when that is plausible: if its MLflow store registers models
but not the demo's, the command stops and asks for `--config`.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.config import SeamlessConfig, default_config_path, load_config
from components.common.errors import SeamlessError
from components.common.tables import write_text_atomic

CONFIG_FILE = "config.yaml"
"""The workspace's copy of the config it was trained with."""
_HEADER = (
    "# The use-case config this Seamless workspace was trained with (written by\n"
    "# `seamless run training`). Commands run against the workspace use it when --config\n"
    "# is not given. The lines below the header are the original text.\n"
)
_META = re.compile(r"^# (source|sha256|recorded): (.*)$")
_END = "# ---\n"


@dataclass(frozen=True)
class RecordedConfig:
    """The config a workspace recorded."""

    path: Path
    """`<workspace>/config.yaml` (loadable as it is: the header is YAML comments)."""
    source: str
    """Where the config was read from when it was recorded."""
    sha256: str
    """sha256 of the original text (without the header)."""
    recorded: str
    """When it was recorded (UTC, ISO 8601)."""

    def load(self) -> SeamlessConfig:
        return load_config(self.path)


def config_file(workspace: Path) -> Path:
    return workspace / CONFIG_FILE


def recorded_config(workspace: Path) -> RecordedConfig | None:
    """The workspace's recorded config, or None (never creates anything)."""
    path = config_file(workspace)
    if not path.is_file():
        return None
    meta: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line == _END or not line.startswith("#"):
                break
            m = _META.match(line.rstrip("\n"))
            if m:
                meta[m.group(1)] = m.group(2)
    return RecordedConfig(
        path=path,
        source=meta.get("source", "unknown"),
        sha256=meta.get("sha256", ""),
        recorded=meta.get("recorded", ""),
    )


def original_text(path: Path) -> str:
    """A config file's text; for a recorded copy, the original text without the header."""
    text = path.read_text(encoding="utf-8")
    if text.startswith(_HEADER) and _END in text:
        return text.split(_END, 1)[1]
    return text


def record_config(workspace: Path, config_path: Path) -> RecordedConfig:
    """Write `<workspace>/config.yaml` from `config_path` (atomically); a no-op when the
    workspace already records the same text from the same place."""
    target = config_file(workspace)
    text = original_text(config_path)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    current = recorded_config(workspace)
    source = str(config_path.resolve())
    if current is not None:
        if config_path.resolve() == target.resolve():
            return current  # trained with the workspace's own copy
        if current.sha256 == digest and current.source == source:
            return current
    now = datetime.now(UTC).isoformat(timespec="seconds")
    body = f"{_HEADER}# source: {source}\n# sha256: {digest}\n# recorded: {now}\n{_END}{text}"
    write_text_atomic(target, body)
    return RecordedConfig(path=target, source=source, sha256=digest, recorded=now)


def differing_keys(a: SeamlessConfig, b: SeamlessConfig, limit: int = 3) -> list[str]:
    """Dotted keys (two levels deep) whose values differ between two configs."""
    left, right = a.model_dump(mode="json"), b.model_dump(mode="json")
    out: list[str] = []
    for key in sorted(set(left) | set(right)):
        lv, rv = left.get(key), right.get(key)
        if lv == rv:
            continue
        if isinstance(lv, dict) and isinstance(rv, dict):
            out += [f"{key}.{k}" for k in sorted(set(lv) | set(rv)) if lv.get(k) != rv.get(k)]
        else:
            out.append(key)
    return out[:limit] if len(out) <= limit else [*out[:limit], "..."]


def _local_models(workspace: Path) -> list[str] | None:
    """Registered model names in the workspace's own MLflow SQLite store (read-only), or
    None when it has none or it cannot be read without MLflow."""
    db = workspace / "mlflow" / "mlflow.db"
    if not db.is_file() or os.environ.get("MLFLOW_TRACKING_URI", "").startswith(
        ("http://", "https://")
    ):
        return None
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10) as conn:
            rows = conn.execute("SELECT name FROM registered_models ORDER BY name").fetchall()
    except sqlite3.Error:
        return None
    return [str(r[0]) for r in rows]


OPERATIONAL = {"notifications"}
"""Config keys that say who hears about a run, not what the model is: a `--config` that
differs from the workspace's only in them is used as given (a receiver can be added
without retraining)."""


def _conflict(given: Path, cfg: SeamlessConfig, rec: RecordedConfig, ws: Path) -> str | None:
    """Why `given` cannot be used against the workspace, or None when it is the same."""
    mine = rec.load()
    if cfg.model.name != mine.model.name:
        return (
            f"--config {given} is for model '{cfg.model.name}' but workspace {ws} was trained "
            f"for model '{mine.model.name}' (config recorded in {rec.path} from {rec.source}); "
            "drop --config to use the workspace's config, or use another --workspace."
        )
    if cfg.model_dump(mode="json", exclude=OPERATIONAL) != mine.model_dump(
        mode="json", exclude=OPERATIONAL
    ):
        keys = ", ".join(k for k in differing_keys(cfg, mine) if k.split(".")[0] not in OPERATIONAL)
        return (
            f"--config {given} differs from the config workspace {ws} was trained with "
            f"({rec.path}, from {rec.source}) in {keys}; drop --config to use the "
            "workspace's, or retrain with it (`seamless run training --config ...`)."
        )
    return None


def resolve_config(given: Path | None, workspace: Path) -> Path:
    """The config file a command runs with against `workspace`.

    No `--config`: the workspace's recorded config, else the bundled demo config (unless
    the workspace's store registers models and none is the demo's: then an error). With
    `--config`: that file, which must match the workspace's recorded config, if any.
    """
    ws = workspace.resolve()
    rec = recorded_config(ws)
    if given is None:
        if rec is not None:
            return rec.path
        default = default_config_path()
        models = _local_models(ws)
        if models:
            demo = load_config(default).model.name
            if demo not in models:
                raise SeamlessError(
                    f"Workspace {ws} records no config ({CONFIG_FILE} is missing) and its "
                    f"MLflow store has no model '{demo}' (the bundled config's) but "
                    f"{', '.join(repr(m) for m in models)}; pass --config with the config "
                    "it was trained with."
                )
        return default
    cfg = load_config(given)
    if rec is not None:
        why = _conflict(given, cfg, rec, ws)
        if why:
            raise SeamlessError(why)
    return given


@dataclass(frozen=True)
class TrainingConfig:
    """The config a training run uses, loaded once."""

    path: Path
    config: SeamlessConfig
    changed: list[str]
    """Keys in which it changes the workspace's recorded config."""


def resolve_training_config(given: Path | None, workspace: Path) -> TrainingConfig:
    """The config a training run uses (loaded), and the keys in which it changes the
    workspace's.

    Retraining with an edited config for the same model is allowed (the workspace then
    records the new one); a config for another model is refused while the workspace's
    store has versions of the recorded model.
    """
    ws = workspace.resolve()
    rec = recorded_config(ws)
    if given is None:
        path = rec.path if rec is not None else default_config_path()
        return TrainingConfig(path, load_config(path), [])
    cfg = load_config(given)
    if rec is None:
        return TrainingConfig(given, cfg, [])
    mine = rec.load()
    if cfg.model.name != mine.model.name:
        if mine.model.name in (_local_models(ws) or []):
            raise SeamlessError(
                f"--config {given} is for model '{cfg.model.name}' but workspace {ws} was "
                f"trained for model '{mine.model.name}' (config recorded in {rec.path} from "
                f"{rec.source}); train '{cfg.model.name}' in another --workspace."
            )
        return TrainingConfig(given, cfg, ["model.name"])
    return TrainingConfig(given, cfg, differing_keys(cfg, mine) if cfg != mine else [])


def describe(workspace: Path) -> dict[str, Any] | None:
    """The recorded config as JSON-ready facts (for `seamless status --json`)."""
    rec = recorded_config(workspace.resolve())
    if rec is None:
        return None
    return {
        "path": str(rec.path),
        "source": rec.source,
        "sha256": rec.sha256,
        "recorded": rec.recorded,
    }
