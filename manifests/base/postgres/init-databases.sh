#!/bin/sh
# Runs once, when the PostgreSQL data directory is first initialised (the image's
# /docker-entrypoint-initdb.d hook). One role per client, one database per store, so
# MLflow cannot read Feast's registry and the reverse. Passwords come from the Secret
# through the environment, passed to psql as variables (never interpolated into SQL).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v feast_pw="$FEAST_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE ROLE feast LOGIN PASSWORD :'feast_pw';
-- MLflow tracking + model registry
CREATE DATABASE mlflow OWNER mlflow;
-- MLflow basic-auth users and permissions (its own database_uri)
CREATE DATABASE mlflow_auth OWNER mlflow;
-- Feast SQL registry
CREATE DATABASE feast_registry OWNER feast;
REVOKE ALL ON DATABASE mlflow, mlflow_auth, feast_registry FROM PUBLIC;
GRANT CONNECT ON DATABASE mlflow, mlflow_auth TO mlflow;
GRANT CONNECT ON DATABASE feast_registry TO feast;
SQL
