#!/usr/bin/env bash
# Build a Debian bookworm base image with Python 3.11 from Debian's packages alone, for
# machines that can reach a Debian mirror but no container registry:
#   deploy/make-base-image.sh [TAG]        (default garmin-sync-base:bookworm)
# then: podman build --build-arg BASE_IMAGE=garmin-sync-base:bookworm ...
# Needs root, debootstrap and podman. DEBIAN_MIRROR picks the mirror.
set -euo pipefail

tag=${1:-garmin-sync-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}

root=$(mktemp -d /var/tmp/garmin-sync-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "--- debootstrap bookworm (minbase + python3, python3-venv) into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$mirror"

echo "--- security and point-release updates"
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
chroot "$root" apt-get update -qq
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get upgrade -y -qq
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*

echo "--- import as $tag"
tar -C "$root" --numeric-owner -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$tag"
podman image inspect --format '{{.Id}} {{.Size}} bytes' "$tag"
