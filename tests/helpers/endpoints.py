"""The environment variables that point a process at one workspace's stores."""

ENDPOINT_KEYS = (
    "SEAMLESS_WORKSPACE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "SEAMLESS_FEAST_REPO",
    "SEAMLESS_DERIVED_ENDPOINTS",
)
"""Endpoint variables a workspace build sets (MLflow exports the last URI it was given)."""
