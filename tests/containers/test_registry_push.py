"""Images in a registry: tag for it, push, read the digest back, compile pinned to it.

A real registry (Debian's `docker-registry`, the CNCF distribution binary) on 127.0.0.1
with its storage in a temp folder; Docker treats loopback registries as insecure (plain
HTTP) by default, so no certificate is needed. The runtime image is pushed (the compiled
specs use it), which gzips ~1 GB: this takes a minute on the build machines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from components.common.image import image_ref, image_settings, load_digests
from components.common.net import free_port
from pipelines.compile import compile_all
from tests.containers.conftest import docker
from tests.helpers.require import unavailable

pytestmark = pytest.mark.containers
ROOT = Path(__file__).resolve().parents[2]
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)


@pytest.fixture()
def registry(tmp_path: Path, docker_engine: None) -> Iterator[str]:
    """`127.0.0.1:<port>` of a registry started for this test (stopped and emptied after)."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if not binary:
        unavailable("no registry binary: install Debian's docker-registry package")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    log = (tmp_path / "registry.log").open("w")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v2/"
    try:
        for _ in range(100):  # until it answers (or exits): a start, not a timed assertion
            if proc.poll() is not None:
                break
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            log_text = (tmp_path / "registry.log").read_text()
            pytest.fail(f"registry did not answer on {url}: {log_text}")
        assert proc.poll() is None, (tmp_path / "registry.log").read_text()
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_tag_push_record_and_pin(registry: str, images: dict[str, str], tmp_path: Path) -> None:
    prefix = f"{registry}/seamless"
    remote = image_ref("runtime", prefix)
    digests_file = tmp_path / "digests.json"
    env = {**os.environ, "REGISTRY": prefix, "IMAGE_DIGESTS": str(digests_file)}
    try:
        # What `make images REGISTRY=...` does after building.
        tagged = subprocess.run(
            [str(ROOT / "docker" / "push_images.sh"), "--tag-only", "runtime"],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert tagged.returncode == 0, tagged.stderr
        assert tagged.stdout.split() == [remote]
        assert docker("image", "inspect", "-f", "{{.Id}}", remote).stdout == (
            docker("image", "inspect", "-f", "{{.Id}}", images["runtime"]).stdout
        )

        # What `make push REGISTRY=...` does.
        pushed = subprocess.run(
            [str(ROOT / "docker" / "push_images.sh"), "runtime"],
            capture_output=True, text=True, timeout=900, env=env, check=False,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        digest = load_digests(digests_file)[remote]
        assert pushed.stdout.split() == [f"{remote}@{digest}"]

        # The registry serves that digest for the tag.
        tag = image_settings()["tag"]
        answer = requests.head(
            f"http://{registry}/v2/seamless/runtime/manifests/{tag}",
            headers={"Accept": MANIFEST_TYPES},
            timeout=30,
        )
        assert answer.status_code == 200
        assert answer.headers["Docker-Content-Digest"] == digest

        # Compiled specs pin every image to it, and Docker resolves the pinned reference.
        compile_all(tmp_path / "specs", image_prefix=prefix, digests_file=digests_file)
        pinned = f"{prefix}/runtime@{digest}"
        for spec in (tmp_path / "specs").glob("*.yaml"):
            text = spec.read_text()
            assert f"image: {pinned}" in text, spec.name
            assert "image: localhost/" not in text, spec.name
        docker("pull", pinned, timeout=600)
    finally:
        # Untag only: the local image keeps its own name.
        refs = [remote, *(f"{prefix}/runtime@{d}" for d in load_digests(digests_file).values())]
        for ref in refs:
            docker("image", "rm", ref, check=False)
