"""Fixtures for the container tier: Docker Engine and the images `make images` builds.

Without Docker (or without the images) the tier is skipped with what to do; with `CI`
set that is a failure instead, so CI cannot go green without running it.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from components.common.image import image_ref
from tests.helpers.require import unavailable

SERVICE_IMAGES = ("mlflow", "feast")
ALL_IMAGES = ("runtime", "serving", *SERVICE_IMAGES, "spark")


def docker(
    *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; on failure the error names the command and its stderr."""
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="module")
def docker_engine() -> None:
    try:
        ok = docker("info", timeout=30, check=False).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        unavailable(
            "Docker Engine is not reachable: "
            "install Docker Engine (Debian: docker.io) and start dockerd"
        )


@pytest.fixture(scope="module")
def images(docker_engine: None) -> dict[str, str]:
    """name -> reference of every image, all present locally."""
    refs = {name: image_ref(name) for name in ALL_IMAGES}
    missing = [
        ref for ref in refs.values() if docker("image", "inspect", ref, check=False).returncode
    ]
    if missing:
        unavailable(
            f"images not built ({', '.join(missing)}): run `make images BASE_IMAGE=...` first "
            "(`make base-image` prints a BASE_IMAGE that needs no registry)"
        )
    return refs


def inspect(ref: str) -> dict:
    return json.loads(docker("image", "inspect", ref).stdout)[0]


@dataclass
class Container:
    name: str

    def port(self, container_port: int) -> int:
        """The 127.0.0.1 host port published for `container_port`."""
        out = docker("port", self.name, f"{container_port}/tcp").stdout.split()
        return int(out[0].rsplit(":", 1)[1])

    def health(self) -> str:
        state = json.loads(docker("inspect", "-f", "{{json .State}}", self.name).stdout)
        if not state.get("Running"):
            return "exited"
        return str(state.get("Health", {}).get("Status", "none"))

    def logs(self) -> str:
        proc = docker("logs", "--tail", "60", self.name, check=False)
        return proc.stdout + proc.stderr

    def wait_healthy(self, timeout: float = 150) -> None:
        """Until Docker's own HEALTHCHECK reports healthy; fail with the logs otherwise."""
        deadline = time.monotonic() + timeout
        status = "starting"
        while time.monotonic() < deadline:
            status = self.health()
            if status in ("healthy", "exited", "unhealthy"):
                break
            time.sleep(1)
        assert status == "healthy", f"{self.name} is {status}, not healthy:\n{self.logs()}"


@pytest.fixture()
def start_container(docker_engine: None) -> Iterator:
    """`start_container(image, *docker_run_args, command=[...])`; removed after the test."""
    names: list[str] = []

    def start(image: str, *run_args: str, command: tuple[str, ...] = ()) -> Container:
        name = f"seamless-test-{uuid.uuid4().hex[:10]}"
        names.append(name)
        docker("run", "-d", "--name", name, *run_args, image, *command)
        return Container(name)

    yield start
    for name in names:
        docker("rm", "-f", "-v", name, check=False)


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> int:
    """Status code of a GET (no exception for 4xx/5xx)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
