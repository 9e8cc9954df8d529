"""KFP pipeline root in object storage: validated in one sentence, carried by the spec
(`seamless compile --pipeline-root`) and by the run `seamless submit` creates (offline:
a loopback endpoint records what the KFP client sends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from typer.testing import CliRunner

from components.common.errors import SeamlessError
from pipelines.cli import app
from pipelines.compile import COMPILED_DIR, compiled_pipelines
from pipelines.submit import check_pipeline_root, set_pipeline_root, submit
from tests.helpers.loopback import answer, loopback_server

pytestmark = pytest.mark.unit

ROOT = "s3://seamless-pipelines/runs"


def _docs(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "root", ["s3://seamless-pipelines", "gs://b-1/x/y/", "minio://mlpipeline/v2/artifacts",
             "s3://seamless-pipelines/runs?endpoint=http://minio:9000&s3ForcePathStyle=true"],
)  # fmt: skip
def test_object_store_roots_are_accepted(root: str) -> None:
    assert check_pipeline_root(root).startswith(root.split("/")[0])


@pytest.mark.parametrize(
    ("root", "sentence"),
    [
        (
            "/data/pipelines",
            "--pipeline-root '/data/pipelines' must be an object store URI (s3://bucket/prefix, "
            "gs://bucket/prefix, minio://bucket/prefix); Kubeflow Pipelines keeps every step's "
            "outputs there.",
        ),
        (
            "s3:///runs",
            "--pipeline-root 's3:///runs' names no valid bucket (expected s3://bucket/prefix).",
        ),
    ],
)
def test_other_roots_are_one_sentence(root: str, sentence: str) -> None:
    with pytest.raises(SeamlessError) as err:
        check_pipeline_root(root)
    assert str(err.value) == sentence


def test_the_spec_carries_the_root_and_keeps_its_platform_document(tmp_path: Path) -> None:
    source = COMPILED_DIR / "training.yaml"
    out = set_pipeline_root(source, ROOT + "/", tmp_path / "training.yaml")
    before, after = _docs(source), _docs(out)
    assert after[0]["defaultPipelineRoot"] == ROOT
    assert {k: v for k, v in after[0].items() if k != "defaultPipelineRoot"} == before[0]
    assert after[1:] == before[1:]  # kubernetes platform config untouched
    from kfp.client.client import _extract_pipeline_yaml  # what kfp.Client itself loads

    assert _extract_pipeline_yaml(str(out)).pipeline_spec.default_pipeline_root == ROOT


def test_compile_writes_the_root_into_every_spec(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compile", "--out", str(tmp_path), "--pipeline-root", ROOT])
    assert result.exit_code == 0, result.output
    specs = sorted(tmp_path.glob("*.yaml"))
    assert [p.name for p in specs] == sorted(f"{n}.yaml" for n in compiled_pipelines())
    assert "training-spark.yaml" in [p.name for p in specs]
    assert all(_docs(p)[0]["defaultPipelineRoot"] == ROOT for p in specs)


def test_compile_refuses_a_local_root_before_writing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compile", "--out", str(tmp_path), "--pipeline-root", "/x"])
    assert result.exit_code != 0  # main() prints the SeamlessError as one sentence
    assert isinstance(result.exception, SeamlessError)
    assert "must be an object store URI" in str(result.exception)
    assert not list(tmp_path.iterdir())


class _Recorder(BaseHTTPRequestHandler):
    posts: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def _answer(self, body: dict[str, Any]) -> None:
        answer(self, json.dumps(body).encode(), "application/json")

    def do_GET(self) -> None:
        self._answer({})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.posts.append((self.path, body))
        if self.path.endswith("/experiments"):
            self._answer({"experiment_id": "e1", "display_name": "seamless"})
        else:
            self._answer({"run_id": "r1", "display_name": "run"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def kfp_recorder() -> Iterator[str]:
    _Recorder.posts = []
    with loopback_server(_Recorder) as url:
        yield url


def test_submit_sends_the_root_with_the_run(kfp_recorder: str) -> None:
    done = submit(
        kfp_recorder, "training", {"config_yaml": "x", "data_dir": ""}, pipeline_root=ROOT
    )
    assert done.run_id == "r1"
    runs = [body for path, body in _Recorder.posts if path.endswith("/runs")]
    assert len(runs) == 1
    assert runs[0]["runtime_config"]["pipeline_root"] == ROOT
    # With a platform (kubernetes) document the client nests the two specs.
    assert runs[0]["pipeline_spec"]["pipeline_spec"]["defaultPipelineRoot"] == ROOT


def test_submit_refuses_a_bad_root_before_any_request(kfp_recorder: str) -> None:
    with pytest.raises(SeamlessError, match="must be an object store URI"):
        submit(kfp_recorder, "training", {}, pipeline_root="file:///tmp/x")
    assert _Recorder.posts == []


def test_cluster_steps_take_object_storage_settings_from_its_configmap_and_secret(
    tmp_path: Path,
) -> None:
    from kfp import compiler

    from pipelines.training import CA_DIR, LAUNCHER_CA_DIRS, OBJECT_STORE_ENV, training_pipeline

    out = tmp_path / "training.yaml"
    compiler.Compiler().compile(training_pipeline, str(out))
    executors = _docs(out)[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    containers = _docs(out)[0]["deploymentSpec"]["executors"]
    assert executors
    assert "AWS_CA_BUNDLE" in OBJECT_STORE_ENV
    for name, spec in executors.items():
        # kind's MinIO is HTTPS: AWS_CA_BUNDLE (mapped below) and KFP's launcher, which
        # moves the step's artifacts, trust the seamless-ca folder the step mounts.
        env = {e["name"]: e["value"] for e in containers[name]["container"].get("env", [])}
        assert env["SSL_CERT_DIR"] == LAUNCHER_CA_DIRS, name
        assert LAUNCHER_CA_DIRS.split(":")[0] == CA_DIR
        ca = [m for m in spec["configMapAsVolume"] if m["configMapName"] == "seamless-ca"]
        assert [m["mountPath"] for m in ca] == [CA_DIR], name
        maps = [m for m in spec["configMapAsEnv"] if m["configMapName"] == "seamless-s3-endpoint"]
        assert len(maps) == 1 and maps[0]["optional"], name
        assert sorted(e["envVar"] for e in maps[0]["keyToEnv"]) == sorted(OBJECT_STORE_ENV)
        assert spec["podMetadata"]["labels"]["seamless.dev/s3-client"] == "true"
        secret = [s for s in spec["secretAsEnv"] if s["secretName"] == "seamless-s3"]
        assert len(secret) == 1 and secret[0]["optional"], name
        assert sorted(e["envVar"] for e in secret[0]["keyToEnv"]) == [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]
