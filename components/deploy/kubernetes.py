"""The cluster deploy: roll the serving Deployment to the new champion via the Kubernetes API.

The step runs as the `seamless-pipeline` ServiceAccount, whose Role allows exactly get
and patch on `deployments/serving` (manifests/base/rbac). Serving loads the registry's
`champion` alias at start, so a rollout (a changed pod-template annotation) is what
makes every replica pick the new version, with the Deployment's surge and probes
keeping the old pods serving until the new ones are ready.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from components.common.errors import SeamlessError

VERSION_ANNOTATION = "seamless.dev/model-version"
DEPLOYED_AT_ANNOTATION = "seamless.dev/deployed-at"


def apps_api() -> Any:
    """AppsV1Api from the in-cluster ServiceAccount, else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except Exception as exc:
            raise SeamlessError(
                f"No Kubernetes credentials: not in a pod and no kubeconfig ({exc})."
            ) from None
    return client.AppsV1Api()


def rollout_patch(model_name: str, version: str, pipeline_run_id: str) -> dict[str, Any]:
    annotations = {
        VERSION_ANNOTATION: f"{model_name}/{version}",
        DEPLOYED_AT_ANNOTATION: datetime.now(UTC).isoformat(),
        "seamless.dev/pipeline-run-id": pipeline_run_id,
    }
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def roll_serving(
    model_name: str,
    version: str,
    namespace: str,
    deployment: str,
    pipeline_run_id: str = "",
    api: Any | None = None,
) -> dict[str, Any]:
    """Patch the serving Deployment's pod template so it rolls to `version`."""
    from kubernetes.client.exceptions import ApiException

    api = api or apps_api()
    where = f"deployment {namespace}/{deployment}"
    try:
        api.read_namespaced_deployment(deployment, namespace)
        api.patch_namespaced_deployment(
            deployment, namespace, rollout_patch(model_name, version, pipeline_run_id)
        )
    except ApiException as exc:
        if exc.status in (401, 403):
            raise SeamlessError(
                f"Not allowed to patch {where} (HTTP {exc.status}); the step's ServiceAccount "
                "needs get and patch on it."
            ) from None
        if exc.status == 404:
            raise SeamlessError(f"The serving {where} does not exist.") from None
        raise SeamlessError(f"Patching {where} failed: HTTP {exc.status} {exc.reason}.") from None
    return {
        "model_name": model_name,
        "version": str(version),
        "model_uri": f"models:/{model_name}/{version}",
        "target": f"kubernetes:{namespace}/{deployment}",
    }
