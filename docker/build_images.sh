#!/usr/bin/env bash
# Build every Seamless image, in order: runtime, serving, mlflow, feast, spark.
#   usage: BASE_IMAGE=<ref> [REGISTRY=<prefix>] docker/build_images.sh [runtime|serving|mlflow|feast|spark ...]
# BASE_IMAGE: the Python 3.11 base of every image. Unset, the Dockerfiles' default
# (python:3.11-slim) is used, which must then be present locally or pullable; on machines
# without a registry, build one with `make base-image` (docker/base/build.sh) and pass it.
# Installs come from host-side wheelhouses (docker/wheels.sh) with --no-index; layers are
# ordered so a source change rebuilds only the project layer. Tags are immutable: all
# images share the tag of components/common/runtime_image.json (never `latest`).
# REGISTRY (e.g. ghcr.io/acme/seamless): also tag every built image <REGISTRY>/<name>:<tag>
# (docker/push_images.sh --tag-only; `make push` pushes them). Unset: local names only,
# which is what `make images-load` loads into kind.
# Prints one image reference per line on stdout; progress goes to stderr.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WHEELS="${WHEELHOUSE:-$ROOT/build/wheels}"
export WHEELHOUSE="$WHEELS"
PY=python3
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
images=("$@")
((${#images[@]})) || images=(runtime serving mlflow feast spark)

die() { echo "images: $*" >&2; exit 1; }
docker info >/dev/null 2>&1 || die "Docker Engine is not reachable: install docker.io and start dockerd."
# A bad REGISTRY stops before any build (one sentence from components/common/image.py).
if [[ -n ${REGISTRY:-} ]]; then
    PYTHONPATH="$ROOT" "$PY" -m components.common.image --prefix "$REGISTRY" >/dev/null || exit 1
fi

default_base=$(sed -n 's/^ARG BASE_IMAGE=//p' docker/runtime/Dockerfile)
base="${BASE_IMAGE:-$default_base}"
# docker build would try to pull a missing base and fail with a registry error; say what to do instead.
if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [[ -z ${BASE_IMAGE:-} ]]; then
        if ! docker pull "$base" >/dev/null 2>&1; then
            die "the default base image $base is not present and cannot be pulled: run \`make base-image\` and pass the reference it prints, as in \`make images BASE_IMAGE=localhost/seamless/python-base:...\`."
        fi
    else
        die "BASE_IMAGE=$base is not present locally: build it with \`make base-image\` (or docker pull it) first."
    fi
fi

# Read the references once, so every image of this run carries the same tag.
declare -A REFS
while read -r name value; do REFS[$name]=$value; done < <(PYTHONPATH="$ROOT" "$PY" -c "
from components.common.image import image_ref, image_settings
print('tag', image_settings()['tag'])
for name in ('runtime', 'serving', 'mlflow', 'feast', 'spark'):
    print(name, image_ref(name))")
tag=${REFS[tag]}
ref() { echo "${REFS[$1]}"; }
[[ $tag != latest ]] || die "components/common/runtime_image.json has tag 'latest'; tags must be immutable."
# The tag is a digest of the images' inputs: building changed inputs under an old tag
# would make it mutable.
PYTHONPATH="$ROOT" "$PY" -m components.common.image_tag --check >/dev/null || exit 1

needs=()
for image in "${images[@]}"; do
    case $image in
        runtime | serving) needs+=(runtime) ;;
        mlflow | feast) needs+=("$image") ;;
        spark) needs+=(runtime spark) ;;
        *) die "unknown image '$image' (runtime, serving, mlflow, feast, spark)" ;;
    esac
done
mapfile -t needs < <(printf '%s\n' "${needs[@]}" | sort -u)
docker/wheels.sh "${needs[@]}"

build() { # name context dockerfile [extra docker build args...]
    local name=$1 context=$2 dockerfile=$3 image start
    shift 3
    image=$(ref "$name")
    start=$SECONDS
    echo "images: building $image (base $base)" >&2
    docker build --network host --quiet=false \
        --build-arg BASE_IMAGE="$base" \
        --label org.opencontainers.image.version="$tag" \
        --label io.seamless.base-image="$base" \
        -f "$dockerfile" -t "$image" "$@" "$context" >&2
    echo "images: $image built in $((SECONDS - start)) s, $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')" >&2
    echo "$image"
}

for image in "${images[@]}"; do
    case $image in
        runtime) build runtime "$WHEELS/runtime" docker/runtime/Dockerfile ;;
        serving)
            docker image inspect "$(ref runtime)" >/dev/null 2>&1 \
                || die "serving builds FROM $(ref runtime): build the runtime image first."
            build serving docker/serving docker/serving/Dockerfile --build-arg RUNTIME_IMAGE="$(ref runtime)" ;;
        mlflow) build mlflow "$WHEELS/mlflow" docker/mlflow/Dockerfile ;;
        spark)
            docker image inspect "$(ref runtime)" >/dev/null 2>&1 \
                || die "spark builds FROM $(ref runtime): build the runtime image first."
            build spark "$WHEELS/spark" docker/spark/Dockerfile --build-arg RUNTIME_IMAGE="$(ref runtime)" ;;
        feast)
            # The feature repo goes into the context beside the wheels; cp -p keeps the modes
            # (the classic builder has no COPY --chmod).
            rm -rf "$WHEELS/feast/feature_repo"
            mkdir -p "$WHEELS/feast/feature_repo"
            cp -p docker/feast/feature_repo/feature_store.yaml pipelines/configs/credit_risk.yaml "$WHEELS/feast/feature_repo/"
            cp -p docker/feast/entrypoint.sh "$WHEELS/feast/entrypoint.sh"
            build feast "$WHEELS/feast" docker/feast/Dockerfile ;;
    esac
done

if [[ -n ${REGISTRY:-} ]]; then
    docker/push_images.sh --tag-only "${images[@]}"
fi
