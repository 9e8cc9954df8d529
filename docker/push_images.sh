#!/usr/bin/env bash
# Tag the project's images for a registry and push them; record the registry's digests.
#   usage: REGISTRY=ghcr.io/acme/seamless docker/push_images.sh [--tag-only] [runtime|serving|mlflow|feast|spark ...]
# REGISTRY: the prefix every image goes under (lowercase, no tag), as in `make push
# REGISTRY=...`; log in first (`docker login ghcr.io`). Each local image
# (localhost/seamless/<name>:<tag>, from `make images`) is tagged <REGISTRY>/<name>:<tag>
# (the same immutable tag) and pushed; the digest the registry answers is merged into
# build/images/digests.json, which `seamless compile --image-prefix REGISTRY` uses to pin
# `<REGISTRY>/<name>@sha256:...`. --tag-only stops after tagging (what `make images
# REGISTRY=...` runs). IMAGE_DIGESTS: another digests file (the tests use one). Prints one
# `reference@digest` (or, tagging only, reference) per line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=python3
[[ -x .venv/bin/python ]] && PY=.venv/bin/python

die() { echo "push: $*" >&2; exit 1; }
tag_only=0
if [[ ${1:-} == --tag-only ]]; then tag_only=1; shift; fi
images=("$@")
((${#images[@]})) || images=(runtime serving mlflow feast spark)
[[ -n ${REGISTRY:-} ]] || die "REGISTRY is not set: name the registry prefix, as in \`make push REGISTRY=ghcr.io/acme/seamless\`."
docker info >/dev/null 2>&1 || die "Docker Engine is not reachable: install docker.io and start dockerd."

# Local and registry references from the one place that names images (image_ref); a bad
# REGISTRY stops here with one sentence.
declare -A LOCAL REMOTE
refs() { PYTHONPATH="$ROOT" "$PY" -m components.common.image "$@"; }
local_refs=$(refs) || exit 1
remote_refs=$(refs --prefix "$REGISTRY") || exit 1
while read -r name value; do LOCAL[$name]=$value; done <<<"$local_refs"
while read -r name value; do REMOTE[$name]=$value; done <<<"$remote_refs"

for image in "${images[@]}"; do
    [[ -n ${LOCAL[$image]:-} && $image != tag ]] || die "unknown image '$image' (runtime, serving, mlflow, feast, spark)"
    local_ref=${LOCAL[$image]} remote=${REMOTE[$image]}
    if ! docker image inspect "$remote" >/dev/null 2>&1; then
        docker image inspect "$local_ref" >/dev/null 2>&1 \
            || die "$local_ref is not on this machine: build it first (make images BASE_IMAGE=... REGISTRY=$REGISTRY)."
        docker tag "$local_ref" "$remote"
        echo "push: tagged $remote" >&2
    fi
    if ((tag_only)); then
        echo "$remote"
        continue
    fi
    echo "push: pushing $remote" >&2
    out=$(docker push "$remote" 2>&1) || { echo "$out" >&2; die "docker push $remote failed (see above; logged in to the registry?)."; }
    echo "$out" >&2
    # The registry's answer for this push: "<tag>: digest: sha256:<hex> size: <n>".
    digest=$(sed -n 's/^.*: digest: \(sha256:[0-9a-f]\{64\}\) size: [0-9]*$/\1/p' <<<"$out" | tail -1)
    [[ -n $digest ]] || die "docker push $remote did not report a digest."
    refs --record "$remote" "$digest" --digests-file "${IMAGE_DIGESTS:-build/images/digests.json}" || exit 1
    echo "$remote@$digest"
done
