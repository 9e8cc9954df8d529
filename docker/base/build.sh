#!/usr/bin/env bash
# Build the offline Python base image from Debian packages (no container registry needed):
# debootstrap a minimal bookworm (python3 3.11), add the host's CA trust store so pip
# works behind a TLS-inspecting proxy, and `docker import` the tree.
#
# The tag is immutable: a digest of this script and of the CA bundle it bakes in. An
# image with that tag already present is reused (pass FORCE=1 to rebuild).
# Prints the image reference as its last line.
#   usage: docker/base/build.sh [REPOSITORY]   (default localhost/seamless/python-base)
set -euo pipefail

REPO="${1:-localhost/seamless/python-base}"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
HOST_CA=/etc/ssl/certs/ca-certificates.crt
EXTRA_CA_DIR=/usr/local/share/ca-certificates

die() { echo "base image: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "debootstrap needs root; run this as root."
command -v debootstrap >/dev/null || die "debootstrap is missing; install it (apt-get install debootstrap)."
docker info >/dev/null 2>&1 || die "Docker Engine is not reachable; install docker.io and start dockerd."
[[ -f $HOST_CA ]] || die "$HOST_CA is missing; install ca-certificates on the host."

# Tag = digest of what shapes the image: this script and the trust store it copies.
digest=$(
    {
        cat "$0" "$HOST_CA"
        if [[ -d $EXTRA_CA_DIR ]]; then find "$EXTRA_CA_DIR" -type f -name '*.crt' | sort | xargs -r cat; fi
    } | sha256sum | cut -c1-12
)
IMAGE="$REPO:3.11-$SUITE-$digest"

if [[ -z ${FORCE:-} ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image: $IMAGE already built" >&2
    echo "$IMAGE"
    exit 0
fi

start=$SECONDS
root=$(mktemp -d /var/tmp/seamless-base.XXXXXX)
trap 'rm -rf --one-file-system "$root"' EXIT

echo "base image: debootstrap $SUITE into $root" >&2
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$root" "$MIRROR" >&2

# apt inside images built on this base (e.g. PostgreSQL) needs the same suites as the host.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# The host's trust store: extra CAs (e.g. a TLS-inspecting proxy's) are kept as files
# and the merged bundle replaces the image's, so pip/requests trust what the host trusts.
if [[ -d $EXTRA_CA_DIR ]]; then
    mkdir -p "$root$EXTRA_CA_DIR"
    cp -a "$EXTRA_CA_DIR/." "$root$EXTRA_CA_DIR/"
fi
cp "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"

# Nothing a container needs: package caches and lists, docs, man pages, locales.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true

echo "base image: importing as $IMAGE" >&2
tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    --message "Seamless offline base: Debian $SUITE minbase + python3 (debootstrap)" \
    - "$IMAGE" >&2

echo "base image: built in $((SECONDS - start)) s, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')" >&2
echo "$IMAGE"
