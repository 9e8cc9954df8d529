"""The component runtime image: non-root, read-only root, every stage importable, real work."""

from __future__ import annotations

import textwrap

import pytest

from tests.containers.conftest import ALL_IMAGES, docker, inspect

pytestmark = pytest.mark.containers

# A size budget, not a timing: the image is pulled onto every node that runs a step.
RUNTIME_MAX_BYTES = 1_200_000_000

STAGE_MODULES = (
    "components.ingest.ingest",
    "components.validate.validation",
    "components.features.features",
    "components.train.run",
    "components.evaluate.evaluation",
    "components.register.registry",
    "components.deploy.deployment",
    "kfp.dsl.executor_main",
)


def run_locked_down(image: str, script: str) -> str:
    """Run `script` the way a cluster would: non-root, read-only root, only /tmp writable."""
    proc = docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        image, "sh", "-ec", textwrap.dedent(script),
    )  # fmt: skip
    return proc.stdout


def test_runtime_runs_every_stage_as_non_root_on_a_read_only_root(images: dict[str, str]) -> None:
    imports = ", ".join(STAGE_MODULES)
    out = run_locked_down(
        images["runtime"],
        f"""
        echo "uid=$(id -u)"
        python -c "import {imports}; print('imports ok')"
        seamless --help >/dev/null && echo "help ok"
        seamless datasets generate --out /tmp/d --rows 200 >/dev/null
        ls /tmp/d
        """,
    )
    uid = int(out.split("uid=", 1)[1].split()[0])
    assert uid != 0, out
    assert "imports ok" in out and "help ok" in out, out
    for table in ("profiles", "transactions", "credit_history", "labels"):
        assert f"{table}.parquet" in out, out


def test_runtime_has_no_compiler_and_no_dev_tools(images: dict[str, str]) -> None:
    out = run_locked_down(
        images["runtime"],
        """
        for tool in gcc cc g++ make; do command -v "$tool" || true; done
        python - <<'PY'
        import importlib.util
        for name in ("pytest", "ruff", "mypy"):
            if importlib.util.find_spec(name):
                print("present:", name)
        PY
        """,
    )
    assert out.strip() == "", f"found in the runtime image:\n{out}"


def test_runtime_image_config(images: dict[str, str]) -> None:
    config = inspect(images["runtime"])["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] not in ("", "0", "root")
    assert env["HOME"] == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for key, value in {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "false",
    }.items():
        assert env.get(key) == value, key


def test_runtime_image_size_budget(images: dict[str, str]) -> None:
    size = inspect(images["runtime"])["Size"]
    assert size <= RUNTIME_MAX_BYTES, f"runtime image is {size / 1e6:.0f} MB (budget 1200 MB)"


def test_tags_are_immutable(images: dict[str, str]) -> None:
    for name in ALL_IMAGES:
        ref = images[name]
        assert not ref.endswith(":latest") and ":" in ref.rsplit("/", 1)[-1], ref
        tags = inspect(ref)["RepoTags"]
        assert not [t for t in tags if t.endswith(":latest")], f"{name} is tagged latest: {tags}"
