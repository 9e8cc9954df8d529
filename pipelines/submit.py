"""Submit a compiled pipeline to a Kubeflow Pipelines endpoint (one-off or recurring)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.errors import SeamlessError
from pipelines.compile import COMPILED_DIR, compile_all, compiled_pipelines

STEP_SERVICE_ACCOUNT = "seamless-pipeline"
"""The ServiceAccount pipeline steps run as (manifests/base/rbac)."""


@dataclass
class Submission:
    run_id: str | None
    recurring_run_id: str | None
    url: str


def _explain(host: str, exc: Exception) -> str:
    """One sentence for the usual ways a KFP endpoint refuses us."""
    status = getattr(exc, "status", None) or getattr(
        getattr(exc, "response", None), "status_code", None
    )
    if status in (401, 403):
        return (
            f"Kubeflow Pipelines at {host} rejected the credentials (HTTP {status}); "
            "check --token / KFP_TOKEN."
        )
    if status is not None:
        return f"Kubeflow Pipelines at {host} answered HTTP {status}."
    text = str(exc)
    if "refused" in text or "NewConnectionError" in text:
        why = "connection refused"
    elif "timed out" in text.lower() or "timeout" in text.lower():
        why = "timed out"
    elif "Name or service not known" in text or "resolve" in text.lower():
        why = "host name does not resolve"
    else:
        why = type(exc).__name__
    return f"Kubeflow Pipelines at {host} is unreachable ({why})."


def preflight(host: str, token: str | None, timeout_s: float = 10.0) -> None:
    """Check the endpoint and the token once, before kfp.Client retries for ~25 s."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = requests.get(
            f"{host.rstrip('/')}/apis/v2beta1/healthz", headers=headers, timeout=timeout_s
        )
    except requests.RequestException as exc:
        raise SeamlessError(_explain(host, exc)) from None
    if resp.status_code >= 400:
        raise SeamlessError(_explain(host, requests.HTTPError(response=resp)))


def package_path(name: str) -> Path:
    """The compiled spec, compiled first when it is missing."""
    if name not in compiled_pipelines():
        raise SeamlessError(
            f"Unknown pipeline '{name}'; known: {', '.join(sorted(compiled_pipelines()))}."
        )
    path = COMPILED_DIR / f"{name}.yaml"
    if not path.is_file():
        compile_all()
    return path


def submit(
    host: str,
    name: str,
    arguments: dict[str, Any],
    *,
    token: str | None = None,
    namespace: str = "kubeflow",
    experiment: str = "seamless",
    cron: str | None = None,
    service_account: str = STEP_SERVICE_ACCOUNT,
) -> Submission:
    """Create a run (or, with `cron`, a recurring run) of a compiled pipeline."""
    import kfp

    path = package_path(name)
    preflight(host, token)
    warnings.filterwarnings("ignore", message="This client only works with Kubeflow")
    try:
        client = kfp.Client(host=host, existing_token=token, namespace=namespace)
        exp = client.create_experiment(experiment, namespace=namespace)
        if cron:
            rec = client.create_recurring_run(
                experiment_id=exp.experiment_id,
                job_name=f"{name}-recurring",
                cron_expression=cron,
                pipeline_package_path=str(path),
                params=arguments,
                service_account=service_account,
                no_catchup=True,
            )
            return Submission(None, rec.recurring_run_id, f"{host}/#/recurringruns")
        run = client.create_run_from_pipeline_package(
            str(path),
            arguments=arguments,
            experiment_id=exp.experiment_id,
            service_account=service_account,
        )
        return Submission(run.run_id, None, f"{host}/#/runs/details/{run.run_id}")
    except SeamlessError:
        raise
    except Exception as exc:  # kfp wraps transport and API errors in many types
        raise SeamlessError(_explain(host, exc)) from None
