"""The runtime image every component runs in (the project installed, pinned deps).

The compiled pipeline pins this exact reference; `make images` builds and tags it.
"""

from __future__ import annotations

import os

VERSION = "0.1.0"
REGISTRY = "localhost/seamless"
RUNTIME_IMAGE = f"{REGISTRY}/runtime:{VERSION}"


def runtime_image() -> str:
    """The image reference for a run: `SEAMLESS_RUNTIME_IMAGE` overrides the pinned one."""
    return os.environ.get("SEAMLESS_RUNTIME_IMAGE", RUNTIME_IMAGE)


def seamless_component(func):  # type: ignore[no-untyped-def]
    """`dsl.component` in the runtime image, which already has kfp and the project.

    `install_kfp_package=False`: no pip install at run time (it fails in clusters
    without internet and would double the version pins).
    """
    from kfp import dsl

    return dsl.component(func, base_image=RUNTIME_IMAGE, install_kfp_package=False)
