#!/usr/bin/env bash
# `make up`: the local stack, each part in its own process group (pids in <state>/run/, logs
# in <state>/logs/): the MLflow UI on the local store, the driftloop server (after an
# idempotent bootstrap), and `airflow standalone` on dags/ (driftloop_airflow is installed) with the connections
# preconfigured. Waits until each answers, then prints the URLs and the Airflow login.
# Parts already running are left alone. `make down` (scripts/local-down.sh) stops them all.
#
# Settings (environment):
#   DRIFTLOOP_STATE_DIR        local state (default: .driftloop)
#   MLFLOW_PORT, SERVE_PORT, AIRFLOW_PORT   5000, 8000, 8080
#   AIRFLOW_LOG_PORTS          "8793 8794" (the worker's and the triggerer's log servers)
#   DRIFTLOOP_ADMIN_TOKEN      the server's admin token (default: generated once into
#                              <state>/admin-token)
#   DRIFTLOOP_AIRFLOW_PASSWORD Airflow's admin password (default: driftloop)
#   DRIFTLOOP_AIRFLOW_DB_URL   Airflow metadata DB (default: SQLite in <state>/airflow), e.g.
#                              postgresql://user:pass@host:5432/airflow (psycopg 3)
#   UP_TIMEOUT                 seconds to wait for each part (default: 300)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${VENV:-$ROOT/.venv}/bin"
STATE="${DRIFTLOOP_STATE_DIR:-$ROOT/.driftloop}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
RUN="$STATE/run"
LOGS="$STATE/logs"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
SERVE_PORT="${SERVE_PORT:-8000}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
read -r -a LOG_PORTS <<<"${AIRFLOW_LOG_PORTS:-8793 8794}"
AIRFLOW_DIR="$STATE/airflow"
AIRFLOW_PASSWORD="${DRIFTLOOP_AIRFLOW_PASSWORD:-driftloop}"
UP_TIMEOUT="${UP_TIMEOUT:-300}"
mkdir -p "$RUN" "$LOGS" "$AIRFLOW_DIR"

say() { printf '%s\n' "$*"; }
die() { printf 'make up: error: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN/driftloop" ] || die "no environment in ${BIN%/bin}: run \`make env\` first"

running() {  # running NAME: its process group is alive
  local pidfile="$RUN/$1.pid"
  [ -f "$pidfile" ] && kill -0 -- "-$(cat "$pidfile")" 2>/dev/null
}

port_free() {
  "$BIN/python" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

need_port() {  # need_port PORT VARIABLE WHAT
  port_free "$1" || die "port $1 ($3) is taken by another program: stop it, or pick another port with $2=<port>"
}

start() {  # start NAME COMMAND...: a new session (process group) of its own
  local name="$1"
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

wait_for() {  # wait_for NAME URL [PYTHON-CHECK]: until URL answers (and the check passes)
  local name="$1" url="$2" check="${3:-}" waited=0
  printf 'waiting for %s at %s ' "$name" "$url"
  until "$BIN/python" - "$url" "$check" <<'PY' 2>/dev/null; do
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
    body = response.read()
if sys.argv[2]:
    data = json.loads(body)
    sys.exit(0 if eval(sys.argv[2]) else 1)
PY
    if ! running "$name"; then
      printf '\n'
      tail -n 25 "$LOGS/$name.log" >&2 || true
      die "$name exited while starting (log: $LOGS/$name.log)"
    fi
    if [ "$waited" -ge "$UP_TIMEOUT" ]; then
      printf '\n'
      tail -n 25 "$LOGS/$name.log" >&2 || true
      die "$name did not answer within ${UP_TIMEOUT}s (log: $LOGS/$name.log); \`make down\` stops what started"
    fi
    printf '.'
    sleep 2
    waited=$((waited + 2))
  done
  printf ' up (%ss)\n' "$waited"
}

export DRIFTLOOP_STATE_DIR="$STATE"
if [ -z "${DRIFTLOOP_ADMIN_TOKEN:-}" ]; then
  if [ ! -s "$STATE/admin-token" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$STATE/admin-token")
  fi
  DRIFTLOOP_ADMIN_TOKEN="$(cat "$STATE/admin-token")"
fi
export DRIFTLOOP_ADMIN_TOKEN
SERVER_URL="http://127.0.0.1:$SERVE_PORT"
export DRIFTLOOP_SERVER_URL="$SERVER_URL"

# --- fail fast on a taken port (parts already running keep theirs) ------------------------
running mlflow || need_port "$MLFLOW_PORT" MLFLOW_PORT "MLflow UI"
running serve || need_port "$SERVE_PORT" SERVE_PORT "driftloop server"
if ! running airflow; then
  need_port "$AIRFLOW_PORT" AIRFLOW_PORT "Airflow API server"
  need_port "${LOG_PORTS[0]}" AIRFLOW_LOG_PORTS "Airflow worker log server"
  need_port "${LOG_PORTS[1]}" AIRFLOW_LOG_PORTS "Airflow triggerer log server"
fi

# --- the first champion (idempotent) ------------------------------------------------------
say "champion: driftloop bootstrap (leaves an existing champion alone)"
"$BIN/driftloop" bootstrap >"$LOGS/bootstrap.log" 2>&1 \
  || { tail -n 20 "$LOGS/bootstrap.log" >&2; die "bootstrap failed (log: $LOGS/bootstrap.log)"; }

# --- MLflow UI ------------------------------------------------------------------------------
if running mlflow; then
  say "mlflow: already running (pid $(cat "$RUN/mlflow.pid"))"
else
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false start mlflow "$BIN/mlflow" ui \
    --backend-store-uri "sqlite:///$STATE/mlflow.db" --host 127.0.0.1 --port "$MLFLOW_PORT"
fi

# --- the driftloop server -------------------------------------------------------------------
if running serve; then
  say "serve: already running (pid $(cat "$RUN/serve.pid"))"
else
  start serve "$BIN/driftloop" serve --host 127.0.0.1 --port "$SERVE_PORT"
fi

# --- Airflow --------------------------------------------------------------------------------
env_args=(--home "$AIRFLOW_DIR" --state-dir "$STATE" --api-port "$AIRFLOW_PORT"
          --log-ports "${LOG_PORTS[0]}" "${LOG_PORTS[1]}" --server-url "$SERVER_URL"
          --token "$DRIFTLOOP_ADMIN_TOKEN" --python "$BIN/python")
[ -n "${DRIFTLOOP_AIRFLOW_DB_URL:-}" ] && env_args+=(--db-url "$DRIFTLOOP_AIRFLOW_DB_URL")
exports="$("$BIN/python" -m driftloop_airflow.localenv "${env_args[@]}")"
eval "$exports"
export PATH="$BIN:$PATH"  # airflow standalone starts its parts as `airflow ...`
if running airflow; then
  say "airflow: already running (pid $(cat "$RUN/airflow.pid"))"
else
  # SimpleAuthManager reads the admin's password from this file (standalone keeps it).
  printf '{"admin": "%s"}\n' "$AIRFLOW_PASSWORD" >"$AIRFLOW_DIR/passwords.json"
  # Pools, variables and connection checks: driftloop_airflow/resources.yaml, the
  # declaration every shape applies.
  say "airflow: migrating the metadata DB and applying driftloop_airflow/resources.yaml"
  # --store-connections: the two connections go into the metadata DB (Admin -> Connections
  # lists them, and an edit there takes effect), rewritten from these settings at each start.
  { airflow db migrate \
      && "$BIN/python" -m driftloop_airflow.resources apply --store-connections; } \
    >"$LOGS/airflow-setup.log" 2>&1 \
    || { tail -n 20 "$LOGS/airflow-setup.log" >&2; die "Airflow setup failed (log: $LOGS/airflow-setup.log)"; }
  # Environment connections would shadow the stored ones (Airflow reads the environment first).
  start airflow env -u AIRFLOW_CONN_DRIFTLOOP_SERVING -u AIRFLOW_CONN_DRIFTLOOP_KFP airflow standalone
fi

wait_for mlflow "http://127.0.0.1:$MLFLOW_PORT/health"
wait_for serve "$SERVER_URL/ready"
wait_for airflow "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" \
  "all(data[k]['status'] == 'healthy' for k in ('metadatabase', 'scheduler', 'triggerer', 'dag_processor'))"

cat <<EOF

driftloop is up (state: $STATE):
  MLflow UI        http://127.0.0.1:$MLFLOW_PORT
  driftloop API    $SERVER_URL/docs   (admin token: DRIFTLOOP_ADMIN_TOKEN or $STATE/admin-token)
  Airflow          http://127.0.0.1:$AIRFLOW_PORT   login: admin / $AIRFLOW_PASSWORD
  logs             $LOGS/
Stop everything with: make down
EOF
