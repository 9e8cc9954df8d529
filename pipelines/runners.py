"""The kfp.local runners Seamless supports: in-process environment or the runtime image.

Both see the same workspace at the same absolute path (the Docker runner bind-mounts
it), so MLflow artifact locations and Feast source paths recorded by one runner are
valid for the other and for the host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from components.common.env import TELEMETRY_OFF
from components.common.errors import SeamlessError
from components.common.image import RUNTIME_IMAGE

RUNNERS = ("subprocess", "docker")
IMAGE_USER = 10001
"""The runtime image's non-root user (docker/runtime/Dockerfile)."""


def make_runner(kind: str, workspace: Path, data_dir: Path | None, settings: dict[str, str]) -> Any:
    from kfp import local

    if kind == "subprocess":
        return local.SubprocessRunner(use_venv=False)
    if kind == "docker":
        return docker_runner(workspace, data_dir, settings)
    raise SeamlessError(f"Unknown runner '{kind}'; use one of {', '.join(RUNNERS)}.")


def require_image(image: str) -> None:
    """Fail before the first step when the image is missing (instead of a pull error)."""
    try:
        from docker.errors import DockerException, ImageNotFound

        import docker
    except ImportError:
        raise SeamlessError("The docker runner needs the 'docker' Python package.") from None
    try:
        client = docker.from_env()  # type: ignore[attr-defined]
    except DockerException as exc:
        raise SeamlessError(
            f"Docker Engine is not reachable ({exc}); start dockerd or use --runner subprocess."
        ) from None
    try:
        client.images.get(image)
    except ImageNotFound:
        raise SeamlessError(
            f"Image {image} is not on this machine; build it with `make images` "
            "(offline: `make base-image` then `make images BASE_IMAGE=<base>`)."
        ) from None
    finally:
        client.close()


def _owned_by_image_user(path: Path) -> None:
    """As root, hand the workspace to the image's user so its steps can write there."""
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), IMAGE_USER, IMAGE_USER, follow_symlinks=False)
    os.chown(path, IMAGE_USER, IMAGE_USER)


def _readable_by_others(folder: Path) -> None:
    """The steps run as the image's user: the (read-only) data folder must let it in."""
    if not folder.exists():
        return  # ingest reports the missing file itself, with its name
    mode = folder.stat().st_mode
    if mode & 0o005 != 0o005 and folder.stat().st_uid != IMAGE_USER:
        raise SeamlessError(
            f"Data folder {folder} is not readable by the container's user (uid {IMAGE_USER}); "
            f"make it readable (chmod o+rx {folder}) or run with --runner subprocess."
        )


def docker_runner(workspace: Path, data_dir: Path | None, settings: dict[str, str]) -> Any:
    from docker.types import Mount
    from kfp import local

    require_image(RUNTIME_IMAGE)
    ws = workspace.resolve()
    mounts = [Mount(target=str(ws), source=str(ws), type="bind")]
    if data_dir is not None:
        data = data_dir.resolve()
        mounts.append(Mount(target=str(data), source=str(data), type="bind", read_only=True))
    if os.geteuid() == 0:
        _owned_by_image_user(ws)
        user = f"{IMAGE_USER}:{IMAGE_USER}"
        if data_dir is not None:
            _readable_by_others(data_dir.resolve())
    else:
        user = f"{os.getuid()}:{os.getgid()}"
    environment = {**TELEMETRY_OFF, **settings, "HOME": "/tmp"}
    # SEAMLESS_PII_KEY: the pseudonymization key (config `pii` tags) reaches the steps
    # as it reaches them on a cluster, from the environment only.
    passed = ("SEAMLESS_ERROR_FILE", "SEAMLESS_ACTOR", "SEAMLESS_ROLE", "SEAMLESS_AUDIT_URL")
    for key in (*passed, "SEAMLESS_PII_KEY"):
        if key in os.environ:
            environment[key] = os.environ[key]
    remote = settings["MLFLOW_TRACKING_URI"].startswith(("http://", "https://"))
    return local.DockerRunner(
        mounts=mounts,
        environment=environment,
        user=user,
        read_only=True,
        tmpfs={"/tmp": "rw,exec,size=4g"},
        # Local stores are files in the workspace: no network unless a server is used.
        network_mode="host" if remote else "none",
    )
