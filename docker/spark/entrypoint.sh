#!/bin/bash
# Seamless' Spark image: a pipeline step (the Spark driver, any `seamless`/python command)
# or, with the single argument `executor`, a Spark executor started by the driver through
# Spark's Kubernetes scheduler. The scheduler passes the executor's settings as
# environment variables (SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, ... and SPARK_JAVA_OPT_<n>
# for the application's JVM options); this turns them into the executor backend's
# command line, with pyspark's own jars as the classpath.
set -euo pipefail

if [[ ${1:-} != executor ]]; then
    exec "$@"
fi

for var in SPARK_DRIVER_URL SPARK_EXECUTOR_ID SPARK_EXECUTOR_CORES SPARK_EXECUTOR_MEMORY \
    SPARK_APPLICATION_ID SPARK_EXECUTOR_POD_IP SPARK_EXECUTOR_POD_NAME; do
    if [[ -z ${!var:-} ]]; then
        echo "spark executor: $var is not set; executors are started by a Spark driver with spark.master k8s://..., not by hand." >&2
        exit 2
    fi
done

# SPARK_JAVA_OPT_0, _1, ... in numeric order (env order is not guaranteed).
java_opts=()
while IFS= read -r name; do
    java_opts+=("${!name}")
done < <(compgen -e | grep -E '^SPARK_JAVA_OPT_[0-9]+$' | sort -t_ -k4 -n)

classpath="$SPARK_HOME/jars/*"
[[ -n ${SPARK_EXTRA_CLASSPATH:-} ]] && classpath="$classpath:$SPARK_EXTRA_CLASSPATH"
[[ -n ${SPARK_CLASSPATH:-} ]] && classpath="$classpath:$SPARK_CLASSPATH"

exec "$JAVA_HOME/bin/java" "${java_opts[@]}" \
    -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
    -cp "$classpath" \
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
    --driver-url "$SPARK_DRIVER_URL" \
    --executor-id "$SPARK_EXECUTOR_ID" \
    --cores "$SPARK_EXECUTOR_CORES" \
    --app-id "$SPARK_APPLICATION_ID" \
    --hostname "$SPARK_EXECUTOR_POD_IP" \
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
    --podName "$SPARK_EXECUTOR_POD_NAME"
