#!/bin/sh
# Runs once, when the PostgreSQL data directory is first initialised (the image's
# /docker-entrypoint-initdb.d hook). One role per client, one database per store, so
# MLflow cannot read Feast's registry and the reverse. Passwords come from the Secret
# through the environment, passed to psql as variables (never interpolated into SQL).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v feast_pw="$FEAST_DB_PASSWORD" \
    -v serving_pw="$SERVING_DB_PASSWORD" -v audit_pw="$AUDIT_DB_PASSWORD" \
    -v dashboard_pw="$DASHBOARD_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE ROLE feast LOGIN PASSWORD :'feast_pw';
CREATE ROLE serving LOGIN PASSWORD :'serving_pw';
CREATE ROLE audit LOGIN PASSWORD :'audit_pw';
-- The dashboard reads the prediction log and the audit trail, and appends its own
-- access_denied entries to the trail: no UPDATE, DELETE, TRUNCATE or DDL anywhere.
CREATE ROLE dashboard LOGIN PASSWORD :'dashboard_pw';
-- MLflow tracking + model registry
CREATE DATABASE mlflow OWNER mlflow;
-- MLflow basic-auth users and permissions (its own database_uri)
CREATE DATABASE mlflow_auth OWNER mlflow;
-- Feast SQL registry
CREATE DATABASE feast_registry OWNER feast;
-- Serving's prediction and feedback log (read by the monitoring pipeline)
CREATE DATABASE predictions OWNER serving;
-- The audit trail of every writer (append-only table, created on first use)
CREATE DATABASE audit OWNER audit;
REVOKE ALL ON DATABASE mlflow, mlflow_auth, feast_registry, predictions, audit FROM PUBLIC;
GRANT CONNECT ON DATABASE mlflow, mlflow_auth TO mlflow;
GRANT CONNECT ON DATABASE feast_registry TO feast;
GRANT CONNECT ON DATABASE predictions TO serving;
GRANT CONNECT ON DATABASE audit TO audit;
GRANT CONNECT ON DATABASE predictions, audit TO dashboard;
-- The tables do not exist yet (their owners create them on first use): grant on what
-- those owners will create. (Since PostgreSQL 15 only a database's owner may create in
-- its public schema, so the dashboard cannot.)
\connect predictions
ALTER DEFAULT PRIVILEGES FOR ROLE serving IN SCHEMA public GRANT SELECT ON TABLES TO dashboard;
\connect audit
ALTER DEFAULT PRIVILEGES FOR ROLE audit IN SCHEMA public
    GRANT SELECT, INSERT ON TABLES TO dashboard;
SQL
