"""What the Docker stack's small kubelet (manifests/tools/stack_pods.py) resolves the way
the kubelet does: optional ConfigMap/Secret references, used by the pods that read the
object store settings only where an overlay has them."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "manifests" / "tools"))
from stack_pods import StackError, index, resolve_env

pytestmark = pytest.mark.manifests

CONFIG = {"kind": "ConfigMap", "metadata": {"name": "endpoints"}, "data": {"URL": "http://s3"}}
SECRET = {
    "kind": "Secret",
    "metadata": {"name": "keys"},
    "data": {"KEY": base64.b64encode(b"k1").decode()},
}


def _env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    return resolve_env(container, {}, {}, "pod-0", index(objects), "CronJob/x")


def _container(optional: bool) -> dict[str, Any]:
    return {
        "envFrom": [{"configMapRef": {"name": "endpoints", "optional": optional}}],
        "env": [
            {
                "name": "AWS_ACCESS_KEY_ID",
                "valueFrom": {"secretKeyRef": {"name": "keys", "key": "KEY", "optional": optional}},
            }
        ],
    }


def test_optional_references_resolve_when_present() -> None:
    assert _env(_container(True), [CONFIG, SECRET]) == {
        "URL": "http://s3",
        "AWS_ACCESS_KEY_ID": "k1",
    }


def test_optional_references_add_nothing_when_absent() -> None:
    assert _env(_container(True), []) == {}
    # A present Secret without the key: also nothing, as the kubelet does.
    empty = {**SECRET, "data": {}}
    assert _env(_container(True), [CONFIG, empty]) == {"URL": "http://s3"}


def test_required_references_name_what_is_missing() -> None:
    with pytest.raises(StackError, match="ConfigMap/endpoints"):
        _env(_container(False), [SECRET])
    with pytest.raises(StackError, match="Secret/keys"):
        _env(_container(False), [CONFIG])
