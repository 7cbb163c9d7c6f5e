#!/usr/bin/env bash
# `make down`: stop what `make up` started. Each part is a process group: SIGTERM to the
# group, then SIGKILL after DOWN_TIMEOUT seconds (Airflow's workers ignore a SIGTERM sent to
# their parent alone, hence the group). Retrain runs that Airflow started through the local
# KFP runner (detached sessions of their own) are terminated too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${DRIFTLOOP_STATE_DIR:-$ROOT/.driftloop}"
RUN="$STATE/run"
DOWN_TIMEOUT="${DOWN_TIMEOUT:-30}"

alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_group() {  # stop_group NAME PGID
  local name="$1" pgid="$2" waited=0
  if ! alive "$pgid"; then
    printf '%s: not running\n' "$name"
    return
  fi
  printf 'stopping %s (process group %s) ' "$name" "$pgid"
  kill -TERM -- "-$pgid" 2>/dev/null || true
  while alive "$pgid" && [ "$waited" -lt "$DOWN_TIMEOUT" ]; do
    printf '.'
    sleep 1
    waited=$((waited + 1))
  done
  if alive "$pgid"; then
    printf ' still running after %ss: SIGKILL' "$DOWN_TIMEOUT"
    kill -KILL -- "-$pgid" 2>/dev/null || true
    while alive "$pgid"; do sleep 0.2; done
  fi
  printf ' stopped\n'
}

for name in airflow serve mlflow; do
  pidfile="$RUN/$name.pid"
  [ -f "$pidfile" ] || continue
  stop_group "$name" "$(cat "$pidfile")"
  rm -f "$pidfile"
done

# Local retrain runs still going (no exit_code yet): mark them terminated, stop their groups.
if [ -d "$STATE/kfp-local/runs" ]; then
  for run_dir in "$STATE"/kfp-local/runs/*/; do
    if [ ! -f "$run_dir/run.json" ] || [ -f "$run_dir/exit_code" ]; then continue; fi
    pid="$(sed -n 's/.*"pid": \([0-9][0-9]*\).*/\1/p' "$run_dir/run.json" | head -n 1)"
    if [ -z "$pid" ] || ! alive "$pid"; then continue; fi
    date -u +%Y-%m-%dT%H:%M:%S+00:00 >"$run_dir/terminated"
    stop_group "retrain $(basename "$run_dir")" "$pid"
  done
fi
echo "driftloop local stack is down"
