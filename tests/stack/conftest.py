"""The stack tier: the workloads of the rendered kind overlay, run on Docker.

manifests/tools/docker_stack.py turns the rendered objects into containers; this module
only decides what must be present (Docker, the project's images, the stand-ins) and
starts/stops one stack per test module. Without Docker or the images the tier skips
with what to do; with `CI` set that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.common.image import image_ref
from tests.helpers.require import unavailable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "manifests" / "tools"))

import docker_stack  # noqa: E402

PROJECT_IMAGES = ("runtime", "serving", "mlflow", "feast")


def _base_image() -> str:
    """BASE_IMAGE, else the base the runtime image was built on (its label)."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    out = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "-f",
            '{{index .Config.Labels "io.seamless.base-image"}}',
            image_ref("runtime"),
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not out or out == "<no value>":
        unavailable("cannot tell the base image for the stand-ins: set BASE_IMAGE")
    return out


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        unavailable("Docker Engine is not reachable: install docker.io and start dockerd")
    missing = [
        image_ref(n)
        for n in PROJECT_IMAGES
        if subprocess.run(
            ["docker", "image", "inspect", image_ref(n)], capture_output=True
        ).returncode
    ]
    if missing:
        unavailable(f"images not built ({', '.join(missing)}): run `make images BASE_IMAGE=...`")
    objects = docker_stack.render("kind")
    stand_ins = docker_stack.build_substitutes(_base_image())
    running = docker_stack.Stack(
        objects, stand_ins, network=f"seamless-stack-{uuid.uuid4().hex[:8]}"
    )
    try:
        running.up()
        # The object store first: its buckets Job runs once it answers, before any client.
        running.wait("minio", "ready")
        running.complete_jobs(["minio-buckets"])
        for workload in ("postgres", "redis", "mlflow", "feast-server"):
            running.wait(workload, "ready")
        # MLflow's accounts (the dashboard's READ-only user) once MLflow answers.
        running.complete_jobs(["mlflow-accounts"])
        for workload in ("prometheus", "alertmanager"):
            running.wait(workload, "ready")
        # Serving is alive now but only ready once a champion exists (the tests make one).
        running.wait("serving", "live")
        yield running
    finally:
        # SEAMLESS_STACK_KEEP=1 leaves it running to look at (`docker_stack.py down` removes it).
        if not os.environ.get("SEAMLESS_STACK_KEEP"):
            running.down()
