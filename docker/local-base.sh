#!/usr/bin/env bash
# make base-local: a Debian bookworm base image with Python 3, made here from Debian's packages
# (debootstrap) and imported into podman's storage, for building the images where no registry
# image can be pulled. Usage: docker/local-base.sh [IMAGE]; REBUILD=1 makes it again.
# Runs as root (debootstrap needs it). The Dockerfile's default base stays the pinned official one.
set -euo pipefail

image="${1:-localhost/dbos-queue-worker-base:bookworm}"

if [ "$(id -u)" -ne 0 ]; then
  echo "local-base: debootstrap needs root (sudo make base-local)" >&2
  exit 1
fi
# One at a time: two runs would both debootstrap and import the same tag.
exec 9>/run/lock/dbos-queue-worker-base.lock
flock 9

if [ "${REBUILD:-0}" != 1 ] && podman image exists "$image"; then
  echo "local-base: reusing $image (REBUILD=1 makes it again)"
  exit 0
fi

# The machine's own Debian mirror (deb822 sources first, then the classic list); MIRROR overrides.
mirror="${MIRROR:-}"
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list.d/debian.sources ]; then
  mirror="$(awk '$1 == "URIs:" && $2 ~ /\/debian\/?$/ { print $2; exit }' \
    /etc/apt/sources.list.d/debian.sources)"
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
  mirror="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs="$(mktemp -d /var/tmp/dbos-queue-worker-base.XXXXXX)"
cleanup() {
  # debootstrap mounts /proc and /sys inside the root while it works: if it stopped half-way,
  # unmount them, and never delete through a mount.
  awk -v root="$rootfs/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts \
    | sort -r | xargs -r umount --lazy
  rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT
# A stopped run (a cancelled job) cleans up too: an EXIT trap alone is not run on a signal.
trap 'exit 143' TERM
trap 'exit 130' INT

echo "local-base: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$mirror"
# Downloaded packages and index files are of no use in an image, and this machine's own
# files (its name, its resolver, the mirror's address, the install's logs) have no place in one.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf "$rootfs"/etc/apt/sources.list \
  "$rootfs"/var/log/*

tar -C "$rootfs" --numeric-owner --one-file-system -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase --include=python3,python3-venv bookworm" \
  - "$image"
echo "local-base: made $image"
