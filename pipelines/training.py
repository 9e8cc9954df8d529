"""The training pipeline: ingest -> validate -> features -> train -> evaluate -> register -> deploy,
with the online store loaded (materialize) beside train, before deploy.

Nothing past validation runs when a critical expectation fails; deploy runs only when
the register step says `promote`: the evaluation gate's decision, unless the compliance
policy (config `compliance:`) failed. Gates compare a component's single `str` return
(`outputs["Output"]`): kfp.local cannot evaluate conditions on NamedTuple outputs.
"""

# No `from __future__ import annotations` here: KFP reads the annotations as types.
from typing import Any

from kfp import dsl, kubernetes

from components.common.env import TELEMETRY_OFF
from components.common.image import image_ref
from components.common.notifications_config import NOTIFICATIONS_DIR_ENV
from components.common.spark_kubernetes import (
    AUTH_DIR,
    AUTH_FILE_ENV,
    AUTH_SECRET,
    DRIVER_LABEL,
    EXECUTOR_AUTH_FILE,
    IMAGE_ENV,
    SCRATCH_CLAIM,
    SCRATCH_ENV,
)
from components.common.storage import EPHEMERAL_DISK_ENV
from components.deploy.component import deploy, deploy_kubernetes
from components.evaluate.component import evaluate
from components.features.component import features, materialize
from components.ingest.component import ingest
from components.register.component import register
from components.train.component import train
from components.validate.component import validate

PIPELINE_NAME = "seamless-training"
FEAST_VOLUME = "/feast"
FEAST_CONFIG_DIR = "/etc/feast"
SPARK_SCRATCH = "/seamless-spark"
NOTIFICATIONS_DIR = "/etc/seamless/notifications"
CA_DIR = "/etc/seamless/ca"
OBJECT_STORE_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_CA_BUNDLE",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
    "SEAMLESS_SNAPSHOT_ROOT",
    "SEAMLESS_FEAST_OFFLINE_ROOT",
)
"""Object storage settings a step takes from the `seamless-s3-endpoint` ConfigMap when
the overlay has one (docs/object-storage.md); the keys come from the `seamless-s3` Secret.
AWS_CA_BUNDLE (kind's MinIO is HTTPS with a certificate of seamless-ca) is a file of the
seamless-ca volume every step mounts; keys the overlay's ConfigMap lacks stay unset."""
LAUNCHER_CA_DIRS = "/etc/seamless/ca:/etc/ssl/certs"
"""SSL_CERT_DIR of every step: KFP's launcher (Go, the step container's entrypoint) moves
the step's artifacts to and from the pipeline root in the object store and trusts the
system's CAs plus the seamless-ca folder (Go reads every file there; OpenSSL still finds
the system's hashed certificates in /etc/ssl/certs)."""
MLFLOW_ENDPOINT_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_SERVER_CERT_PATH")
"""What a step takes from the `seamless-endpoints` ConfigMap: MLflow's https URL and the
CA file its certificate is verified against."""


def wire_for_kubernetes(task: dsl.PipelineTask) -> None:
    """Endpoints and credentials from the namespace's ConfigMaps/Secrets (manifests/base),
    never literal URLs; a writable /tmp under a read-only root filesystem."""
    # MLflow serves HTTPS only on the cluster: the client verifies it against the CA file
    # the ConfigMap names (the seamless-ca volume mounted below).
    kubernetes.use_config_map_as_env(
        task, "seamless-endpoints", {k: k for k in MLFLOW_ENDPOINT_ENV}
    )
    kubernetes.use_config_map_as_env(task, "seamless-telemetry-off", {k: k for k in TELEMETRY_OFF})
    kubernetes.use_secret_as_env(
        task,
        "mlflow-client",
        {k: k for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")},
    )
    # The audit trail, and the prediction log the monitoring steps read, in PostgreSQL.
    kubernetes.use_secret_as_env(
        task,
        "app-databases",
        {k: k for k in ("SEAMLESS_AUDIT_URL", "SEAMLESS_SERVE_LOG_URL")},
    )
    # Object storage: optional references, so a step without them starts and says in one
    # sentence what is missing (keys may also come from a pod identity); the label lets
    # the step through the store's network policy.
    kubernetes.use_config_map_as_env(
        task, "seamless-s3-endpoint", {k: k for k in OBJECT_STORE_ENV}, optional=True
    )
    kubernetes.add_pod_label(task, "seamless.dev/s3-client", "true")
    kubernetes.use_secret_as_env(
        task,
        "seamless-s3",
        {k: k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
        optional=True,
    )
    kubernetes.add_pod_label(task, "seamless.dev/pipeline-step", "true")
    # PostgreSQL (Feast registry, audit trail, prediction log) takes TLS only: libpq
    # verifies its certificate and name against the namespace's CA bundle.
    kubernetes.use_config_map_as_volume(task, "seamless-ca", mount_path=CA_DIR)
    task.set_env_variable("SSL_CERT_DIR", LAUNCHER_CA_DIRS)
    task.set_env_variable("PGSSLMODE", "verify-full")
    task.set_env_variable("PGSSLROOTCERT", f"{CA_DIR}/ca.crt")
    kubernetes.empty_dir_mount(task, volume_name="tmp", mount_path="/tmp", size_limit="4Gi")
    # The pod's disk goes with it: steps refuse local roots for data meant to outlive them.
    task.set_env_variable(EPHEMERAL_DISK_ENV, "true")
    task.set_env_variable("HOME", "/tmp")
    task.set_env_variable("SEAMLESS_WORKSPACE", "/tmp/seamless")
    # Who acts, for the audit trail and access checks: the pod's ServiceAccount, with
    # the role the manifests grant pipeline steps.
    kubernetes.use_field_path_as_env(task, "KUBERNETES_SERVICE_ACCOUNT", "spec.serviceAccountName")
    kubernetes.use_field_path_as_env(task, "POD_NAMESPACE", "metadata.namespace")
    task.set_env_variable("SEAMLESS_ROLE", "ml_engineer")


def size_step(
    task: dsl.PipelineTask, retries: int, cpu: str = "500m", memory: tuple[str, str] = ("1G", "4G")
) -> None:
    """Retries with backoff (a cluster's transient failures), the CPU the step requests
    (limit 2 for every step) and its memory (request, limit)."""
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s")
    task.set_cpu_request(cpu).set_cpu_limit("2")
    task.set_memory_request(memory[0]).set_memory_limit(memory[1])


def may_notify(task: dsl.PipelineTask) -> None:
    """A step that sends events (config `notifications:`): the receivers' URLs from the
    optional `seamless-notifications` Secret, one key per `url_env`, mounted as files
    (their names are the config's, unknown when the spec is compiled); the label lets the
    step out to them (NetworkPolicy `notification-senders`)."""
    kubernetes.use_secret_as_volume(
        task, "seamless-notifications", mount_path=NOTIFICATIONS_DIR, optional=True
    )
    task.set_env_variable(NOTIFICATIONS_DIR_ENV, NOTIFICATIONS_DIR)
    kubernetes.add_pod_label(task, "seamless.dev/notifier", "true")


def may_pseudonymize(task: dsl.PipelineTask) -> None:
    """A step that reads source tables (ingest, batch scoring): the key for the config's
    `pii: pseudonymize` columns from the optional `seamless-pii` Secret (docs/security.md);
    only these steps get it."""
    kubernetes.use_secret_as_env(
        task, "seamless-pii", {"SEAMLESS_PII_KEY": "SEAMLESS_PII_KEY"}, optional=True
    )


def use_feast_repo(task: dsl.PipelineTask) -> None:
    """The features step reaches the SQL registry and Redis with the credentials the
    feature server uses. Its repo folder is scratch: the offline tables go to
    SEAMLESS_FEAST_OFFLINE_ROOT in object storage, which the step requires on a cluster."""
    kubernetes.empty_dir_mount(
        task, volume_name="feast-repo-dir", mount_path=FEAST_VOLUME, size_limit="1Gi"
    )
    kubernetes.use_config_map_as_volume(task, "feast-repo", mount_path=FEAST_CONFIG_DIR)
    kubernetes.use_secret_as_env(task, "postgres-credentials", {"FEAST_DB_PASSWORD": "PGPASSWORD"})
    kubernetes.use_secret_as_env(task, "redis-credentials", {"REDIS_PASSWORD": "REDIS_PASSWORD"})
    task.set_env_variable("SEAMLESS_FEAST_REPO", FEAST_VOLUME)
    task.set_env_variable("SEAMLESS_FEAST_CONFIG", f"{FEAST_CONFIG_DIR}/feature_store.yaml")


def run_as_spark_driver(task: dsl.PipelineTask) -> None:
    """A data step of the Spark variant: the Spark image, and what Spark's Kubernetes
    scheduler needs to start executors from this pod (components/common/spark_kubernetes.py):
    its IP and name, API access, the executors' image, the shared scratch volume, the
    authentication secret."""
    image = image_ref("spark")
    task.set_container_image(image)
    task.set_env_variable(IMAGE_ENV, image)
    kubernetes.use_field_path_as_env(task, "POD_IP", "status.podIP")
    kubernetes.use_field_path_as_env(task, "POD_NAME", "metadata.name")
    kubernetes.add_pod_label(task, DRIVER_LABEL, "true")
    kubernetes.add_pod_label(task, "seamless.dev/apiserver-client", "true")
    kubernetes.mount_pvc(task, pvc_name=SCRATCH_CLAIM, mount_path=SPARK_SCRATCH)
    task.set_env_variable(SCRATCH_ENV, SPARK_SCRATCH)
    # Spark's shared authentication secret, as a file where the executors have it too:
    # driver and executors authenticate each other and encrypt their RPC with it.
    kubernetes.use_secret_as_volume(task, AUTH_SECRET, mount_path=AUTH_DIR)
    task.set_env_variable(AUTH_FILE_ENV, EXECUTOR_AUTH_FILE)


def build_training_pipeline(retries: int = 2, cluster: bool = False, engine: str = "local"):  # type: ignore[no-untyped-def]
    """The pipeline, with `retries` per step (for transient failures on a cluster).

    Local runs build it with no retries: there a failure is bad input or a bug, and
    kfp.local would otherwise repeat it with backoff before saying so. `cluster` adds
    the Kubernetes wiring (endpoints and credentials from ConfigMaps and Secrets, the
    Feast repo) and deploys by rolling the serving Deployment. `engine="spark"` (cluster
    only) runs ingest, validate and features in the Spark image as Spark drivers, for
    configs with `engine: spark`.
    """

    @dsl.pipeline(
        name=PIPELINE_NAME if engine == "local" else f"{PIPELINE_NAME}-{engine}",
        description="Raw data to a registered, gated, deployed champion model"
        + (" (data steps on Spark)." if engine == "spark" else "."),
    )
    def training_pipeline(config_yaml: str, data_dir: str = "") -> str:
        """Returns the validation decision (`pass`, `warn` or `fail`)."""
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        ingested = ingest(
            config_yaml=config_yaml, data_dir=data_dir, pipeline_run_id=run_id
        ).set_display_name("ingest")
        checked = validate(
            config_yaml=config_yaml, dataset=ingested.outputs["dataset"], pipeline_run_id=run_id
        )
        checked.set_display_name("validate")
        with dsl.If(checked.outputs["Output"] != "fail", name="data-is-valid"):
            feats = features(
                config_yaml=config_yaml, dataset=ingested.outputs["dataset"], pipeline_run_id=run_id
            )
            # The online store loads beside training: only the deploy step needs it.
            online = materialize(
                config_yaml=config_yaml, training_set=feats.outputs["training_set"]
            )
            online.set_display_name("materialize")
            trained = train(
                config_yaml=config_yaml,
                training_set=feats.outputs["training_set"],
                pipeline_run_id=run_id,
            )
            judged = evaluate(
                config_yaml=config_yaml,
                model=trained.outputs["model"],
                holdout=trained.outputs["holdout"],
            )
            registered = register(
                config_yaml=config_yaml,
                model=trained.outputs["model"],
                evaluation=judged.outputs["decision"],
                decision=judged.outputs["Output"],
                validation_decision=checked.outputs["Output"],
                feature_service=feats.outputs["Output"],
                pipeline_run_id=run_id,
            )
            # Register's decision is the gate's with the compliance policy folded in.
            with dsl.If(registered.outputs["Output"] == "promote", name="challenger-wins"):
                deploy_step = deploy_kubernetes if cluster else deploy
                deployed = deploy_step(
                    config_yaml=config_yaml,
                    version=registered.outputs["version"],
                    pipeline_run_id=run_id,
                ).set_display_name("deploy")
                deployed.after(online)  # serving reads the online store
        steps = (ingested, checked, feats, online, trained, judged, registered, deployed)
        for task in steps:
            size_step(task, retries)
        if cluster:
            for task in steps:
                wire_for_kubernetes(task)
            use_feast_repo(feats)
            use_feast_repo(online)
            kubernetes.add_pod_label(deployed, "seamless.dev/apiserver-client", "true")
            may_notify(checked)
            may_notify(registered)
            may_pseudonymize(ingested)
            if engine == "spark":
                for task in (ingested, checked, feats, online):
                    run_as_spark_driver(task)
        return checked.outputs["Output"]

    return training_pipeline


# The compiled variants (pipelines/compiled/training.yaml and training-spark.yaml) are
# built on first use: building one costs about a second (kfp inspects the call stack on
# every task setting), and a local run needs neither.
_CLUSTER_VARIANTS = {"training_pipeline": "local", "training_spark_pipeline": "spark"}
_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name not in _CLUSTER_VARIANTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _built:
        _built[name] = build_training_pipeline(
            retries=2, cluster=True, engine=_CLUSTER_VARIANTS[name]
        )
    return _built[name]
