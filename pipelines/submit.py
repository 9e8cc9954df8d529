"""Submit a compiled pipeline to a Kubeflow Pipelines endpoint (one-off or recurring)."""

from __future__ import annotations

import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.common.config_param import packed
from components.common.durable import write_atomic
from components.common.errors import SeamlessError
from pipelines.compile import COMPILED_DIR, compile_all, compiled_pipelines

STEP_SERVICE_ACCOUNT = "seamless-pipeline"
"""The ServiceAccount pipeline steps run as (manifests/base/rbac)."""


# The object stores a KFP v2 pipeline root may name (the launcher opens it with Go CDK
# blob: s3:// also for MinIO/Ceph with ?endpoint=...&s3ForcePathStyle=true, or with the
# endpoint in the kfp-launcher ConfigMap).
PIPELINE_ROOT_SCHEMES = ("s3", "gs", "minio")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-_]{1,254}", re.I)


def check_pipeline_root(root: str, what: str = "--pipeline-root") -> str:
    """`root` with any trailing '/' removed, or one sentence on why KFP cannot use it."""
    parts = urlsplit(root)
    scheme = parts.scheme.lower()
    if scheme not in PIPELINE_ROOT_SCHEMES:
        raise SeamlessError(
            f"{what} {root!r} must be an object store URI "
            f"({', '.join(s + '://bucket/prefix' for s in PIPELINE_ROOT_SCHEMES)}); "
            "Kubeflow Pipelines keeps every step's outputs there."
        )
    if not _BUCKET.fullmatch(parts.netloc):
        raise SeamlessError(
            f"{what} {root!r} names no valid bucket (expected {scheme}://bucket/prefix)."
        )
    return root.rstrip("/") if not parts.query else root


def set_pipeline_root(spec: Path, root: str, out: Path) -> Path:
    """Write the compiled spec `spec` to `out` with `defaultPipelineRoot` set to `root`.

    The first YAML document is the PipelineSpec; platform documents (kubernetes) follow
    unchanged. `out` may be `spec` itself: the new text replaces it in one step.
    """
    import yaml

    docs = list(yaml.safe_load_all(spec.read_text(encoding="utf-8")))
    if not docs or not isinstance(docs[0], dict) or "pipelineInfo" not in docs[0]:
        raise SeamlessError(f"{spec} is not a compiled KFP pipeline spec.")
    docs[0]["defaultPipelineRoot"] = check_pipeline_root(root)
    write_atomic(out, yaml.safe_dump_all(docs, sort_keys=True).encode("utf-8"))
    return out


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


def pipeline_parameters(name: str) -> dict[str, bool]:
    """The compiled pipeline's parameters -> whether each is optional (has a default)."""
    import yaml

    # The spec, then the platform (Kubernetes) spec: two YAML documents.
    spec = next(yaml.safe_load_all(package_path(name).read_text()))
    params = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return {k: bool(v.get("isOptional")) for k, v in params.items()}


def run_arguments(name: str, config_yaml: str, data_dir: str, params: list[str]) -> dict[str, Any]:
    """The run's arguments: the config, `--data-dir` where the pipeline takes one, and
    each `--param KEY=VALUE`; unknown or missing parameters refused in one sentence."""
    known = pipeline_parameters(name)
    arguments: dict[str, Any] = {"config_yaml": packed(config_yaml)}
    if data_dir:
        if "data_dir" not in known:
            raise SeamlessError(f"The {name} pipeline takes no --data-dir.")
        arguments["data_dir"] = data_dir
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise SeamlessError(f"--param {item!r}: expected KEY=VALUE.")
        if key not in known or key == "config_yaml":
            settable = ", ".join(sorted(set(known) - {"config_yaml"}))
            raise SeamlessError(f"--param {key}: the {name} pipeline's parameters are {settable}.")
        arguments[key] = value
    missing = sorted(k for k, optional in known.items() if not optional and k not in arguments)
    if missing:
        raise SeamlessError(
            f"The {name} pipeline needs {', '.join(f'--param {k}=...' for k in missing)}."
        )
    return arguments


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
    pipeline_root: str | None = None,
) -> Submission:
    """Create a run (or, with `cron`, a recurring run) of a compiled pipeline.

    `pipeline_root` (an s3://, gs:// or minio:// URI) is where KFP keeps the run's
    artifacts; unset, the cluster's default (KFP's own MinIO) is used.
    """
    if pipeline_root:
        pipeline_root = check_pipeline_root(pipeline_root)
    path = package_path(name)
    preflight(host, token)
    if pipeline_root:
        with tempfile.TemporaryDirectory(prefix="seamless-submit-") as tmp:
            spec = set_pipeline_root(path, pipeline_root, Path(tmp) / path.name)
            return _create(
                host, name, spec, arguments, token, namespace, experiment, cron,
                service_account, pipeline_root,
            )  # fmt: skip
    return _create(
        host, name, path, arguments, token, namespace, experiment, cron, service_account, None
    )


def _create(
    host: str,
    name: str,
    path: Path,
    arguments: dict[str, Any],
    token: str | None,
    namespace: str,
    experiment: str,
    cron: str | None,
    service_account: str,
    pipeline_root: str | None,
) -> Submission:
    import kfp

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
                pipeline_root=pipeline_root,
            )
            return Submission(None, rec.recurring_run_id, f"{host}/#/recurringruns")
        run = client.create_run_from_pipeline_package(
            str(path),
            arguments=arguments,
            experiment_id=exp.experiment_id,
            service_account=service_account,
            pipeline_root=pipeline_root,
        )
        return Submission(run.run_id, None, f"{host}/#/runs/details/{run.run_id}")
    except SeamlessError:
        raise
    except Exception as exc:  # kfp wraps transport and API errors in many types
        raise SeamlessError(_explain(host, exc)) from None
