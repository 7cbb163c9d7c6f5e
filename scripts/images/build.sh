#!/usr/bin/env bash
# make images: build every image docker/images.env names, from the repository root.
#
# With docker (or podman) and a registry, the Dockerfiles' own bases are pulled as usual.
# Without a registry (LOCAL_BASES=1, or auto when the python base cannot be pulled), the
# local bases of scripts/images/bases.sh are passed as build args; the Airflow image is then
# built on the stand-in base and tagged `<name>-standin`, never as the real thing.
#
#   scripts/images/build.sh [serving] [trainer] [airflow]     (default: all three)
set -euo pipefail
# shellcheck disable=SC1091
source "$(dirname "$0")/engine.sh"
pick_engine
cd "$ROOT"

LOCAL_BASES="${LOCAL_BASES:-auto}"
if [ "$LOCAL_BASES" = auto ]; then
  if timeout 30 "$ENGINE" pull --quiet docker.io/library/python:3.11-slim-bookworm \
      >/dev/null 2>&1; then
    LOCAL_BASES=0
  else
    say "no registry answers: building on local bases (scripts/images/bases.sh)"
    LOCAL_BASES=1
  fi
fi
args=()
standin=""
if [ "$LOCAL_BASES" = 1 ]; then
  bash "$ROOT/scripts/images/bases.sh"
  args+=(--build-arg PYTHON_IMAGE=localhost/driftloop-local/python:3.11-bookworm
         --build-arg UV_IMAGE=localhost/driftloop-local/uv:0.13.9)
  standin=localhost/driftloop-local/airflow-standin:3.3.2
fi
# podman keeps HEALTHCHECK only in the docker image format.
[ "$ENGINE" = podman ] && args+=(--format docker)

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(serving trainer airflow)
mkdir -p "$TOOLS/images"
for name in "${names[@]}"; do
  case "$name" in
    serving) image="$DRIFTLOOP_SERVING_IMAGE"; extra=() ;;
    trainer) image="$DRIFTLOOP_TRAINER_IMAGE"; extra=() ;;
    airflow)
      image="$DRIFTLOOP_AIRFLOW_IMAGE"; extra=()
      if [ -n "$standin" ]; then
        image="$image-standin"; extra=(--build-arg "AIRFLOW_IMAGE=$standin")
      fi ;;
    *) die "unknown image '$name' (serving, trainer, airflow)" ;;
  esac
  logfile="$TOOLS/images/build-$name.log"
  say "building $image (log: $logfile) ..."
  started=$(date +%s)
  if ! "$ENGINE" build "${args[@]}" "${extra[@]}" -f "docker/$name.Dockerfile" -t "$image" . \
      > "$logfile" 2>&1; then
    tail -20 "$logfile" >&2
    die "building $image failed; the whole log: $logfile"
  fi
  size=$("$ENGINE" image inspect --format '{{.Size}}' "$image")
  say "built $image in $(( $(date +%s) - started )) s, $(( size / 1000000 )) MB"
done
