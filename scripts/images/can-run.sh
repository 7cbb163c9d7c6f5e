#!/usr/bin/env bash
# Exit 0 when a container engine can run containers here (docker answering, or podman, which
# this installs from Debian's packages when it is missing and it can); 1 otherwise.
set -uo pipefail
# shellcheck disable=SC1091
source "$(dirname "$0")/engine.sh"
pick_engine >/dev/null 2>&1 || exit 1
"$ENGINE" info >/dev/null 2>&1
