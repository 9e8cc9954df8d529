"""The runtime image every component runs in (the project installed, pinned deps).

Registry, repository and tag come from `runtime_image.json` beside this module (package
data, read from a file, never from the environment at import). The tag is immutable:
`<version>-<digest of the image's inputs>` (lock file, Dockerfile, project sources),
so a changed component never reuses an old tag. `python -m components.common.image_tag`
(`make image-tag`) recomputes it; a test fails when it is stale, and the compiled
pipeline pins exactly this reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IMAGE_FILE = Path(__file__).with_name("runtime_image.json")


def image_settings() -> dict[str, str]:
    settings: dict[str, str] = json.loads(IMAGE_FILE.read_text())
    return settings


def image_ref(name: str = "runtime") -> str:
    """`<registry>/<name>:<tag>` for one of the project's images (runtime, serving, ...)."""
    s = image_settings()
    return f"{s['registry']}/{name}:{s['tag']}"


RUNTIME_IMAGE = image_ref("runtime")


def seamless_component(func: Any) -> Any:
    """`dsl.component` in the runtime image, which already has kfp and the project.

    `install_kfp_package=False`: no pip install at run time (it fails in clusters
    without internet and would double the version pins).
    """
    from kfp import dsl

    return dsl.component(func, base_image=RUNTIME_IMAGE, install_kfp_package=False)
