"""Images in any registry: every image of every compiled spec carries the prefix, pinned to a
recorded digest when one is known for the exact tag; bad prefixes are one sentence."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.config import default_config_path
from components.common.errors import SeamlessError
from components.common.image import (
    IMAGE_NAMES,
    check_prefix,
    image_ref,
    image_settings,
    load_digests,
    record_digest,
)
from pipelines.compile import compile_all, compiled_pipelines
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.unit
PREFIX = "ghcr.io/acme/seamless"
DIGEST = "sha256:" + "ab" * 32


def _images(node: Any) -> Iterator[str]:
    """Every `image:` value anywhere in a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from _images(value)
    elif isinstance(node, list):
        for item in node:
            yield from _images(item)


def _spec_images(folder: Path) -> dict[str, list[str]]:
    out = {}
    for name in compiled_pipelines():
        docs = [d for d in yaml.safe_load_all((folder / f"{name}.yaml").read_text()) if d]
        out[name] = [image for doc in docs for image in _images(doc)]
    return out


def _run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, drop=["SEAMLESS_IMAGE_PREFIX"], **env)


def test_every_image_carries_the_prefix(tmp_path: Path) -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    compile_all(tmp_path, image_prefix=PREFIX, digests_file=tmp_path / "none.json")
    tag = image_settings()["tag"]
    for name, images in _spec_images(tmp_path).items():
        assert images, f"{name}: no image in the compiled spec"
        spark = {f"{PREFIX}/spark:{tag}"} if name.endswith("-spark") else set()
        assert set(images) == {f"{PREFIX}/runtime:{tag}"} | spark, name
        if spark:  # the executors' image, an environment value of the driver steps
            text = (tmp_path / f"{name}.yaml").read_text()
            assert f"value: {PREFIX}/spark:{tag}" in text and "localhost/" not in text
        spec = pipeline_spec_pb2.PipelineSpec()
        doc = next(yaml.safe_load_all((tmp_path / f"{name}.yaml").read_text()))
        json_format.ParseDict(doc, spec, ignore_unknown_fields=False)
    assert not list(tmp_path.glob(".*")), "a temporary spec was left behind"


def test_digest_pinned_when_known_for_the_exact_tag(tmp_path: Path) -> None:
    tag = image_settings()["tag"]
    digests = tmp_path / "digests.json"
    record_digest(f"{PREFIX}/runtime:{tag}", DIGEST, digests)
    # A digest recorded for another tag (an older push) must not be used.
    record_digest(f"{PREFIX}/serving:0.0.0-old", "sha256:" + "cd" * 32, digests)
    compile_all(tmp_path / "out", image_prefix=PREFIX, digests_file=digests)
    for name, images in _spec_images(tmp_path / "out").items():
        spark = {f"{PREFIX}/spark:{tag}"} if name.endswith("-spark") else set()
        assert set(images) == {f"{PREFIX}/runtime@{DIGEST}"} | spark, name
    refs = {n: image_ref(n, PREFIX, load_digests(digests)) for n in IMAGE_NAMES}
    assert refs["runtime"] == f"{PREFIX}/runtime@{DIGEST}"
    assert refs["serving"] == f"{PREFIX}/serving:{tag}"


def test_no_prefix_keeps_the_local_names(tmp_path: Path) -> None:
    digests = tmp_path / "digests.json"
    record_digest(f"{image_ref('runtime')}", DIGEST, digests)  # ignored without a prefix
    assert image_ref("runtime", None, load_digests(digests)) == (
        f"{image_settings()['registry']}/runtime:{image_settings()['tag']}"
    )


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        ("ghcr.io/Acme/seamless", "uppercase"),
        ("ghcr.io/acme/seamless:1.0", "has a tag"),
        ("ghcr.io/acme/seamless@sha256:" + "ab" * 32, "has a digest"),
        ("https://ghcr.io/acme", "URL scheme"),
        ("ghcr.io/acme/", "ends with '/'"),
        ("ghcr.io/acme seamless", "not a registry/repository path"),
    ],
)
def test_bad_prefix_is_one_sentence(prefix: str, why: str) -> None:
    with pytest.raises(SeamlessError, match=why) as err:
        check_prefix(prefix)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


@pytest.mark.parametrize(
    "prefix", ["ghcr.io/acme/seamless", "127.0.0.1:5000/seamless", "localhost:5000", "registry"]
)
def test_good_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


def test_cli_flag_env_and_config(tmp_path: Path) -> None:
    tag = image_settings()["tag"]
    flag = _run("compile", "--out", "flag", "--image-prefix", PREFIX, cwd=tmp_path)
    assert flag.returncode == 0, flag.stderr
    assert set(_spec_images(tmp_path / "flag")["training"]) == {f"{PREFIX}/runtime:{tag}"}

    env = _run("compile", "--out", "env", cwd=tmp_path, SEAMLESS_IMAGE_PREFIX="registry.local/x")
    assert env.returncode == 0, env.stderr
    assert set(_spec_images(tmp_path / "env")["monitoring"]) == {f"registry.local/x/runtime:{tag}"}

    config = tmp_path / "uc.yaml"
    config.write_text(
        default_config_path().read_text() + "\nimage_prefix: quay.example/team/seamless\n"
    )
    digests = tmp_path / "digests.json"
    record_digest(f"quay.example/team/seamless/runtime:{tag}", DIGEST, digests)
    cfg = _run(
        "compile", "--out", "cfg", "--config", str(config), "--image-digests", str(digests),
        cwd=tmp_path,
    )  # fmt: skip
    assert cfg.returncode == 0, cfg.stderr
    assert set(_spec_images(tmp_path / "cfg")["training"]) == {
        f"quay.example/team/seamless/runtime@{DIGEST}"
    }


def test_cli_refuses_a_bad_prefix_and_writes_nothing(tmp_path: Path) -> None:
    bad = _run("compile", "--out", "out", "--image-prefix", "ghcr.io/acme/x:v1", cwd=tmp_path)
    assert bad.returncode == 1
    assert "--image-prefix (or SEAMLESS_IMAGE_PREFIX) 'ghcr.io/acme/x:v1' has a tag" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "out").exists()

    config = tmp_path / "uc.yaml"
    config.write_text(default_config_path().read_text() + "\nimage_prefix: Ghcr.io/acme\n")
    cfg = _run("compile", "--out", "out", "--config", str(config), cwd=tmp_path)
    assert cfg.returncode == 1
    assert f"{config}: key 'image_prefix': the registry prefix has uppercase" in cfg.stderr
    assert not (tmp_path / "out").exists()


def test_a_corrupt_digests_file_is_named(tmp_path: Path) -> None:
    digests = tmp_path / "digests.json"
    digests.write_text(json.dumps({f"{PREFIX}/runtime:x": "md5:00"}))
    with pytest.raises(SeamlessError, match=r"digests\.json: the digest of .* is not sha256"):
        compile_all(tmp_path / "out", image_prefix=PREFIX, digests_file=digests)
    assert not (tmp_path / "out").exists()
