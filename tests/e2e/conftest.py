"""The e2e tier's cluster: `--kube-context` or SEAMLESS_KUBE_CONTEXT, else the current context."""

from __future__ import annotations

import pytest

from tests.e2e.cluster import Kubectl, kube_context, kubectl_binary, skip_reason


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kube-context",
        default=None,
        help="kubeconfig context the e2e tier runs against (default: SEAMLESS_KUBE_CONTEXT, "
        "else the current context of KUBECONFIG)",
    )


@pytest.fixture(scope="module")
def kubectl(request: pytest.FixtureRequest) -> Kubectl:
    """kubectl bound to the chosen context and the `seamless` namespace; skips (with how to
    point the tier at a cluster) when none is configured or none answers within seconds."""
    option = request.config.getoption("kube_context", default=None)
    client = Kubectl(kubectl_binary(), kube_context(option))
    reason = skip_reason(client)
    if reason:
        pytest.skip(reason)
    return client
