"""One task of a compiled pipeline as the pod a Kubeflow backend would start for it.

Reads the compiled KFP v2 spec (pipelines/compiled/*.yaml): the task's container (image,
command, arguments, env, resources) and its Kubernetes platform settings (ConfigMap and
Secret keys as env, field paths, pod labels, emptyDir, PVC, ConfigMap and Secret volume
mounts), and writes them as a Job. The executor input, which KFP's launcher writes in
place of `{{$}}`, is made here with kfp's own local-run helper from the task's component
spec and the given arguments, so the step reads its inputs and writes its outputs where
the test says.

Used by the Docker stack tier (tests/stack) to run compiled steps against the stack's
stores without a KFP backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from training_job import CONTAINER_SECURITY, pipeline_step_job

Obj = dict[str, Any]


def load_compiled(path: Path) -> tuple[Obj, Obj]:
    """The pipeline spec and its Kubernetes platform spec (empty when it has none)."""
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    platform = next((d for d in docs if "platforms" in d), {})
    return docs[0], platform.get("platforms", {}).get("kubernetes", {})


def _executor(pipeline: Obj, task: str) -> tuple[str, Obj]:
    """The component name and executor label of a top-level or nested task."""
    stack = [pipeline["root"]]
    while stack:
        dag = stack.pop().get("dag", {})
        for name, spec in dag.get("tasks", {}).items():
            comp = spec["componentRef"]["name"]
            if name == task:
                return comp, pipeline["components"][comp]
            stack.append(pipeline["components"].get(comp, {}))
    raise LookupError(f"task {task!r} is not in pipeline {pipeline['pipelineInfo']['name']}")


def executor_input(
    pipeline: Obj, task: str, arguments: dict[str, Any], task_root: str
) -> dict[str, Any]:
    """What KFP's launcher gives the step: parameters, input artifacts (kfp `dsl.Artifact`s
    in `arguments`) and output locations under `task_root`."""
    from google.protobuf import json_format
    from kfp.local import executor_input_utils
    from kfp.pipeline_spec import pipeline_spec_pb2

    _, component = _executor(pipeline, task)
    spec = json_format.ParseDict(
        component, pipeline_spec_pb2.ComponentSpec(), ignore_unknown_fields=True
    )
    message = executor_input_utils.construct_executor_input(
        spec, arguments, task_root, block_input_artifact=False
    )
    return dict(executor_input_utils.executor_input_to_dict(message, spec))


def _platform_env(settings: Obj) -> list[Obj]:
    env: list[Obj] = []
    for ref_kind, key_name, source in (
        ("configMapKeyRef", "configMapKey", "configMapAsEnv"),
        ("secretKeyRef", "secretKey", "secretAsEnv"),
    ):
        for group in settings.get(source, []):
            name = group.get("configMapName") or group.get("secretName")
            for pair in group.get("keyToEnv", []):
                ref = {
                    "name": name,
                    "key": pair[key_name],
                    "optional": group.get("optional", False),
                }
                env.append({"name": pair["envVar"], "valueFrom": {ref_kind: ref}})
    for pair in settings.get("fieldPathAsEnv", []):
        env.append(
            {"name": pair["name"], "valueFrom": {"fieldRef": {"fieldPath": pair["fieldPath"]}}}
        )
    return env


def _claim(mount: Obj) -> str:
    param = mount.get("pvcNameParameter", {})
    name = mount.get("constant") or param.get("runtimeValue", {}).get("constant")
    if not name:
        raise ValueError(f"PVC mount at {mount.get('mountPath')} names no claim constant")
    return str(name)


def step_job(
    compiled: Path,
    task: str,
    executor: dict[str, Any],
    name: str,
    *,
    namespace: str = "seamless",
    init_command: list[str] | None = None,
    drop_env: frozenset[str] = frozenset(),
) -> Obj:
    """A Job running `task` of the compiled pipeline as its pod would run on Kubeflow.

    `init_command` runs first in the same image and volumes (e.g. to put input files on
    a claim); `drop_env` leaves out env the caller's runtime cannot provide (named by the
    caller, so nothing is dropped silently)."""
    pipeline, platform = load_compiled(compiled)
    _, component = _executor(pipeline, task)
    label = component["executorLabel"]
    container = pipeline["deploymentSpec"]["executors"][label]["container"]
    settings = platform.get("deploymentSpec", {}).get("executors", {}).get(label, {})
    args = [json.dumps(executor) if a == "{{$}}" else a for a in container.get("args", [])]
    env = [*container.get("env", []), *_platform_env(settings)]
    env = [e for e in env if e["name"] not in drop_env]
    mounts, volumes = [], []
    for i, mount in enumerate(settings.get("emptyDirMounts", [])):
        vol = mount.get("volumeName") or f"empty-{i}"
        volumes.append({"name": vol, "emptyDir": {"sizeLimit": mount.get("sizeLimit", "1Gi")}})
        mounts.append({"name": vol, "mountPath": mount["mountPath"]})
    for i, mount in enumerate(settings.get("configMapAsVolume", [])):
        vol = f"config-{i}"
        source = {"name": mount["configMapName"], "optional": mount.get("optional", False)}
        volumes.append({"name": vol, "configMap": source})
        mounts.append({"name": vol, "mountPath": mount["mountPath"], "readOnly": True})
    for i, mount in enumerate(settings.get("secretAsVolume", [])):
        vol = f"secret-{i}"
        source = {"secretName": mount["secretName"], "optional": mount.get("optional", False)}
        volumes.append({"name": vol, "secret": source})
        mounts.append({"name": vol, "mountPath": mount["mountPath"], "readOnly": True})
    pvcs = settings.get("pvcMount", [])
    for i, mount in enumerate(pvcs if isinstance(pvcs, list) else [pvcs]):
        vol = f"claim-{i}"
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": _claim(mount)}})
        mounts.append({"name": vol, "mountPath": mount["mountPath"]})
    resources = container.get("resources", {})
    app: Obj = {
        "name": task,
        "image": container["image"],
        "imagePullPolicy": "IfNotPresent",
        "command": container.get("command", []),
        "args": args,
        "env": env,
        "resources": {
            "requests": {
                "cpu": resources.get("resourceCpuRequest", "500m"),
                "memory": resources.get("resourceMemoryRequest", "1G"),
            },
            "limits": {
                "cpu": resources.get("resourceCpuLimit", "2"),
                "memory": resources.get("resourceMemoryLimit", "4G"),
            },
        },
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": mounts,
    }
    init = {**app, "name": f"{task}-init", "command": init_command, "args": []}
    labels = dict(settings.get("podMetadata", {}).get("labels", {}))
    inits = [init] if init_command else None
    return pipeline_step_job(
        name, namespace, labels, [app], volumes, backoff_limit=0, init_containers=inits
    )
