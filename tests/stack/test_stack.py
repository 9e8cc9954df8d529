"""The system as the kind overlay declares it, on Docker, driven by real clients.

One stack per module (conftest.py): PostgreSQL, Redis, the S3 object store (MinIO's
place, with its buckets Job run to completion), MLflow (basic auth, PostgreSQL backend,
artifacts proxied to the bucket), the Feast feature server, serving and Prometheus, each
container built from its rendered manifest. The tests then do what users do: a
one-off run of the materialization CronJob's pod publishes features, the MLflow client
registers and loads a model through the server, the Feast SDK reads online features
through the feature server, serving answers predictions, Prometheus returns its metrics.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from components.common.config import default_config_path, load_config
from tests.helpers.require import unavailable

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(default_config_path())
KEY = CONFIG.entity_key()
# The seeding pod's disk goes with it (as a step's does): it hands the training set over
# as an object.
SEED_OBJECT = "stack-test/training.parquet"

# Runs in the materialization CronJob's pod (runtime image, its env and volumes): what a
# training pipeline's features step does on the cluster, on a small demo data set.
SEED = f"""
from components.common import storage
from components.common.config import default_config_path, load_config
from components.common.tables import read_dataset
from components.features.stage import run_features
from components.ingest.stage import ingest_tables
from pipelines.demo_data import generate

config = load_config(default_config_path())
generate("/tmp/demo", n_rows=3000, seed=11)
ingest_tables(config, "/tmp/demo", "/tmp/dataset")
meta = run_features(config, "/tmp/dataset", "/tmp/training")
(frame,) = read_dataset("/tmp/training").values()
storage.write_bytes("s3://seamless-data/{SEED_OBJECT}", frame.to_parquet())
print("seeded", meta["rows"], "rows")
"""


def secret(stack: Any, name: str) -> dict[str, str]:
    """The decoded data of a rendered Secret (hash suffix allowed)."""
    for obj in stack.objects:
        if obj["kind"] == "Secret" and (
            obj["metadata"]["name"] == name or obj["metadata"]["name"].startswith(f"{name}-")
        ):
            return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    raise AssertionError(f"Secret/{name} is not in the rendered manifests")


def tokens(stack: Any) -> dict[str, str]:
    """role -> a token with that role, from the serving-tokens Secret."""
    out: dict[str, str] = {}
    for line in secret(stack, "serving-tokens")["tokens"].splitlines():
        token, _, roles = line.strip().partition(":")
        for role in roles.split(","):
            out.setdefault(role.strip(), token)
    return out


def cluster_ca(stack: Any) -> ssl.SSLContext:
    """A client context trusting only the CA the overlay ships (ConfigMap seamless-ca)."""
    for obj in stack.objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "seamless-ca":
            return ssl.create_default_context(cadata=obj["data"]["ca.crt"])
    raise AssertionError("ConfigMap/seamless-ca is not in the rendered manifests")


def call(
    url: str,
    body: Any = None,
    token: str | None = None,
    timeout: float = 30,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


@pytest.fixture(scope="module")
def features(stack: Any) -> pd.DataFrame:
    """Publish features with the CronJob's pod, then run the CronJob as declared."""
    out = stack.run_job("feast-materialize", ["python3", "-c", SEED])
    assert "seeded" in out, out
    # The scheduled materialization itself, exactly as the manifest declares it.
    stack.run_job("feast-materialize")
    body = _s3(stack).get_object(Bucket="seamless-data", Key=SEED_OBJECT)["Body"].read()
    return pd.read_parquet(io.BytesIO(body))


@pytest.fixture(scope="module")
def mlflow_env(stack: Any) -> Iterator[dict[str, str]]:
    """The MLflow server's loopback URL, the mlflow-client Secret and the pods' MLflow client
    settings (artifacts through the server, never presigned bucket URLs: the host, like
    serving on a cluster, has no route to the store), in the environment."""
    endpoints = next(
        o["data"]
        for o in stack.objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "seamless-endpoints"
    )
    env = {
        **{k: v for k, v in endpoints.items() if k.startswith("MLFLOW_ENABLE_PROXY_")},
        # HTTPS only, verified against the overlay's CA (the pods' MLFLOW_TRACKING_SERVER_CERT_PATH
        # names the same CA, mounted from ConfigMap seamless-ca).
        "MLFLOW_TRACKING_URI": stack.url("mlflow", 5000, "https"),
        "MLFLOW_TRACKING_SERVER_CERT_PATH": _ca_file(stack),
        **secret(stack, "mlflow-client"),
    }
    assert env.get("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD") == "false", endpoints
    assert endpoints["MLFLOW_TRACKING_URI"].startswith("https://"), endpoints
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


@pytest.fixture(scope="module")
def champion(stack: Any, features: pd.DataFrame, mlflow_env: dict[str, str]) -> dict[str, Any]:
    """Train on the published training set; register through the server as champion."""
    from components.register.registry import register
    from components.train.run import train_and_log

    result, holdout = train_and_log(
        CONFIG,
        features,
        data_sha256="stack",
        feature_service=CONFIG.features.service,
        pipeline_run_id="stack-test",
        source_uri="stack-test",
    )
    registration = register(
        CONFIG.model.name, result.model_uri, "promote", {"seamless.test": "stack"}
    )
    return {"version": str(registration.version), "holdout": holdout, "model_uri": result.model_uri}


def _inspect(container: str) -> dict[str, Any]:
    """`docker inspect` of one container."""
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True
    ).stdout
    info: dict[str, Any] = json.loads(out)[0]
    return info


def test_containers_are_the_declared_pods(stack: Any) -> None:
    """The runner applied the manifests: user, read-only root, capabilities, and the
    Services that select a pod as its DNS aliases (the stream consumer has none: nothing
    calls it)."""
    from stack_pods import selects, services

    svcs = services(stack.objects)
    for name, pod in stack.pods.items():
        info = _inspect(pod.container)
        spec = pod.spec
        assert info["Config"]["User"].split(":")[0] == str(spec.user), name
        assert info["HostConfig"]["ReadonlyRootfs"] is spec.read_only_root, name
        assert info["HostConfig"]["CapDrop"] == ["ALL"], name
        assert "no-new-privileges" in info["HostConfig"]["SecurityOpt"], name
        aliases = info["NetworkSettings"]["Networks"][stack.network]["Aliases"] or []
        named = {f"{s.name}.seamless.svc.cluster.local" for s in svcs if selects(s, spec.labels)}
        assert named <= set(aliases), (name, aliases)
        assert named or name == "stream-consumer", f"{name}: no Service selects it"


def test_mlflow_requires_credentials(stack: Any) -> None:
    url = f"{stack.url('mlflow', 5000, 'https')}/api/2.0/mlflow/experiments/search?max_results=1"
    status, _ = call(url, tls=cluster_ca(stack))
    assert status == 401


def test_mlflow_speaks_only_tls_with_a_certificate_for_its_service_names(stack: Any) -> None:
    """MLflow from the manifests answers HTTPS only, with a certificate from the overlay's CA
    for its Service names (pods use mlflow.seamless.svc.cluster.local) and loopback; a
    client that trusts another CA, or asks for a name the certificate lacks, is refused."""
    host, port = stack.address("mlflow", 5000)
    tls = cluster_ca(stack)
    name = "mlflow.seamless.svc.cluster.local"
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        tls.wrap_socket(raw, server_hostname=name) as conn,
    ):
        names = {v for _, v in conn.getpeercert()["subjectAltName"]}
    assert {"mlflow", "mlflow.seamless.svc.cluster.local", "127.0.0.1"} <= names, names
    # Plain HTTP to the port gets no answer a client could take for one.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        call(f"http://{host}:{port}/health", timeout=10)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        call(f"https://{host}:{port}/health", tls=ssl.create_default_context(), timeout=10)
    # The right CA, a name the certificate does not carry (the pod's IP): refused.
    with pytest.raises(urllib.error.URLError, match="IP address mismatch"):
        call(f"https://{stack.ip('mlflow')}:5000/health", tls=tls, timeout=10)


def test_mlflow_client_registers_and_loads_through_the_server(
    champion: dict[str, Any], mlflow_env: dict[str, str]
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.common.model_input import model_input

    client = MlflowClient(
        tracking_uri=mlflow_env["MLFLOW_TRACKING_URI"],
        registry_uri=mlflow_env["MLFLOW_TRACKING_URI"],
    )
    mv = client.get_model_version_by_alias(CONFIG.model.name, "champion")
    assert str(mv.version) == champion["version"] and mv.run_id
    # The artifact store is the bucket, reached through the server's proxy.
    assert mlflow.get_run(mv.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    loaded = mlflow.sklearn.load_model(f"models:/{CONFIG.model.name}@champion")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{CONFIG.model.name}@champion")
    x = model_input(CONFIG, champion["holdout"].head(50))
    p = loaded.predict_proba(x)[:, 1]
    assert np.all((p >= 0) & (p <= 1))
    assert len(np.asarray(pyfunc.predict(x))) == 50


def _s3(stack: Any) -> Any:
    """A boto3 client for the object store's loopback port (HTTPS, verified against the
    overlay's CA: the certificate names 127.0.0.1), with the seamless-s3 keys."""
    import boto3
    from botocore.config import Config

    keys = secret(stack, "seamless-s3")
    return boto3.client(
        "s3",
        endpoint_url=stack.url("minio", 9000, "https"),
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        verify=_ca_file(stack),
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents") or []]


def test_the_buckets_job_created_the_buckets(stack: Any) -> None:
    buckets = {b["Name"] for b in _s3(stack).list_buckets()["Buckets"]}
    assert {"seamless-artifacts", "seamless-data", "seamless-pipelines"} <= buckets, buckets


def test_object_store_clients_get_the_endpoint_and_keys(stack: Any) -> None:
    """No NetworkPolicies on Docker: what the stack checks is the wiring they rely on. Every
    pod carrying the s3-client label (the policy's selector) gets the endpoint and keys,
    every pod given the endpoint carries the label, and the Service name resolves."""
    keys = secret(stack, "seamless-s3")
    clients = []
    for name, pod in stack.pods.items():
        info = _inspect(pod.container)
        env = dict(e.split("=", 1) for e in info["Config"]["Env"])
        labelled = pod.spec.labels.get("seamless.dev/s3-client") == "true"
        assert labelled == ("AWS_ENDPOINT_URL" in env), name
        if "MLFLOW_TRACKING_URI" in env and not labelled:
            # An MLflow client without a route to the bucket: artifacts through the server.
            assert env.get("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD") == "false", name
        if labelled:
            clients.append(name)
            assert env["AWS_ENDPOINT_URL"] == "https://minio.seamless.svc:9000", name
            assert env["AWS_CA_BUNDLE"] == "/etc/seamless/ca/ca.crt", name
            assert env["AWS_ACCESS_KEY_ID"] == keys["AWS_ACCESS_KEY_ID"], name
            assert env["AWS_SECRET_ACCESS_KEY"] == keys["AWS_SECRET_ACCESS_KEY"], name
    assert "mlflow" in clients, clients
    resolved = subprocess.run(
        ["docker", "exec", stack.pods["mlflow"].container, "python", "-c",
         "import socket; print(socket.gethostbyname('minio.seamless.svc'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert resolved == stack.ip("minio")


def test_feast_offline_tables_are_objects_in_the_bucket(stack: Any, features: pd.DataFrame) -> None:
    """The seeding run in the CronJob's pod published the offline tables under
    SEAMLESS_FEAST_OFFLINE_ROOT (s3://seamless-data/feast, from the seamless-s3-endpoint
    ConfigMap), and the CronJob as declared materialized from them (the online reads below
    prove that): content-addressed Parquet objects, one folder per table."""
    stored = _keys(_s3(stack), "seamless-data", "feast/")
    tables = {k.split("/")[1] for k in stored if k.endswith(".parquet")}
    assert {v.table for v in CONFIG.features.views} <= tables, stored
    assert not list(stack.workdir.glob("claims/feast*")), "offline tables on a volume"


def test_mlflow_keeps_model_artifacts_as_objects_in_the_bucket(
    stack: Any, champion: dict[str, Any], mlflow_env: dict[str, str]
) -> None:
    """The server writes what clients log through its proxy to s3://seamless-artifacts/mlflow
    (the s3-artifacts component): the champion's model files are objects there."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(
        tracking_uri=mlflow_env["MLFLOW_TRACKING_URI"],
        registry_uri=mlflow_env["MLFLOW_TRACKING_URI"],
    )
    mv = client.get_model_version_by_alias(CONFIG.model.name, "champion")
    # The version's source is the logged model (`models:/<model id>`).
    source = mv.source or ""
    assert source.startswith("models:/m-"), source
    location = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    # mlflow-artifacts:/workspaces/default/<experiment>/models/<model id>/artifacts (MLflow
    # runs with --enable-workspaces) -> the same path under mlflow/
    path = urllib.parse.urlsplit(location).path.strip("/")
    assert location.startswith("mlflow-artifacts:") and path, location
    assert path.startswith("workspaces/default/"), f"MLflow without workspaces: {location}"
    stored = _keys(_s3(stack), "seamless-artifacts", f"mlflow/{path}/")
    assert f"mlflow/{path}/MLmodel" in stored, stored
    assert any(k.endswith("requirements.txt") for k in stored), stored


def _client_store(stack: Any, tmp: Path) -> Any:
    """A Feast client that reads the registry in PostgreSQL and online features through
    the feature server (online_store type `remote`, over HTTPS), as an application
    outside would."""
    from feast import FeatureStore

    pg_host, pg_port = stack.address("postgres", 5432)
    password = urllib.parse.quote(
        secret(stack, "postgres-credentials")["FEAST_DB_PASSWORD"], safe=""
    )
    (tmp / "feature_store.yaml").write_text(
        yaml.safe_dump(
            {
                "project": "credit_risk",
                "provider": "local",
                "registry": {
                    "registry_type": "sql",
                    "path": f"postgresql+psycopg2://feast:{password}@{pg_host}:{pg_port}/feast_registry",
                    "cache_ttl_seconds": 0,
                },
                # HTTPS only: verified against the overlay's CA (the certificate names
                # the loopback address the host reaches the container on).
                "online_store": {
                    "type": "remote",
                    "path": stack.url("feast-server", 6566, scheme="https"),
                    "cert": _ca_file(stack),
                },
                "offline_store": {"type": "file"},
                "entity_key_serialization_version": 3,
            }
        )
    )
    return FeatureStore(repo_path=str(tmp))


def _online(store: Any, ids: list[int], timeout: float = 150) -> pd.DataFrame:
    """Online features of `ids`; the feature server re-reads the registry every
    `registry_ttl_sec` (60 s by default), so a service applied just now may take that long."""
    from feast.errors import FeatureServiceNotFoundException

    deadline = time.monotonic() + timeout
    while True:
        try:
            service = store.get_feature_service(CONFIG.features.service)
            rows = [{KEY: i} for i in ids]
            return store.get_online_features(features=service, entity_rows=rows).to_df()
        except FeatureServiceNotFoundException:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


def test_feast_sdk_reads_online_features_through_the_feature_server(
    stack: Any, features: pd.DataFrame, tmp_path: Path
) -> None:
    store = _client_store(stack, tmp_path)
    ids = [int(i) for i in features[KEY].drop_duplicates().head(5)]
    online = _online(store, ids)
    assert list(online[KEY]) == ids
    feature_names = [f for f in CONFIG.feature_types() if f in online.columns]
    assert feature_names, online.columns
    # Every entity of the demo data has features; none comes back empty.
    assert online[feature_names].notna().any(axis=1).all(), online


@pytest.fixture(scope="module")
def served(stack: Any, champion: dict[str, Any], features: pd.DataFrame) -> dict[str, Any]:
    """Serving switched to the champion (admin reload), then one batch prediction, over
    HTTPS checked against the overlay's CA (the certificate names 127.0.0.1 for NodePorts)."""
    base = stack.url("serving", 8080, "https")
    roles, tls = tokens(stack), cluster_ca(stack)
    # Loading and preparing the model takes ~45 s on a busy machine; the reload answers after.
    status, body = call(f"{base}/admin/reload", {}, roles["admin"], tls=tls, timeout=300)
    assert status == 200, body
    stack.wait("serving", "ready", timeout=120)
    ids = [int(i) for i in features[KEY].drop_duplicates().head(20)]
    status, body = call(f"{base}/v1/predict", {"entity_ids": ids}, roles["predict"], tls=tls)
    assert status == 200, body
    return {"base": base, "roles": roles, "ids": ids, "body": body, "tls": tls}


def test_serving_predicts_from_live_features(
    stack: Any, champion: dict[str, Any], served: dict[str, Any], tmp_path: Path
) -> None:
    import mlflow

    from components.common.model_input import model_input

    body, ids = served["body"], served["ids"]
    assert body["model_version"] == champion["version"]
    scores = {p["entity_id"]: p["score"] for p in body["predictions"]}
    assert sorted(scores) == sorted(ids)

    # The same features through the feature server, scored by the registry's model.
    online = _online(_client_store(stack, tmp_path), ids)
    model = mlflow.sklearn.load_model(f"models:/{CONFIG.model.name}@champion")
    expected = model.predict_proba(model_input(CONFIG, online))[:, 1]
    for entity, score in zip(online[KEY], expected, strict=True):
        assert abs(scores[int(entity)] - score) < 1e-5, (entity, scores[int(entity)], score)

    predict, tls = f"{served['base']}/v1/predict", served["tls"]
    assert call(predict, {"entity_ids": [987654321]}, served["roles"]["predict"], tls=tls)[0] == 404
    assert call(predict, {"entity_ids": ids[:1]}, tls=tls)[0] == 401


def test_serving_speaks_only_tls_with_a_certificate_for_its_service_names(
    stack: Any, served: dict[str, Any]
) -> None:
    host, port = stack.address("serving", 8080)
    # Plain HTTP to the port gets no answer a client could take for one.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        call(f"http://{host}:{port}/healthz", timeout=10)
    # Another CA: refused (what a man in the middle with his own CA gets).
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        call(f"https://{host}:{port}/healthz", tls=ssl.create_default_context(), timeout=10)
    # The right CA, a name the certificate does not carry (the pod's IP): refused.
    with pytest.raises(urllib.error.URLError, match="IP address mismatch"):
        call(f"https://{stack.ip('serving')}:8080/healthz", tls=served["tls"], timeout=10)
    # The in-cluster name, resolved by hand: accepted, and the name is in the certificate.
    with socket.create_connection((host, port), timeout=10) as raw:
        name = "serving.seamless.svc.cluster.local"
        with served["tls"].wrap_socket(raw, server_hostname=name) as conn:
            sans = {v for k, v in conn.getpeercert()["subjectAltName"] if k == "DNS"}
    assert {name, "serving-metrics.seamless.svc.cluster.local"} <= sans


def test_prometheus_scrapes_serving_and_loads_the_rules(stack: Any, served: dict[str, Any]) -> None:
    base = stack.url("prometheus", 9090)
    query = urllib.parse.quote('sum(seamless_serve_requests_total{route="/v1/predict"})')
    deadline = time.monotonic() + 120
    value = 0.0
    while time.monotonic() < deadline:
        status, body = call(f"{base}/api/v1/query?query={query}")
        assert status == 200, body
        result = body["data"]["result"]
        value = float(result[0]["value"][1]) if result else 0.0
        # At least the `served` fixture's request has been scraped.
        if value >= 1:
            break
        time.sleep(3)
    assert value >= 1, f"Prometheus has {value} prediction requests from serving"
    status, body = call(f"{base}/api/v1/query?query=" + urllib.parse.quote('up{job="serving"}'))
    assert [r["value"][1] for r in body["data"]["result"]] == ["1"], body
    status, body = call(f"{base}/api/v1/rules")
    names = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
    assert "SeamlessServingHighErrorRate" in names and "SeamlessFeatureDrift" in names, names


def test_prometheus_sends_alerts_to_the_stacks_alertmanager(stack: Any) -> None:
    """The rendered Secret's config loaded, Alertmanager answers HTTPS only (certificate
    from the overlay's CA), and Prometheus found it by the Service's DNS name over https
    (delivery to receivers: tests/manifests/test_alertmanager.py)."""
    url = stack.url("alertmanager", 9093, scheme="https")
    status, body = call(f"{url}/api/v2/status", tls=cluster_ca(stack))
    assert status == 200, body
    loaded = yaml.safe_load(body["config"]["original"])
    assert {r["name"] for r in loaded["receivers"]} == {"seamless-critical", "seamless-warning"}
    base = stack.url("prometheus", 9090)
    deadline = time.monotonic() + 60
    active: list[str] = []
    while time.monotonic() < deadline and not active:
        status, body = call(f"{base}/api/v1/alertmanagers")
        assert status == 200, body
        active = [a["url"] for a in body["data"]["activeAlertmanagers"]]
        time.sleep(2)
    assert active == ["https://alertmanager.seamless.svc.cluster.local:9093/api/v2/alerts"], body
    # No failed send so far (an alert may not have fired yet: delivery through the shipped
    # TLS settings is proven in tests/manifests/test_alertmanager.py).
    status, body = call(f"{base}/api/v1/query?query=" + urllib.parse.quote(
        "prometheus_notifications_errors_total"))  # fmt: skip
    assert status == 200, body
    assert all(float(r["value"][1]) == 0 for r in body["data"]["result"]), body


def test_training_pipeline_job_runs_against_the_stack(
    stack: Any, champion: dict[str, Any], mlflow_env: dict[str, str]
) -> None:
    """The in-cluster training Job of the kind e2e test (same builder), on the stack: the
    whole pipeline in the runtime image against the deployed MLflow, PostgreSQL and Redis."""
    from mlflow.tracking import MlflowClient
    from training_job import training_job

    out = stack.run_once(training_job(stack.objects, rows=3000), timeout=1200)
    outcome = json.loads(out[out.index("{") :])
    assert outcome["validation"] != "fail", outcome
    assert outcome["decision"] in ("promote", "reject"), outcome
    # Evaluated against the champion the client registered above.
    assert outcome["champion_version"] is not None, outcome
    client = MlflowClient(
        tracking_uri=mlflow_env["MLFLOW_TRACKING_URI"],
        registry_uri=mlflow_env["MLFLOW_TRACKING_URI"],
    )
    mv = client.get_model_version(CONFIG.model.name, outcome["version"])
    assert mv.tags["seamless.decision"] == outcome["decision"]
    assert mv.tags["seamless.pipeline_run_id"], mv.tags
    assert client.get_model_version_by_alias(CONFIG.model.name, "challenger").version == mv.version
    # Its snapshots went to the object store (seamless-s3-endpoint's SEAMLESS_SNAPSHOT_ROOT).
    stored = _keys(_s3(stack), "seamless-data", "snapshots/")
    assert any(k.endswith("/FILES.sha256") for k in stored), stored


def _ca_file(stack: Any) -> str:
    """The overlay's CA bundle as a file (libpq wants a path)."""
    path = Path(stack.workdir) / "seamless-ca.crt"
    if not path.exists():
        for obj in stack.objects:
            if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "seamless-ca":
                path.write_text(obj["data"]["ca.crt"])
    return str(path)


def _app_db(stack: Any, dbname: str, user: str, password_key: str, **tls: str) -> Any:
    """A psycopg2 connection to one of the app databases, as its Secret's user, over TLS
    verified as the pods verify it (`tls` overrides sslmode/sslrootcert)."""
    import psycopg2

    host, port = stack.address("postgres", 5432)
    password = secret(stack, "app-databases")[password_key]
    options = {"sslmode": "verify-full", "sslrootcert": _ca_file(stack), **tls}
    return psycopg2.connect(
        host=host, port=port, dbname=dbname, user=user, password=password, **options
    )


def test_postgres_takes_tls_only_with_a_certificate_for_its_service_names(
    stack: Any, tmp_path: Path
) -> None:
    import psycopg2

    args = (stack, "audit", "audit", "AUDIT_DB_PASSWORD")
    with _app_db(*args) as conn, conn.cursor() as cur:
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl_on, version = cur.fetchone()
    assert ssl_on and version in ("TLSv1.2", "TLSv1.3"), (ssl_on, version)
    # Plaintext: refused by pg_hba.conf (hostssl only), even with the right password.
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        _app_db(*args, sslmode="disable")
    # Another CA: the client refuses the server.
    gen = importlib.util.spec_from_file_location("gen_certs", ROOT / "manifests/tools/gen_certs.py")
    assert gen and gen.loader
    tool = importlib.util.module_from_spec(gen)
    gen.loader.exec_module(tool)
    other = tmp_path / "other-ca.crt"
    other.write_bytes(tool.cert_pem(tool.make_ca("someone else")[0]))
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        _app_db(*args, sslrootcert=str(other))
    # The right CA, a name the certificate does not carry (the pod's IP): refused.
    with pytest.raises(psycopg2.OperationalError, match="does not match host name"):
        psycopg2.connect(
            host=stack.ip("postgres"), port=5432, dbname="audit", user="audit",
            password=secret(stack, "app-databases")["AUDIT_DB_PASSWORD"],
            sslmode="verify-full", sslrootcert=_ca_file(stack), connect_timeout=10,
        )  # fmt: skip


def test_redis_takes_tls_only_with_a_certificate_for_its_service_names(
    stack: Any, tmp_path: Path
) -> None:
    """The online store the materialization wrote to (features fixture) and serving reads
    from: TLS only, verified against the overlay's CA and the Service's name."""
    import redis

    host, port = stack.address("redis", 6379)
    password = secret(stack, "redis-credentials")["REDIS_PASSWORD"]
    kw: dict[str, Any] = {"password": password, "socket_timeout": 10}
    ours = redis.Redis(host=host, port=port, ssl=True, ssl_ca_certs=_ca_file(stack), **kw)
    assert ours.ping()
    assert ours.config_get("port") == {"port": "0"}  # no plaintext listener at all
    # Plaintext to the TLS port: no RESP answer, whatever the password.
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(host=host, port=port, **kw).ping()
    other = tmp_path / "other-ca.crt"
    gen = importlib.util.spec_from_file_location("gen_certs", ROOT / "manifests/tools/gen_certs.py")
    assert gen and gen.loader
    tool = importlib.util.module_from_spec(gen)
    gen.loader.exec_module(tool)
    other.write_bytes(tool.cert_pem(tool.make_ca("someone else")[0]))
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        redis.Redis(host=host, port=port, ssl=True, ssl_ca_certs=str(other), **kw).ping()
    # The right CA, a name the certificate does not carry (the pod's IP): refused. The
    # in-cluster name, resolved by hand: accepted.
    ctx = cluster_ca(stack)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"),
    ):
        ctx.wrap_socket(raw, server_hostname=stack.ip("redis"))
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="redis.seamless.svc.cluster.local") as conn,
    ):
        assert conn.version() in ("TLSv1.2", "TLSv1.3")


def _audit_rows(stack: Any, subject: str) -> list[tuple[str, str, dict[str, Any]]]:
    with _app_db(stack, "audit", "audit", "AUDIT_DB_PASSWORD") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actor, action, entry FROM seamless_audit WHERE subject = %s ORDER BY seq",
            (subject,),
        )
        return [(a, b, json.loads(e)) for a, b, e in cur.fetchall()]


def test_compiled_spark_steps_run_in_the_spark_image(stack: Any, tmp_path: Path) -> None:
    """ingest and validate of the compiled `training-spark` pipeline, each as the pod KFP
    would start (the spec's image, command, env, ConfigMaps, Secrets, labels, scratch
    claim; manifests/tools/step_job.py), with `engine: spark` in local mode: the snapshot
    goes to the object store, the audit entry to PostgreSQL, and both engines agree on it.
    """
    from kfp import dsl
    from step_job import executor_input, load_compiled, step_job

    from components.common.image import image_ref
    from components.ingest.stage import ingest_tables
    from pipelines.demo_data import generate

    ref = image_ref("spark")
    if subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode:
        unavailable(f"image {ref} not built: run `make images BASE_IMAGE=...`")
    compiled = Path(__file__).resolve().parents[2] / "pipelines/compiled/training-spark.yaml"
    pipeline, _ = load_compiled(compiled)
    config_yaml = (
        default_config_path()
        .read_text()
        .replace("engine: ${SEAMLESS_ENGINE:-local}", "engine: spark")
    )
    assert "engine: spark" in config_yaml
    rows, seed, run_id = 2000, 5, "stack-spark-steps"
    claim = stack.workdir / "claims" / "seamless-spark-scratch"
    # Only a k8s:// master uses the pod's IP; Docker cannot give it before the start.
    no_pod_ip = frozenset({"POD_IP"})
    params = {"config_yaml": config_yaml, "pipeline_run_id": run_id}

    data_dir = "/seamless-spark/data"
    ingest_in = executor_input(
        pipeline, "ingest", {**params, "data_dir": data_dir}, "/seamless-spark/run/ingest"
    )
    generate_data = ["seamless", "datasets", "generate", "--out", data_dir,
                     "--rows", str(rows), "--seed", str(seed)]  # fmt: skip
    stack.run_once(
        step_job(compiled, "ingest", ingest_in, "spark-ingest-once",
                 init_command=generate_data, drop_env=no_pod_ip),
        timeout=900,
    )  # fmt: skip
    out = json.loads((claim / "run" / "ingest" / "executor_output.json").read_text())
    produced = out["artifacts"]["dataset"]["artifacts"][0]
    manifest = json.loads((claim / "run" / "ingest" / "dataset" / "manifest.json").read_text())
    assert manifest["engine"] == "spark", manifest
    assert {t["engine"] for t in manifest["tables"].values()} == {"spark"}, manifest
    sha = produced["metadata"]["sha256"]
    assert out["parameterValues"]["Output"] == sha == manifest["sha256"]

    # Same data, local engine, here: the same snapshot content hash.
    generate(tmp_path / "data", n_rows=rows, seed=seed)
    assert ingest_tables(CONFIG, tmp_path / "data", tmp_path / "local")["sha256"] == sha

    stored = _keys(_s3(stack), "seamless-data", f"snapshots/{sha}/")
    assert f"snapshots/{sha}/FILES.sha256" in stored, stored
    audited = _audit_rows(stack, f"dataset:{sha}")
    ingest_events = [e["details"] for _, action, e in audited if action == "data_access"]
    assert any(d["step"] == "ingest" and d["pipeline_run_id"] == run_id for d in ingest_events), (
        audited
    )

    dataset = dsl.Dataset(name="dataset", uri=produced["uri"], metadata=produced["metadata"])
    validate_in = executor_input(
        pipeline, "validate", {**params, "dataset": dataset}, "/seamless-spark/run/validate"
    )
    validate_job = step_job(
        compiled, "validate", validate_in, "spark-validate-once", drop_env=no_pod_ip
    )
    # validate may send a notification: the receivers' Secret (empty here) is mounted.
    pod = validate_job["spec"]["template"]["spec"]
    secrets = {v["secret"]["secretName"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert secrets["seamless-notifications"] == {
        "secretName": "seamless-notifications",
        "optional": True,
    }
    assert "seamless-spark-auth" in secrets, secrets  # Spark's RPC secret, as a file
    [app] = pod["containers"]
    assert {"name": "SEAMLESS_NOTIFICATIONS_DIR", "value": "/etc/seamless/notifications"} in (
        app["env"]
    )
    stack.run_once(validate_job, timeout=900)
    verdict = json.loads((claim / "run" / "validate" / "executor_output.json").read_text())
    assert verdict["parameterValues"]["Output"] == "pass", verdict
    report = claim / "run" / "validate" / "report"
    assert report.is_file() and "expectation" in report.read_text().lower()


def test_prediction_log_and_audit_trail_are_in_postgres(stack: Any, served: dict[str, Any]) -> None:
    """On the cluster the prediction log and the audit trail are PostgreSQL tables (the
    app-databases Secret's URLs), so they outlive pods and are shared by replicas."""
    import psycopg2

    with (
        _app_db(stack, "predictions", "serving", "SERVING_DB_PASSWORD") as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "SELECT entity_id, score FROM seamless_predictions WHERE request_id = %s",
            (served["body"]["request_id"],),
        )
        logged = {str(e): s for e, s in cur.fetchall()}
    answered = {str(p["entity_id"]): p["score"] for p in served["body"]["predictions"]}
    assert logged.keys() == answered.keys()
    assert all(abs(logged[k] - answered[k]) < 1e-12 for k in answered)

    with _app_db(stack, "audit", "audit", "AUDIT_DB_PASSWORD") as conn, conn.cursor() as cur:
        cur.execute("SELECT actor, action FROM seamless_audit ORDER BY seq")
        events = cur.fetchall()
        # Append-only: the table refuses to change history.
        with pytest.raises(psycopg2.Error, match="append-only"):
            cur.execute("DELETE FROM seamless_audit")
    actions = {action for _, action in events}
    assert "model_reload" in actions, events
    reloads = {actor for actor, action in events if action == "model_reload"}
    assert reloads == {"system:serviceaccount:seamless:serving"}, events


def test_dashboard_shows_the_cluster_stores_over_https(
    stack: Any, champion: dict[str, Any], served: dict[str, Any]
) -> None:
    """The dashboard pod reads MLflow and the audit trail in PostgreSQL (TLS, verify-full)
    and answers HTTPS only, behind serving's tokens; the audit page needs an admin token."""
    stack.wait("dashboard", "ready", timeout=120)
    base, tls, roles = stack.url("dashboard", 8765, "https"), served["tls"], served["roles"]
    assert call(f"{base}/api/models", tls=tls)[0] == 401
    status, body = call(f"{base}/api/models", token=roles["predict"], tls=tls)
    assert status == 200 and not body["errors"], body
    (listed,) = [m for m in body["models"] if m["name"] == CONFIG.model.name]
    assert listed["aliases"]["champion"] == champion["version"], listed
    assert call(f"{base}/api/audit", token=roles["predict"], tls=tls)[0] == 403
    status, body = call(f"{base}/api/audit", token=roles["admin"], tls=tls)
    assert status == 200, body
    assert body["verify"]["ok"] and "postgres" in body["where"].lower(), body["verify"]
    actions = {e["action"] for e in body["entries"]}
    assert "model_reload" in actions, actions
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        call(f"{base}/healthz", tls=ssl.create_default_context(), timeout=10)
