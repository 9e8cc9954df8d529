"""Record which model version is live; the serving layer reads this record.

Locally the record is a JSON file in the workspace plus an append-only history.
On Kubernetes the deploy step's cluster variant rolls the serving Deployment
instead, behind the same function signature.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.errors import SeamlessError
from components.common.tables import write_json_atomic
from components.common.tracking import CHAMPION, champion_version, mlflow_client


def require_champion(model_name: str, version: str) -> Any:
    """The registry's champion, which must be `version` (someone may have moved it)."""
    client = mlflow_client()
    current = champion_version(client, model_name, CHAMPION)
    if current is None or str(current.version) != str(version):
        live = None if current is None else current.version
        raise SeamlessError(
            f"Refusing to deploy {model_name} v{version}: the registry's champion is v{live}."
        )
    return current


def deploy_local(
    model_name: str, version: str, deploy_dir: Path, pipeline_run_id: str = ""
) -> dict[str, Any]:
    """Make `version` the live model after checking it is the registry's champion."""
    current = require_champion(model_name, version)
    record = {
        "model_name": model_name,
        "version": str(version),
        "model_uri": f"models:/{model_name}/{version}",
        "alias": CHAMPION,
        "run_id": current.run_id,
        "pipeline_run_id": pipeline_run_id,
        "deployed_at": datetime.now(UTC).isoformat(),
        "target": "local",
    }
    deploy_dir.mkdir(parents=True, exist_ok=True)
    # History first: a crash between the two writes leaves an extra history line, never
    # a live record that the history does not explain.
    with open(deploy_dir / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    write_json_atomic(deploy_dir / f"{model_name}.json", record)
    return record


def live_deployment(model_name: str, deploy_dir: Path) -> dict[str, Any] | None:
    path = deploy_dir / f"{model_name}.json"
    if not path.is_file():
        return None
    result: dict[str, Any] = json.loads(path.read_text())
    return result
