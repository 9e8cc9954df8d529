"""The cluster deploy: roll the serving Deployment to the new champion via the Kubernetes API.

The step runs as the `seamless-pipeline` ServiceAccount, whose Role allows exactly get
and patch on `deployments/serving` (manifests/base/rbac). Serving loads the registry's
`champion` alias at start, so a rollout (a changed pod-template annotation) is what
makes every replica pick the new version, with the Deployment's surge and probes
keeping the old pods serving until the new ones are ready.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from components.common.errors import SeamlessError

VERSION_ANNOTATION = "seamless.dev/model-version"
DEPLOYED_AT_ANNOTATION = "seamless.dev/deployed-at"
# (connect, read) seconds per API call: a NetworkPolicy that drops the step's traffic to
# the API server must end in a sentence, not a hang of the OS connect timeout.
API_TIMEOUT = (5.0, 30.0)


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


def api_server(api: Any) -> str:
    """The API server address the client talks to (from its configuration)."""
    host = getattr(getattr(getattr(api, "api_client", None), "configuration", None), "host", "")
    return str(host) or "(unknown address)"


def connection_reason(exc: BaseException) -> str:
    """The root cause of a urllib3 connection failure, in a few words (no object reprs)."""
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError

    root: BaseException = exc
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        root = exc.reason
    seen: BaseException | None = root
    while seen is not None:
        if isinstance(seen, ReadTimeoutError | TimeoutError):
            return "timed out waiting for an answer"
        if isinstance(seen, OSError) and seen.strerror:
            return str(seen.strerror)
        seen = seen.__cause__ or seen.__context__
    text = str(root)
    # urllib3 prefixes its messages with the connection's repr: HTTPConnection(host=..): ...
    text = re.sub(r"^\w+\(host=[^)]*\):\s*", "", text)
    return text.rstrip(".") or type(root).__name__


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
    timeout: tuple[float, float] = API_TIMEOUT,
) -> dict[str, Any]:
    """Patch the serving Deployment's pod template so it rolls to `version`.

    `timeout` is (connect, read) seconds per API call. A connection failure (refused,
    timed out, TLS, DNS) ends in one sentence naming the API server address and the reason.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = api or apps_api()
    where = f"deployment {namespace}/{deployment}"
    try:
        api.read_namespaced_deployment(deployment, namespace, _request_timeout=timeout)
        api.patch_namespaced_deployment(
            deployment,
            namespace,
            rollout_patch(model_name, version, pipeline_run_id),
            _request_timeout=timeout,
        )
    except (HTTPError, OSError) as exc:
        raise SeamlessError(
            f"Cannot reach the Kubernetes API server at {api_server(api)} to patch {where}: "
            f"{connection_reason(exc)} (check that the step's egress NetworkPolicy allows "
            "that address)."
        ) from None
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
