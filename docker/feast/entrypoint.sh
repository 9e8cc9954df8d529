#!/bin/sh
# Refuse to start when feature_store.yaml names a ${VAR} that is unset: Feast would keep
# it literal and fail later with a confusing connection error.
set -eu
yaml="${FEAST_FS_YAML_FILE_PATH:-${FEATURE_REPO_DIR_ENV_VAR:-$PWD}/feature_store.yaml}"
case " $* " in *" version "* | *" --help "*) yaml=/dev/null/none ;; esac # these read no config
if [ -f "$yaml" ]; then
    for var in $(grep -v '^[[:space:]]*#' "$yaml" | grep -o '\${[A-Za-z_][A-Za-z0-9_]*}' | tr -d '${}' | sort -u); do
        eval "value=\${$var:-}"
        if [ -z "$value" ]; then
            echo "feast image: $yaml needs the environment variable $var (or mount your own feature_store.yaml over /feature_repo)." >&2
            exit 64
        fi
    done
fi
exec "$@"
