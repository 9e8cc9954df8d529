"""Spark's RPC protection (components/common/spark_kubernetes.py RPC_PROTECTION) on a real
multi-process Spark: `local-cluster[2,1,1024]` starts two executor JVMs that register with
the driver and fetch each other's shuffle blocks over Spark's RPC, as executor pods do on
Kubernetes, with mutual authentication, AES-encrypted RPC (no SASL fallback) and encrypted
shuffle files on.

local-cluster takes the secret as `spark.authenticate.secret` (Spark 4.1 reads the secret
files only for `k8s://` masters); the Kubernetes wiring of the files is checked offline
in tests/manifests/test_spark_kubernetes.py. That peers without the secret, without AES
or without authentication are refused: tests/spark/test_spark_rpc_auth.py. Everything binds to
127.0.0.1. Runs in a child process (its own JVM, ~35 s here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
from pyspark.sql import SparkSession
from components.common.spark_kubernetes import RPC_PROTECTION

builder = (SparkSession.builder.master("local-cluster[2,1,1024]").appName("rpc-crypto")
           .config("spark.authenticate.secret", sys.argv[1])
           .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
           .config("spark.ui.enabled", "false").config("spark.executor.memory", "512m"))
for key, value in RPC_PROTECTION.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
sc = spark.sparkContext
counts = (spark.range(0, 21000, numPartitions=4).selectExpr("id % 7 AS k")
          .groupBy("k").count().collect())
# Which executor ran each task of a 4-partition job: both JVMs take part.
hosts = sc.parallelize(range(8), 8).map(
    lambda _: __import__("os").getppid()).distinct().count()
conf = {k: sc.getConf().get(k) for k in RPC_PROTECTION}
executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
spark.stop()
print(json.dumps({"counts": sorted(r["count"] for r in counts), "executors": executors,
                  "worker_parents": hosts, "conf": conf}))
"""


def test_executors_register_and_shuffle_with_auth_and_aes_rpc(tmp_path: Path) -> None:
    from components.common.spark_kubernetes import RPC_PROTECTION

    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "localhost",
           "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", CHILD, os.urandom(24).hex()],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["conf"] == RPC_PROTECTION
    assert out["executors"] == 2, out
    assert out["counts"] == [3000] * 7, out
    assert out["worker_parents"] >= 2, out
