"""The Spark session's settings and the sentences when Spark cannot start (no Spark needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from components.common.config import SparkConfig, default_config_path, load_config
from components.common.errors import SeamlessError
from components.common.memory_limit import memory_limit_bytes
from components.common.spark import engine_record, session_conf, spark_session
from components.common.spark_kubernetes import AUTH_FILE_ENV, RPC_PROTECTION

pytestmark = pytest.mark.unit


def test_local_sessions_stay_on_loopback_with_a_sized_heap() -> None:
    conf = session_conf(SparkConfig())
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.ui.enabled"] == "false"
    assert 1024 <= int(conf["spark.driver.memory"].removesuffix("m")) <= 4096
    # The config's own properties win.
    mine = session_conf(SparkConfig(conf={"spark.driver.memory": "6g", "spark.ui.enabled": "true"}))
    assert mine["spark.driver.memory"] == "6g" and mine["spark.ui.enabled"] == "true"


STANDALONE = "spark://spark-master:7077"


def test_cluster_masters_get_no_local_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n")
    monkeypatch.setenv(AUTH_FILE_ENV, str(secret))
    conf = session_conf(SparkConfig(master=STANDALONE))
    assert "spark.driver.bindAddress" not in conf and "spark.driver.memory" not in conf
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    # k8s:// masters: tests/manifests/test_spark_kubernetes.py (the pod's own settings).


def test_clusters_outside_kubernetes_get_the_rpc_protection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A standalone cluster's secret comes from the file (real daemons refuse the wrong
    one: tests/spark/test_spark_rpc_auth.py); YARN makes its own."""
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n")
    monkeypatch.setenv(AUTH_FILE_ENV, str(secret))
    conf = session_conf(SparkConfig(master=STANDALONE))
    assert {k: conf[k] for k in RPC_PROTECTION} == RPC_PROTECTION
    assert conf["spark.authenticate.secret"] == "s3cr3t-value"
    given = session_conf(SparkConfig(master=STANDALONE,
                                     conf={"spark.authenticate.secret": "from-conf"}))  # fmt: skip
    assert given["spark.authenticate.secret"] == "from-conf"
    monkeypatch.delenv(AUTH_FILE_ENV)
    yarn = session_conf(SparkConfig(master="yarn"))
    assert {k: yarn[k] for k in RPC_PROTECTION} == RPC_PROTECTION
    assert "spark.authenticate.secret" not in yarn


def test_a_standalone_cluster_without_its_secret_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AUTH_FILE_ENV, raising=False)
    with pytest.raises(SeamlessError, match=rf"{STANDALONE}.*set {AUTH_FILE_ENV} to a file"):
        session_conf(SparkConfig(master=STANDALONE))
    monkeypatch.setenv(AUTH_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(SeamlessError, match=r"is not a readable file"):
        session_conf(SparkConfig(master=STANDALONE))
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv(AUTH_FILE_ENV, str(tmp_path / "empty"))
    with pytest.raises(SeamlessError, match=r"is empty"):
        session_conf(SparkConfig(master=STANDALONE))


@pytest.mark.parametrize("master", [STANDALONE, "yarn"])
def test_a_cluster_conf_may_not_weaken_the_rpc_protection(
    master: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value")
    monkeypatch.setenv(AUTH_FILE_ENV, str(secret))
    weak = SparkConfig(master=master, conf={"spark.network.crypto.enabled": "false"})
    with pytest.raises(SeamlessError, match=rf"spark.network.crypto.enabled.*{master}"):
        session_conf(weak)


def test_memory_limit_reads_the_cgroup(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert memory_limit_bytes(tmp_path) == 2 * 2**30
    (tmp_path / "memory.max").write_text("max\n")
    v1 = tmp_path / "memory"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(str(3 * 2**30))
    assert memory_limit_bytes(tmp_path) == 3 * 2**30
    assert memory_limit_bytes(tmp_path / "none") > 2**28  # no cgroup: the machine's RAM


def test_engine_is_recorded() -> None:
    config = load_config(default_config_path())
    assert engine_record(config) == {"engine": "local"}
    spark = config.model_copy(update={"engine": "spark"})
    record = engine_record(spark)
    assert record["engine"] == "spark" and record["spark_master"] == "local[*]"


def test_missing_pyspark_or_java_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyspark

    config = load_config(default_config_path()).model_copy(update={"engine": "spark"})
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(SeamlessError, match=r"needs pyspark.*seamless\[spark\]"):
        spark_session(config)
    monkeypatch.setitem(sys.modules, "pyspark", pyspark)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(SeamlessError, match=r"needs Java 17.*openjdk-17-jre-headless"):
        spark_session(config)


def test_config_rejects_an_unknown_engine() -> None:
    from components.common.config import parse_config

    text = default_config_path().read_text().replace("${SEAMLESS_ENGINE:-local}", "dask")
    with pytest.raises(SeamlessError, match=r"key 'engine'"):
        parse_config(text, origin="c.yaml")
