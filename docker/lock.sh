#!/usr/bin/env bash
# Regenerate the pinned requirement locks of the images:
#   runtime  docker/runtime/requirements.lock  Seamless's runtime deps (`pip install .`, no [dev])
#   mlflow   docker/mlflow/requirements.lock   from docker/mlflow/requirements.in
#   feast    docker/feast/requirements.lock    from docker/feast/requirements.in
# Each is resolved in a clean temporary venv, constrained to the versions the dev venv
# has, so every image runs exactly the versions the tests run (kfp, mlflow, feast, ...).
# The lock is `pip freeze --exclude-editable` minus the project, minus what is reachable
# only through IGNORED_EXTRAS (below); images install it --no-deps.
#   usage: docker/lock.sh [runtime|mlflow|feast ...]   (default: all)
#   env:   DEV_VENV (default .venv; empty = unconstrained), PYTHON (default python3.11)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEV_VENV="${DEV_VENV-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
# python3 of the images' base (Debian bookworm), for environment markers.
IMAGE_PYTHON="${IMAGE_PYTHON:-3.11.2}"
images=("$@")
((${#images[@]})) || images=(runtime mlflow feast)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
quiet() { grep -v "^WARNING: Location 'file:" || true; }

constraints=()
if [[ -n $DEV_VENV ]]; then
    [[ -x $DEV_VENV/bin/pip ]] || { echo "lock: no venv at $DEV_VENV (run make venv, or set DEV_VENV=)" >&2; exit 1; }
    "$DEV_VENV/bin/pip" freeze --exclude-editable | grep -viE '^seamless([=@ ]|$)' >"$tmp/dev-constraints.txt"
    constraints=(-c "$tmp/dev-constraints.txt")
fi

lock_one() {
    local image=$1 venv="$tmp/$1" lock="$ROOT/docker/$1/requirements.lock" roots=()
    "$PYTHON" -m venv "$venv"
    if [[ $image == runtime ]]; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check "${constraints[@]}" "$ROOT" 2> >(quiet >&2)
        roots=(seamless)
    else
        "$venv/bin/pip" install --quiet --disable-pip-version-check "${constraints[@]}" \
            -r "$ROOT/docker/$image/requirements.in" 2> >(quiet >&2)
        mapfile -t roots < <(grep -vE '^\s*(#|$)' "$ROOT/docker/$image/requirements.in")
    fi
    # The images run Debian bookworm's Python (IMAGE_PYTHON), older than this venv's: a
    # requirement under a marker such as python_full_version < "3.11.3" (redis ->
    # async-timeout) applies there but not here, so it is installed here too and locked.
    local pass
    for pass in 1 2; do
    "$venv/bin/pip" freeze --exclude-editable | grep -viE '^seamless([=@ ]|$)' >"$venv.freeze"

    # feast 0.67 requires `SQLAlchemy[mypy]` unconditionally, which drags mypy (~60 MB, a
    # type checker) into every install. Nothing imports it at run time, so keep only
    # what the roots reach without that extra.
    # (From $tmp: a project folder's own *.egg-info on sys.path[0] would shadow the install.)
    (cd "$tmp" && IMAGE_PYTHON="$IMAGE_PYTHON" "$venv/bin/python" - "$venv.freeze" "$venv.missing" "${roots[@]}") >"$venv.keep" <<'PY'
import os
import sys
from importlib.metadata import PackageNotFoundError, distribution
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as norm

# feast[duckdb]: the embedded offline store for local runs. In the image's steps the
# offline root is an object store, where the offline store is `file` (DuckDB would fetch
# its httpfs extension at run time), so duckdb and ibis (~90 MB) are never imported there.
IGNORED_EXTRAS = {("sqlalchemy", "mypy"), ("feast", "duckdb")}

def split(raw: str) -> tuple[str, frozenset[str]]:
    if raw == "seamless":
        return raw, frozenset()
    req = Requirement(raw)
    return norm(req.name), frozenset(norm(e) for e in req.extras)

IMAGE_ENV = {"python_full_version": os.environ["IMAGE_PYTHON"],
             "python_version": ".".join(os.environ["IMAGE_PYTHON"].split(".")[:2])}
seen: set[str] = set()
missing: set[str] = set()
visited: set[tuple[str, frozenset[str]]] = set()
todo = [split(r) for r in sys.argv[3:]]
while todo:
    name, extras = todo.pop()
    if (name, extras) in visited:
        continue
    visited.add((name, extras))
    seen.add(name)
    try:
        requires = distribution(name).requires or []
    except PackageNotFoundError:
        missing.add(name)
        continue
    for raw in requires:
        req = Requirement(raw)
        envs = [{"extra": "", **IMAGE_ENV}] + [{"extra": e, **IMAGE_ENV} for e in extras]
        if req.marker and not any(req.marker.evaluate(env) for env in envs):
            continue
        child = norm(req.name)
        kept = frozenset(norm(e) for e in req.extras if (child, norm(e)) not in IGNORED_EXTRAS)
        todo.append((child, kept))
seen.discard("seamless")
for line in open(sys.argv[1]):
    if norm(line.split("==")[0]) in seen:
        print(line.strip())
with open(sys.argv[2], "w") as fh:
    fh.write("".join(f"{m}\n" for m in sorted(missing)))
PY
    [[ -s $venv.missing ]] || break
    [[ $pass == 1 ]] || { echo "lock: $image: still missing $(tr '\n' ' ' <"$venv.missing")" >&2; return 1; }
    echo "lock: $image: adding for Python $IMAGE_PYTHON: $(tr '\n' ' ' <"$venv.missing")" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${constraints[@]}" -r "$venv.missing" 2> >(quiet >&2)
    done

    {
        echo "# Pinned requirements of the $image image (generated by docker/lock.sh; do not edit)."
        echo "# Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), linux x86_64. Complete set: install with --no-deps."
        LC_ALL=C sort -f "$venv.keep"
    } >"$lock.tmp"
    # No image carries dev tools.
    if grep -iqE '^(pytest|ruff|mypy)[=-]' "$lock.tmp"; then
        echo "lock: a dev tool leaked into the $image lock:" >&2
        grep -iE '^(pytest|ruff|mypy)[=-]' "$lock.tmp" >&2
        rm -f "$lock.tmp"
        return 1
    fi
    mv "$lock.tmp" "$lock"
    local dropped
    dropped=$(LC_ALL=C comm -23 <(LC_ALL=C sort "$venv.freeze") <(LC_ALL=C sort "$venv.keep") | tr '\n' ' ')
    echo "lock: $image: $(grep -vc '^#' "$lock") packages -> ${lock#"$ROOT"/} (left out: ${dropped:-none})"
}

for image in "${images[@]}"; do
    case $image in
        runtime | mlflow | feast) lock_one "$image" & ;;
        *) echo "lock: unknown image '$image' (runtime, mlflow, feast)" >&2; exit 2 ;;
    esac
done
# The resolves are independent: run them side by side, fail if any failed.
status=0
for _ in "${images[@]}"; do wait -n || status=1; done
exit $status
