#!/usr/bin/env bash
# Sourced by the image scripts: pick the container engine and configure it.
#
# docker where an engine answers (nothing changes for a user with Docker and a registry);
# otherwise podman/buildah, installed from Debian's packages when missing (root, apt-get),
# with a containers.conf that works where root cannot raise rlimits and crun fails on hybrid
# cgroups (runc; fixed nofile/nproc ulimits). The conf lives in .tools/containers and is
# passed through CONTAINERS_CONF, so the machine's own configuration is left alone.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
# shellcheck disable=SC1091
source "$ROOT/docker/images.env"

say() { printf 'images: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

podman_conf() {
  mkdir -p "$TOOLS/containers"
  export CONTAINERS_CONF="$TOOLS/containers/containers.conf"
  cat > "$CONTAINERS_CONF" <<'CONF'
# Written by scripts/images/engine.sh (make images): root cannot raise rlimits on this kind
# of machine, and crun fails on hybrid cgroups.
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]

[engine]
runtime = "runc"
CONF
}

pick_engine() {
  if [ -n "${ENGINE:-}" ]; then
    :
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    if ! command -v podman >/dev/null 2>&1 || ! command -v buildah >/dev/null 2>&1; then
      [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        || die "no docker engine answers and podman is not installed: install podman and buildah (or start docker)"
      say "installing podman, buildah, runc and debootstrap with apt-get (log: $TOOLS/apt-podman.log)"
      mkdir -p "$TOOLS"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman buildah runc debootstrap uidmap \
        > "$TOOLS/apt-podman.log" 2>&1 || die "apt-get install failed; see $TOOLS/apt-podman.log"
    fi
    ENGINE=podman
  fi
  if [ "$ENGINE" = podman ]; then
    podman_conf
  fi
  export ENGINE
}

# Whether an image exists in the engine's local store.
have_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }
