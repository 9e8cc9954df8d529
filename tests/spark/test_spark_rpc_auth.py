"""Spark's RPC protection (RPC_PROTECTION in components/common/spark_kubernetes.py) refuses
peers: a real Spark standalone Master and Worker (their own JVMs, from pyspark's own
distribution) run with a secret A and the protection on; drivers started by
`spark_session` (components/common/spark.py) then try to join them, and executors started
by hand try to join the one that was admitted.

- a driver holding A, with the protection on, registers, gets an executor from the
  Worker and runs a shuffle on it;
- a driver holding another secret is refused: the Master closes its connection during
  the authentication handshake ("Authentication failed for client ..."), never registers
  the application, and `spark_session` fails in one sentence;
- a driver holding A but without AES encryption (`spark.network.crypto.enabled=false`,
  so it speaks SASL) and a driver without authentication at all are refused the same
  way ("Unexpected challenge message ..."): no fallback to SASL, no plaintext;
- against the running application's driver (what a pod that reaches a driver's port on
  Kubernetes could try), an executor JVM started by hand with A registers and is listed
  by the driver, while one with another secret and one without authentication are cut
  off on their first connection and exit, never listed.

Seamless' drivers (the accepted one and the one with another secret) get the protection
and the secret from `spark_session` itself (`cluster_protection`: the file
SEAMLESS_SPARK_AUTH_SECRET_FILE names, handed to Spark as a property, since Spark reads
secret *files* only for `k8s://` masters); the drivers without AES or without
authentication are plain pyspark, because `spark_session` refuses to build them
(tests/unit/test_spark_conf.py). Everything binds to 127.0.0.1; the Master's
REST submission server (unauthenticated by design) is off. The refused drivers start at
the same time as the accepted one (a driver gives up on a master only after three
attempts 20 s apart), so the module takes about 2.5 minutes on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.common.net import free_port
from components.common.spark_kubernetes import AUTH_FILE_ENV, RPC_PROTECTION

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90  # s, for the Master and the Worker each (JVM start, key exchange)
DRIVER_TIMEOUT = 240  # s, for a driver to finish or to give up (3 x 20 s of Spark's own)

# The Master logs the server side of every handshake (AuthRpcHandler's debug lines).
LOG4J = """\
rootLogger.level = info
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss.SSS} %p %c{1}: %m%n%ex
logger.auth.name = org.apache.spark.network.crypto.AuthRpcHandler
logger.auth.level = debug
"""

# A driver as a pipeline step starts one: spark_session() on the bundled config, with the
# master and Spark properties given on the command line. Prints one JSON line; with a
# fifth argument (a path) it then stays up, its executors listed in PATH.ready, until
# PATH exists, so that peers can try to join it.
DRIVER = r"""
import json, os, sys, time
from pathlib import Path
from components.common.errors import SeamlessError
from components.common.spark import spark_session
from tests.helpers.engines import engine_config

base = engine_config("spark")
spark = base.spark.model_copy(update={"master": sys.argv[1], "app_name": sys.argv[2],
                                      "conf": json.loads(sys.argv[3])})
try:
    if os.environ.get("RAW_DRIVER"):  # a peer Seamless would not build: plain pyspark
        from pyspark.sql import SparkSession
        builder = SparkSession.builder.master(sys.argv[1]).appName(sys.argv[2])
        for key, value in json.loads(sys.argv[3]).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    else:
        session = spark_session(base.model_copy(update={"spark": spark}))
except Exception as exc:
    print(json.dumps({"refused": str(exc), "ours": isinstance(exc, SeamlessError)}))
    sys.exit(3)
sc = session.sparkContext
counts = (session.range(0, 21000, numPartitions=4).selectExpr("id % 7 AS k")
          .groupBy("k").count().collect())
executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
conf = {k: sc.getConf().get(k) for k in json.loads(sys.argv[4])}
print(json.dumps({"counts": sorted(r["count"] for r in counts), "executors": executors,
                  "conf": conf, "app_id": sc.applicationId}), flush=True)
if len(sys.argv) > 5:
    release, deadline = Path(sys.argv[5]), time.monotonic() + 300
    Path(sys.argv[5] + ".ready").touch()
    while not release.exists() and time.monotonic() < deadline:
        ids = str(sc._jsc.sc().getExecutorIds().mkString(","))  # a Scala Seq
        Path(sys.argv[5] + ".executors").write_text(json.dumps(sorted(ids.split(","))))
        time.sleep(0.5)
session.stop()
"""


def _spark_home() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent)


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "SPARK_HOME": _spark_home(), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_HOSTNAME": "localhost", "SPARK_LOG_DIR": str(tmp),
            "SPARK_WORKER_DIR": str(tmp / "work"), "PYSPARK_PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT), "SPARK_DAEMON_JAVA_OPTS":
            f"-Dlog4j2.configurationFile={tmp / 'log4j2.properties'}"}  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End `proc`'s process group (a daemon and the executors it forked)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log.is_file() else "(no log)"
    raise AssertionError(f"no {text!r} in {log} within {timeout} s:\n{tail}")


@dataclass
class Driver:
    name: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    release: Path | None = None

    def first_line(self) -> dict[str, object]:
        """The driver's JSON line, as soon as it is printed (a held driver stays up)."""
        deadline = time.monotonic() + DRIVER_TIMEOUT
        while time.monotonic() < deadline:
            lines = self.out.read_text().strip().splitlines()
            if lines:
                return dict(json.loads(lines[0]))
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"driver {self.name} printed nothing:\n{self.err.read_text()[-3000:]}")

    def result(self) -> tuple[int, dict[str, object]]:
        try:
            code = self.proc.wait(timeout=DRIVER_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
            raise AssertionError(
                f"driver {self.name} still running after {DRIVER_TIMEOUT} s"
            ) from None
        lines = self.out.read_text().strip().splitlines()
        assert lines, f"driver {self.name} printed nothing:\n{self.err.read_text()[-3000:]}"
        return code, json.loads(lines[-1])


@dataclass
class Cluster:
    url: str
    secret: str
    tmp: Path
    master_log: Path
    driver_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    drivers: dict[str, Driver] = field(default_factory=dict)

    def start_driver(
        self, name: str, conf: dict[str, str], secret: str | None = None, hold: bool = False
    ) -> None:
        """A driver through `spark_session` holding `secret` in the file Seamless reads
        (SEAMLESS_SPARK_AUTH_SECRET_FILE); with `secret` None, a plain pyspark driver with
        `conf` as it is (what Seamless itself refuses to build)."""
        conf = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                "spark.executor.memory": "512m", "spark.executor.cores": "1",
                "spark.cores.max": "1", **conf}  # fmt: skip
        out, err = self.tmp / f"{name}.out", self.tmp / f"{name}.err"
        release = self.tmp / f"{name}.release" if hold else None
        env = _env(self.tmp)
        if secret is None:
            env["RAW_DRIVER"] = "1"
        else:
            held = self.tmp / f"{name}.secret"
            held.write_text(secret + "\n")
            held.chmod(0o600)
            env[AUTH_FILE_ENV] = str(held)
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [sys.executable, "-c", DRIVER, self.url, name, json.dumps(conf),
                 json.dumps(sorted(RPC_PROTECTION)), *([str(release)] if release else [])],
                stdout=o, stderr=e, cwd=self.tmp, env=env, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        self.drivers[name] = Driver(name, proc, out, err, release)

    def start_executor(self, name: str, driver_port: int, app_id: str, executor_id: str,
                       secret: str | None) -> tuple[subprocess.Popen[bytes], Path]:  # fmt: skip
        """An executor JVM started by hand, as a pod that reaches the driver's port could:
        Spark's own CoarseGrainedExecutorBackend, holding `secret` (None: no authentication,
        no encryption) the way a standalone Worker hands it to its executors."""
        env = {**_env(self.tmp), "SPARK_EXECUTOR_MEMORY": "512m"}
        if secret is not None:
            env["_SPARK_AUTH_SECRET"] = secret
            env["SPARK_EXECUTOR_OPTS"] = " ".join(f"-D{k}={v}" for k, v in RPC_PROTECTION.items())
        log = self.tmp / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [os.path.join(_spark_home(), "bin", "spark-class"),
                 "org.apache.spark.executor.CoarseGrainedExecutorBackend",
                 "--driver-url", f"spark://CoarseGrainedScheduler@127.0.0.1:{driver_port}",
                 "--executor-id", executor_id, "--hostname", "127.0.0.1", "--cores", "1",
                 "--app-id", app_id],
                stdout=fh, stderr=subprocess.STDOUT, cwd=self.tmp, env=env,
                start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc, log


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A standalone Master and one Worker holding a secret, with RPC_PROTECTION on, and
    four drivers started against them at once (each test then awaits its own)."""
    tmp = tmp_path_factory.mktemp("standalone")
    secret = os.urandom(24).hex()
    props = tmp / "spark-defaults.conf"
    props.write_text(
        "".join(f"{k} {v}\n" for k, v in RPC_PROTECTION.items())
        + f"spark.authenticate.secret {secret}\nspark.master.rest.enabled false\n"
    )
    props.chmod(0o600)
    (tmp / "log4j2.properties").write_text(LOG4J)
    spark_class = os.path.join(_spark_home(), "bin", "spark-class")
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    master_log = tmp / "master.log"
    c = Cluster(url, secret, tmp, master_log)

    def daemon(log: Path, *args: str) -> subprocess.Popen[bytes]:
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [spark_class, *args, "--host", "127.0.0.1", "--webui-port", str(free_port()),
                 "--properties-file", str(props)],
                stdout=fh, stderr=subprocess.STDOUT, cwd=tmp, env=_env(tmp),
                start_new_session=True,
            )  # fmt: skip
        c.procs.append(proc)
        return proc

    try:
        master = daemon(master_log, "org.apache.spark.deploy.master.Master", "--port", str(port))
        _wait_for(master_log, "I have been elected leader", master, START_TIMEOUT)
        # The Worker and the drivers start together: the accepted application waits for
        # the Worker's executor, the refused ones talk to the Master only.
        worker_log = tmp / "worker.log"
        worker = daemon(worker_log, "org.apache.spark.deploy.worker.Worker", "--port",
                        str(free_port()), "--cores", "1", "--memory", "1g", url)  # fmt: skip
        c.driver_port = free_port()
        # Seamless' drivers: the protection and the secret are spark_session's doing.
        c.start_driver("accepted", {"spark.driver.port": str(c.driver_port)}, secret, hold=True)
        c.start_driver("wrong-secret", {}, os.urandom(24).hex())
        # Peers Seamless refuses to build (tests/unit/test_spark_conf.py): plain pyspark.
        c.start_driver(
            "no-aes",
            {**RPC_PROTECTION, "spark.network.crypto.enabled": "false",
             "spark.authenticate.secret": secret},
        )  # fmt: skip
        c.start_driver("no-auth", {"spark.authenticate": "false"})
        _wait_for(worker_log, "Successfully registered with master", worker, START_TIMEOUT)
        yield c
    finally:
        for driver in c.drivers.values():
            if driver.release is not None:
                driver.release.touch()
        for proc in reversed(c.procs):
            _stop(proc)


def _assert_refused(
    cluster: Cluster, name: str, server_says: str, driver_tried: str, ours: bool = False
) -> None:
    """`name` never became an application: the Master closed each of its connections in
    the handshake (`server_says`), the driver gave up on the Master after Spark's three
    attempts, and the step's `spark_session` failed in its one sentence."""
    code, out = cluster.drivers[name].result()
    assert code == 3, out
    assert out["ours"] is ours, out  # a Seamless driver fails in spark_session's sentence
    if ours:
        assert str(out["refused"]).startswith(
            f"Spark did not start with master {cluster.url!r} (spark.master):"
        ), out
    err = cluster.drivers[name].err.read_text(errors="replace")
    assert f"Failed to connect to master 127.0.0.1:{cluster.url.rsplit(':', 1)[1]}" in err
    assert "All masters are unresponsive! Giving up." in err
    if driver_tried:
        assert driver_tried in err, err[-3000:]
    else:  # no handshake at all: its first RPC message went out as it is
        assert "ClientBootstrap" not in err, err[-3000:]
    master = cluster.master_log.read_text(errors="replace")
    assert server_says in master, master[-3000:]
    assert f"Registering app {name}" not in master
    worker = (cluster.tmp / "worker.log").read_text(errors="replace")
    assert f" for {name}\n" not in worker  # "Asked to launch executor app-.../0 for NAME"


def test_a_driver_with_the_secret_runs_a_shuffle_on_the_worker(cluster: Cluster) -> None:
    out = cluster.drivers["accepted"].first_line()
    assert out["conf"] == RPC_PROTECTION
    assert out["executors"] == 1, out
    assert out["counts"] == [3000] * 7, out
    master = cluster.master_log.read_text(errors="replace")
    assert "Registered app accepted" in master
    # The Worker's and the driver's handshakes with the Master.
    assert master.count("Authorization successful for client") >= 2
    assert " for accepted\n" in (cluster.tmp / "worker.log").read_text()


def test_the_driver_admits_an_executor_with_the_secret_only(cluster: Cluster) -> None:
    """What a pod that reaches a driver's port (an allowed flow on Kubernetes) could try:
    start an executor of its own against the running application's driver."""
    driver = cluster.drivers["accepted"]
    app_id = str(driver.first_line()["app_id"])
    assert driver.release is not None
    ready, listed = Path(f"{driver.release}.ready"), Path(f"{driver.release}.executors")
    deadline = time.monotonic() + DRIVER_TIMEOUT
    while not ready.exists() and driver.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ready.exists(), driver.err.read_text()[-3000:]
    port = cluster.driver_port
    wrong, wrong_log = cluster.start_executor("exec-wrong-secret", port, app_id, "71",
                                              os.urandom(24).hex())  # fmt: skip
    plain, plain_log = cluster.start_executor("exec-no-auth", port, app_id, "72", None)
    # The control: the same command holding the secret joins (so the refusals below are
    # the secret's doing, not the command's).
    good, good_log = cluster.start_executor("exec-secret", port, app_id, "73", cluster.secret)
    _wait_for(good_log, "Successfully registered with driver", good, DRIVER_TIMEOUT)
    deadline = time.monotonic() + DRIVER_TIMEOUT
    while time.monotonic() < deadline and "73" not in json.loads(listed.read_text() or "[]"):
        time.sleep(0.5)
    assert "73" in json.loads(listed.read_text()), listed.read_text()
    # The other two never get the application's properties (the first RPC an executor
    # makes): the driver ends the AES handshake of the one (its own side of it fails with
    # "Authentication failed.") and answers the plaintext RPC of the other with "Unknown
    # challenge message." as it closes the connection (whether that executor reads the
    # answer, finds the channel closed, or fails its next write with a broken pipe or a
    # reset is a race); each gives up after Spark's three attempts and exits.
    closed = (
        "ClosedChannelException",
        "Unknown challenge message.",
        "Broken pipe",
        "reset by peer",
    )
    for proc, log, symptoms in (
        (wrong, wrong_log, ("AuthClientBootstrap.doSparkAuth",)),
        (plain, plain_log, closed),
    ):
        try:
            code = proc.wait(timeout=DRIVER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{log.name}: still running\n{log.read_text()[-3000:]}") from None
        text = log.read_text(errors="replace")
        assert code != 0, f"{log.name}: {text[-3000:]}"
        assert any(symptom in text for symptom in symptoms), f"{log.name}: {text[-3000:]}"
        assert "Successfully registered with driver" not in text
    executors = json.loads(listed.read_text())
    assert "71" not in executors and "72" not in executors, executors
    _stop(good)
    driver.release.touch()
    code, _ = driver.result()
    assert code == 0, driver.err.read_text()[-3000:]


def test_a_driver_with_another_secret_is_refused(cluster: Cluster) -> None:
    _assert_refused(
        cluster,
        "wrong-secret",
        "Authentication failed for client",
        "AuthClientBootstrap.doSparkAuth",
        ours=True,
    )


def test_a_driver_without_aes_is_refused_not_served_over_sasl(cluster: Cluster) -> None:
    # It holds the secret, but speaks SASL (DIGEST-MD5): no fallback.
    _assert_refused(
        cluster, "no-aes", "Unexpected challenge message from client", "SaslClientBootstrap"
    )


def test_a_driver_without_authentication_is_refused(cluster: Cluster) -> None:
    _assert_refused(cluster, "no-auth", "Unexpected challenge message from client", "")
