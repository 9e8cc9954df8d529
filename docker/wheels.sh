#!/usr/bin/env bash
# Fill the host-side wheelhouses the image builds install from (the builds need no network):
#   build/wheels/<image>/requirements.lock   copy of docker/<image>/requirements.lock
#   build/wheels/<image>/deps/*.whl          one wheel per locked package (refilled when the lock changes)
#   build/wheels/runtime/project/*.whl       the Seamless wheel (rebuilt every call, reproducible bytes)
# Each build/wheels/<image> folder is that image's build context (build/ is gitignored).
#   usage: docker/wheels.sh [runtime|mlflow|feast|spark ...]   (default: all)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="${WHEELHOUSE:-$ROOT/build/wheels}"
PYTHON="${PYTHON:-python3.11}"
images=("$@")
((${#images[@]})) || images=(runtime mlflow feast spark)
# The host's pip makes the wheels: the project's venv if there is one.
PIP=("$PYTHON" -m pip)
[[ -x $ROOT/.venv/bin/python ]] && PIP=("$ROOT/.venv/bin/python" -m pip)
# Hosts whose pip config names local indexes that do not exist warn once per package.
quiet() { grep -v "^WARNING: Location 'file:" || true; }

deps_wheels() {
    local image=$1 lock="$ROOT/docker/$1/requirements.lock" dir="$OUT/$1" sum start
    mkdir -p "$dir"
    sum=$(sha256sum "$lock" | cut -d' ' -f1)
    if [[ $(cat "$dir/deps.sha256" 2>/dev/null) == "$sum" && -d $dir/deps ]]; then
        echo "wheels: $image: dependency wheels up to date" >&2
    else
        start=$SECONDS
        rm -rf "$dir/deps.new"
        # `pip wheel` keeps published wheels as they are and builds the few sdist-only ones.
        "${PIP[@]}" wheel --quiet --disable-pip-version-check --no-deps \
            --wheel-dir "$dir/deps.new" -r "$lock" 2> >(quiet >&2)
        rm -rf "$dir/deps" && mv "$dir/deps.new" "$dir/deps"
        echo "$sum" >"$dir/deps.sha256"
        echo "wheels: $image: $(find "$dir/deps" -name '*.whl' | wc -l) wheels in $((SECONDS - start)) s ($(du -sh "$dir/deps" | cut -f1))" >&2
    fi
    # cp only on change: an unchanged file keeps the image's COPY layer cached.
    cmp -s "$lock" "$dir/requirements.lock" || cp "$lock" "$dir/requirements.lock"
    # The deps stage's install script (not the Spark image's, which installs into its own folder).
    if [[ $image != spark ]]; then
        cmp -s "$ROOT/docker/venv_from_wheels.sh" "$dir/venv_from_wheels.sh" \
            || cp "$ROOT/docker/venv_from_wheels.sh" "$dir/venv_from_wheels.sh"
    fi
}

project_wheel() {
    local dir="$OUT/runtime/project" src new
    # Built from a copy of the sources, so setuptools' build/ and egg-info never land in
    # the work tree; SOURCE_DATE_EPOCH makes the bytes reproducible, so an unchanged source
    # keeps the image's project layer cached.
    src=$(mktemp -d)
    cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/components" "$ROOT/pipelines" "$src/"
    find "$src" -name __pycache__ -prune -exec rm -rf {} +
    SOURCE_DATE_EPOCH=315532800 "${PIP[@]}" wheel --quiet --disable-pip-version-check --no-deps \
        --wheel-dir "$src/dist" "$src" >/dev/null 2> >(quiet >&2)
    mkdir -p "$dir"
    new=$(ls "$src"/dist/*.whl)
    if ! cmp -s "$new" "$dir/$(basename "$new")"; then
        rm -f "$dir"/*.whl
        cp "$new" "$dir/"
    fi
    rm -rf "$src"
    echo "wheels: runtime: project $(basename "$new")" >&2
}

for image in "${images[@]}"; do
    case $image in
        runtime) deps_wheels runtime; project_wheel ;;
        mlflow | feast) deps_wheels "$image" ;;
        spark)
            deps_wheels spark
            # cp -p keeps the entrypoint executable (the classic builder has no COPY --chmod).
            cmp -s "$ROOT/docker/spark/entrypoint.sh" "$OUT/spark/entrypoint.sh" \
                || cp -p "$ROOT/docker/spark/entrypoint.sh" "$OUT/spark/entrypoint.sh" ;;
        *) echo "wheels: unknown image '$image' (runtime, mlflow, feast, spark)" >&2; exit 2 ;;
    esac
done
