"""The Spark image (docker/spark): a data step on Spark inside it, and the image as a Spark
executor of a real driver.

No Kubernetes here, so the executor is checked the way Spark's Kubernetes scheduler would
start it, minus the API server: the image's `executor` entrypoint, given the environment
the scheduler sets (driver URL, ids, the driver's JVM options as SPARK_JAVA_OPT_<n>), joins
a driver running on the host (a Spark standalone master from the dev venv's pyspark only
hands out the application id) and runs the driver's Python tasks in the image's venv.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.common.image import image_ref
from components.common.net import free_port
from tests.containers.conftest import docker
from tests.helpers.require import unavailable

pytestmark = [pytest.mark.containers, pytest.mark.spark]

ROWS = 400
# A size budget, not a timing: every node running a Spark step or executor pulls it.
SPARK_MAX_BYTES = 2_200_000_000
INGEST = """
import json, sys
from pathlib import Path
import pipelines
from components.common.config import load_config
from components.ingest.stage import ingest_tables
config = load_config(Path(pipelines.__file__).parent / "configs" / "credit_risk.yaml")
config = config.model_copy(update={{"engine": "{engine}", "spark": config.spark.model_copy(
    update={{"master": "local[2]", "conf": {{"spark.driver.memory": "1g"}}}})}})
m = ingest_tables(config, sys.argv[1], sys.argv[2])
print("MANIFEST " + json.dumps({{k: m[k] for k in ("source_sha256", "engine")}}))
"""


@pytest.fixture(scope="module")
def spark_image(docker_engine: None) -> str:
    ref = image_ref("spark")
    if docker("image", "inspect", ref, check=False).returncode:
        unavailable(f"image {ref} not built: run `make images BASE_IMAGE=...` first")
    return ref


def _manifest(out: str) -> dict:
    line = next(x for x in out.splitlines() if x.startswith("MANIFEST "))
    return dict(json.loads(line.removeprefix("MANIFEST ")))


def test_a_spark_step_runs_locked_down_and_matches_the_local_engine(
    spark_image: str, tmp_path: Path
) -> None:
    """Local-mode Spark in the image: non-root, read-only root, no network; the snapshot's
    data hash equals the host's local engine on the same generated data."""
    data = tmp_path / "data"
    subprocess.run(
        [str(Path(sys.executable).parent / "seamless"), "datasets", "generate",
         "--out", str(data), "--rows", str(ROWS)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    host = subprocess.run(
        [sys.executable, "-c", INGEST.format(engine="local"), str(data), str(tmp_path / "local")],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    data.chmod(0o755)
    proc = docker(
        # /tmp as a pod's emptyDir: writable and not noexec (Docker's tmpfs default),
        # since snappy-java and Spark load native code they unpack there.
        "run", "--rm", "--read-only", "--tmpfs", "/tmp:exec", "--network", "none",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-v", f"{data}:/data:ro", spark_image,
        "sh", "-ec", 'python -c "$0" /data /tmp/out && id -u',
        textwrap.dedent(INGEST.format(engine="spark")),
    )  # fmt: skip
    inside = _manifest(proc.stdout)
    assert inside["engine"] == "spark"
    assert inside["source_sha256"] == _manifest(host.stdout)["source_sha256"]
    assert proc.stdout.strip().splitlines()[-1] != "0"  # not root


@pytest.fixture
def standalone_master() -> Iterator[int]:
    """A Spark standalone master on loopback (the dev venv's pyspark, Java from Debian)."""
    import pyspark

    port = free_port()
    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    master = subprocess.Popen(
        [str(spark_class), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(free_port())],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the Spark standalone master did not listen within 60 s")
        yield port
    finally:
        os.killpg(master.pid, 15)
        master.wait(timeout=30)


DRIVER = """
import json, os, sys
from pyspark.sql import SparkSession
master, driver_port, block_port = sys.argv[1:4]
s = (SparkSession.builder.master(f"spark://127.0.0.1:{master}").appName("executor-check")
     .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
     .config("spark.driver.port", driver_port).config("spark.blockManager.port", block_port)
     .config("spark.ui.enabled", "false").config("spark.executor.memory", "512m")
     .config("spark.pyspark.python", "/opt/venv/bin/python").getOrCreate())
opts = s.sparkContext.getConf().get("spark.executor.extraJavaOptions", "")
print("APP " + json.dumps([s.sparkContext.applicationId, opts]), flush=True)

def where(rows):
    import sys
    import components.ingest.spark_normalize as n
    for r in rows:
        yield (sys.executable, n.__file__, r * r)

out = s.sparkContext.parallelize(range(6), 3).mapPartitions(where).collect()
print("RESULT " + json.dumps(out), flush=True)
s.stop()
"""


def test_the_image_is_a_spark_executor(
    spark_image: str, standalone_master: int, tmp_path: Path
) -> None:
    driver_port, block_port = free_port(), free_port()
    driver_log = tmp_path / "driver.log"
    # The executors must run the image's Python (spark.pyspark.python), which a
    # PYSPARK_PYTHON left by a Spark session of this process would override.
    driver_env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(standalone_master), str(driver_port), str(block_port)],
        stdout=subprocess.PIPE, stderr=driver_log.open("w"), text=True, start_new_session=True,
        env=driver_env,
    )  # fmt: skip
    executor = f"seamless-executor-test-{os.getpid()}"
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        assert line.startswith("APP "), f"the driver did not start: {line!r}"
        app_id, java_opts = json.loads(line.removeprefix("APP "))
        # What Spark's Kubernetes scheduler puts in an executor pod's environment.
        env = {
            "SPARK_DRIVER_URL": f"spark://CoarseGrainedScheduler@127.0.0.1:{driver_port}",
            "SPARK_EXECUTOR_ID": "1",
            "SPARK_EXECUTOR_CORES": "1",
            "SPARK_EXECUTOR_MEMORY": "512m",
            "SPARK_APPLICATION_ID": app_id,
            "SPARK_EXECUTOR_POD_IP": "127.0.0.1",
            "SPARK_EXECUTOR_POD_NAME": "executor-1",
            "SPARK_RESOURCE_PROFILE_ID": "0",
        }
        opts = [*java_opts.split(), f"-Dspark.driver.port={driver_port}"]
        env |= {f"SPARK_JAVA_OPT_{i}": o for i, o in enumerate(opts)}
        args = [x for k, v in env.items() for x in ("-e", f"{k}={v}")]
        docker(
            "run", "-d", "--name", executor, "--network", "host", "--read-only",
            "--tmpfs", "/tmp:exec", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            *args, spark_image, "executor",
        )  # fmt: skip
        out, _ = driver.communicate(timeout=180)
        line = next((x for x in out.splitlines() if x.startswith("RESULT ")), "")
        if not line:
            logs = docker("logs", "--tail", "40", executor, check=False)
            pytest.fail(
                f"the driver got no result from the executor (driver exit {driver.returncode}):\n"
                f"driver: {driver_log.read_text()[-3000:]}\nexecutor: {logs.stderr[-3000:]}"
            )
        rows = json.loads(line.removeprefix("RESULT "))
        assert sorted(r[2] for r in rows) == [0, 1, 4, 9, 16, 25]
        # The tasks ran in the image: its venv's Python and its Seamless package.
        assert {r[0] for r in rows} <= {"/opt/venv/bin/python", "/opt/venv/bin/python3"}
        assert all(r[1].startswith("/opt/venv/lib/python3.11/site-packages/") for r in rows)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 15)
            driver.wait(timeout=30)
        docker("rm", "-f", executor, check=False)


def test_executor_entrypoint_refuses_to_start_by_hand(spark_image: str) -> None:
    proc = docker("run", "--rm", "--network", "none", spark_image, "executor", check=False)
    assert proc.returncode == 2
    assert "SPARK_DRIVER_URL is not set" in proc.stderr


def test_spark_image_size_budget(spark_image: str) -> None:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", spark_image).stdout)
    assert size <= SPARK_MAX_BYTES, f"spark image is {size / 1e6:.0f} MB (budget 2200 MB)"
