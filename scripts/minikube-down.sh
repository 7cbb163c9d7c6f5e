#!/usr/bin/env bash
# Tear down what scripts/minikube-up.sh brought up.
#   (default)  delete the Minikube profile: the cluster, its images and every volume
#              (MLflow store, prediction log, Airflow metadata) are gone.
#   --stop     stop the profile and keep everything for the next minikube-up.sh.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/minikube-down.sh [--stop] [--help]

  (default)  delete the Minikube profile (all state is lost)
  --stop     stop it, keeping the cluster and its volumes

Environment: DRIFTLOOP_MINIKUBE_PROFILE (default: driftloop)
USAGE
}

STOP_ONLY=0
while (($#)); do
  case "$1" in
    --stop) STOP_ONLY=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "minikube-down: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

PROFILE="${DRIFTLOOP_MINIKUBE_PROFILE:-driftloop}"
command -v minikube >/dev/null 2>&1 || {
  echo "minikube-down: error: minikube not found on PATH (nothing to tear down here)" >&2
  exit 1
}

if ((STOP_ONLY)); then
  echo "==> stopping Minikube profile '$PROFILE' (state kept; scripts/minikube-up.sh resumes it)"
  minikube stop -p "$PROFILE"
else
  echo "==> deleting Minikube profile '$PROFILE' (cluster, images and volumes)"
  minikube delete -p "$PROFILE"
fi
