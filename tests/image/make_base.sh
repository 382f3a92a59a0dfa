#!/usr/bin/env bash
# A local stand-in for python:3.11-slim, for machines that reach no container registry (only the package
# registries): Debian bookworm minbase + python3 (3.11) + venv, imported into podman as localhost/matter-align-base.
#   bash tests/image/make_base.sh [image-name]
# The Debian mirror is the one this machine's apt uses (`apt-get indextargets`: sources.list and *.sources alike;
# $DEBIAN_MIRROR overrides), and apt's HTTP proxy, if it has one, is passed on. The root file system is cached as a
# tarball (MATTER_ALIGN_IMAGE_CACHE, default ~/.cache/matter-align), so a rerun on the same machine is an import of a
# few seconds instead of a ~1-2 min debootstrap. Needs root, podman and debootstrap (`make image-tools`).
# Idempotent: an existing image is kept.
set -euo pipefail
IMAGE="${1:-localhost/matter-align-base}"
CACHE="${MATTER_ALIGN_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/matter-align}"
SUITE=bookworm
TARBALL="$CACHE/$SUITE-python3-minbase.tar"
# python3-venv brings ensurepip (the Dockerfile installs into /opt/venv); ca-certificates for HTTPS to the registry.
PACKAGES="python3,python3-venv,ca-certificates"

if podman image exists "$IMAGE"; then
  echo "base image present: $IMAGE"
  exit 0
fi

apt_mirror() {
  # the first configured site that serves $SUITE main (the security and updates suites live elsewhere)
  command -v apt-get >/dev/null || return 0
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 2>/dev/null \
    | awk -v s="$SUITE" '$2 == s && $3 == "main" { print $1; exit }'
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
if command -v apt-config >/dev/null; then
  proxy=""
  eval "$(apt-config shell proxy Acquire::http::Proxy)"
  if [ -n "$proxy" ] && [ -z "${http_proxy:-}" ]; then export http_proxy="$proxy"; fi
fi

mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'rm -rf "$ROOTFS"' EXIT
  echo "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR ..."
  t0=$SECONDS
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -30 "$CACHE/debootstrap.log"; exit 1; }
  # what a slim image leaves out: package lists, caches, docs and man pages
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/usr/share/doc/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*
  tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  echo "debootstrap took $((SECONDS - t0)) s"
fi
podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$TARBALL" "$IMAGE" >/dev/null
echo "base image imported: $IMAGE ($(du -h "$TARBALL" | cut -f1) tarball in $CACHE)"
