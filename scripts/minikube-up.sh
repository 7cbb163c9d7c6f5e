#!/usr/bin/env bash
# Bring driftloop's cluster shape up on Minikube with one command:
#   start Minikube -> build the images into it -> apply k8s/overlays/minikube (PostgreSQL,
#   MLflow, serving) -> bootstrap the champion -> install Kubeflow Pipelines and upload the
#   retrain pipeline -> install Airflow (official Helm chart) -> print the URLs.
#
# Needs: minikube, kubectl; for the full install also helm (>= 3.19) and curl.
# Names and versions come from docker/images.env and k8s/versions.env; nothing is defined here.
#
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() {
  cat <<'USAGE'
usage: scripts/minikube-up.sh [--core] [--help]

  (default)  everything: PostgreSQL, MLflow, serving, Kubeflow Pipelines, Airflow.
             Minikube gets 10 GB of memory, 4 CPUs and a 40 GB disk.
  --core     PostgreSQL, MLflow and serving only (no KFP, no Airflow): fits the
             4 GB / 2 CPU Minikube this project started with.

Environment (optional):
  DRIFTLOOP_MINIKUBE_PROFILE   Minikube profile and kubectl context   (default: driftloop)
  DRIFTLOOP_MINIKUBE_MEMORY    memory in MB                           (default: 10240, --core 4096)
  DRIFTLOOP_MINIKUBE_CPUS      CPUs                                   (default: 4, --core 2)
  DRIFTLOOP_MINIKUBE_DISK      disk size                              (default: 40g, --core 20g)
  DRIFTLOOP_MINIKUBE_DRIVER    minikube --driver                      (default: minikube's choice)
  DRIFTLOOP_PIPELINE_PACKAGE   compiled retrain pipeline to upload    (default: kfp_pipelines/retrain_pipeline.yaml)

Re-running is safe: every step is an apply/upgrade; the champion is trained only once.
Tear down with scripts/minikube-down.sh.
USAGE
}

CORE_ONLY=0
while (($#)); do
  case "$1" in
    --core) CORE_ONLY=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "minikube-up: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=docker/images.env
. "$ROOT/docker/images.env"
# shellcheck source=k8s/versions.env
. "$ROOT/k8s/versions.env"

PROFILE="${DRIFTLOOP_MINIKUBE_PROFILE:-driftloop}"
if ((CORE_ONLY)); then
  MEMORY="${DRIFTLOOP_MINIKUBE_MEMORY:-4096}"
  CPUS="${DRIFTLOOP_MINIKUBE_CPUS:-2}"
  DISK="${DRIFTLOOP_MINIKUBE_DISK:-20g}"
  TOTAL_STEPS=6
else
  MEMORY="${DRIFTLOOP_MINIKUBE_MEMORY:-10240}"
  CPUS="${DRIFTLOOP_MINIKUBE_CPUS:-4}"
  DISK="${DRIFTLOOP_MINIKUBE_DISK:-40g}"
  TOTAL_STEPS=9
fi
PIPELINE_PACKAGE="${DRIFTLOOP_PIPELINE_PACKAGE:-kfp_pipelines/retrain_pipeline.yaml}"
PIPELINE_NAME=driftloop-retrain
NS=driftloop
KFP_LOCAL_PORT="${DRIFTLOOP_KFP_LOCAL_PORT:-18888}"

STEP=0
step() {
  STEP=$((STEP + 1))
  printf '\n==> [%d/%d] %s\n' "$STEP" "$TOTAL_STEPS" "$*"
}
die() {
  echo "minikube-up: error: $*" >&2
  exit 1
}
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"
}

kc() { kubectl --context "$PROFILE" "$@"; }

# Waits for a Job to succeed; on failure prints its logs and stops.
wait_job() {
  local ns="$1" job="$2" timeout_s="$3" waited=0 complete failed
  while ((waited < timeout_s)); do
    complete="$(kc -n "$ns" get job "$job" \
      -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}' 2>/dev/null || true)"
    failed="$(kc -n "$ns" get job "$job" \
      -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}' 2>/dev/null || true)"
    if [[ "$complete" == True ]]; then
      return 0
    fi
    if [[ "$failed" == True ]]; then
      kc -n "$ns" logs "job/$job" --tail=50 >&2 || true
      die "job $ns/$job failed (logs above)"
    fi
    sleep 5
    waited=$((waited + 5))
  done
  kc -n "$ns" logs "job/$job" --tail=50 >&2 || true
  die "job $ns/$job did not finish within ${timeout_s}s (logs above)"
}

# --- 1. tools and Minikube -------------------------------------------------------------------
step "checking tools and starting Minikube profile '$PROFILE' (${MEMORY} MB, ${CPUS} CPUs, Kubernetes $KUBERNETES_VERSION)"
need minikube "install it: https://minikube.sigs.k8s.io/docs/start/"
need kubectl "install it: https://kubernetes.io/docs/tasks/tools/"
if ((!CORE_ONLY)); then
  need helm "install Helm >= 3.19: https://helm.sh/docs/intro/install/ (or run with --core)"
  need curl "install curl (used to upload the pipeline to KFP's REST API)"
fi
if ((!CORE_ONLY)) && ((MEMORY < 10240 || CPUS < 4)); then
  echo "warning: ${MEMORY} MB / ${CPUS} CPUs is below what KFP + Airflow + driftloop need together" \
    "(10240 MB / 4 CPUs); pods may stay Pending or be OOM-killed. Use --core for the small setup." >&2
fi
start_args=(start -p "$PROFILE" --memory="$MEMORY" --cpus="$CPUS" --disk-size="$DISK"
  --kubernetes-version="$KUBERNETES_VERSION")
if [[ -n "${DRIFTLOOP_MINIKUBE_DRIVER:-}" ]]; then
  start_args+=(--driver="$DRIFTLOOP_MINIKUBE_DRIVER")
fi
minikube "${start_args[@]}"
minikube -p "$PROFILE" addons enable metrics-server

# --- 2. images -------------------------------------------------------------------------------
step "building the images inside Minikube (docker/images.env)"
build() {
  local image="$1" dockerfile="$2"
  echo "--- $image  ($dockerfile)"
  minikube -p "$PROFILE" image build -t "$image" -f "$dockerfile" .
}
build "$DRIFTLOOP_SERVING_IMAGE" docker/serving.Dockerfile
build "$DRIFTLOOP_TRAINER_IMAGE" docker/trainer.Dockerfile
if ((!CORE_ONLY)); then
  build "$DRIFTLOOP_AIRFLOW_IMAGE" docker/airflow.Dockerfile
fi

# --- 3. driftloop's manifests ----------------------------------------------------------------
step "applying k8s/overlays/minikube (PostgreSQL, MLflow, serving)"
kc apply -k k8s/overlays/minikube
kc -n "$NS" rollout status statefulset/postgres --timeout=600s
kc -n "$NS" rollout status deployment/mlflow --timeout=900s

# --- 4. the first champion -------------------------------------------------------------------
step "bootstrapping the champion (Job driftloop-bootstrap, trainer image)"
kc -n "$NS" delete job driftloop-bootstrap --ignore-not-found --wait=true
kc apply -f k8s/jobs/bootstrap.yaml
wait_job "$NS" driftloop-bootstrap 900
kc -n "$NS" logs job/driftloop-bootstrap --tail=20

# --- 5. serving ------------------------------------------------------------------------------
step "rolling out serving (ready once the champion is loaded)"
kc -n "$NS" rollout restart deployment/driftloop-serving
kc -n "$NS" rollout status deployment/driftloop-serving --timeout=600s

if ((!CORE_ONLY)); then
  # --- 6. Kubeflow Pipelines -------------------------------------------------------------------
  step "installing Kubeflow Pipelines $KFP_VERSION (standalone, platform-agnostic) in '$KFP_NAMESPACE'"
  kfp_manifests="github.com/kubeflow/pipelines/manifests/kustomize"
  kc apply -k "$kfp_manifests/cluster-scoped-resources?ref=$KFP_VERSION"
  kc wait --for condition=established --timeout=120s crd/applications.app.k8s.io
  kc apply -k "$kfp_manifests/env/platform-agnostic?ref=$KFP_VERSION"
  kc -n "$KFP_NAMESPACE" wait --for=condition=Available --timeout=1200s deployment --all
  # The settings ConfigMap and Secret the retrain pipeline's pods read in that namespace.
  kc apply -k k8s/overlays/minikube-kfp

  # --- 7. the retrain pipeline -----------------------------------------------------------------
  step "uploading the retrain pipeline ($PIPELINE_PACKAGE) as '$PIPELINE_NAME'"
  if [[ ! -f "$PIPELINE_PACKAGE" ]]; then
    echo "warning: $PIPELINE_PACKAGE does not exist: compile the pipeline first (see README," \
      "\"Retrain pipeline\"), then re-run this script; skipping the upload." >&2
  else
    kc -n "$KFP_NAMESPACE" port-forward svc/ml-pipeline "$KFP_LOCAL_PORT:8888" >/dev/null 2>&1 &
    pf_pid=$!
    trap 'kill "$pf_pid" 2>/dev/null || true' EXIT
    api="http://127.0.0.1:$KFP_LOCAL_PORT/apis/v2beta1"
    for _ in $(seq 1 30); do
      curl -fsS "$api/healthz" >/dev/null 2>&1 && break
      sleep 1
    done
    status="$(curl -sS -o /tmp/driftloop-kfp-upload.json -w '%{http_code}' \
      -F "uploadfile=@$PIPELINE_PACKAGE" "$api/pipelines/upload?name=$PIPELINE_NAME")"
    if [[ "$status" == 200 ]]; then
      echo "uploaded pipeline '$PIPELINE_NAME'"
    elif [[ "$status" == 409 ]]; then
      pipeline_id="$(curl -fsS "$api/pipelines?page_size=200" | python3 -c '
import json, sys
for p in json.load(sys.stdin).get("pipelines", []):
    if sys.argv[1] in (p.get("name"), p.get("display_name")):
        print(p["pipeline_id"])
        break
' "$PIPELINE_NAME")"
      [[ -n "$pipeline_id" ]] || die "KFP says '$PIPELINE_NAME' exists but does not list it"
      version="$PIPELINE_NAME-$(date -u +%Y%m%dt%H%M%S)"
      curl -fsS -o /dev/null -F "uploadfile=@$PIPELINE_PACKAGE" \
        "$api/pipelines/upload_version?pipelineid=$pipeline_id&name=$version"
      echo "uploaded a new version '$version' of pipeline '$PIPELINE_NAME'"
    else
      cat /tmp/driftloop-kfp-upload.json >&2 || true
      die "uploading the pipeline answered HTTP $status (response above)"
    fi
    kill "$pf_pid" 2>/dev/null || true
    trap - EXIT
  fi

  # --- 8. Airflow ------------------------------------------------------------------------------
  step "installing Airflow (official chart $AIRFLOW_CHART_VERSION) in '$AIRFLOW_NAMESPACE'"
  kc create namespace "$AIRFLOW_NAMESPACE" --dry-run=client -o yaml | kc apply -f -
  kc apply -f k8s/airflow/connections-secret.yaml
  helm repo add apache-airflow https://airflow.apache.org --force-update >/dev/null
  helm --kube-context "$PROFILE" upgrade --install airflow apache-airflow/airflow \
    --namespace "$AIRFLOW_NAMESPACE" --version "$AIRFLOW_CHART_VERSION" \
    -f k8s/airflow/values.yaml --wait --timeout 20m
fi

# --- URLs ------------------------------------------------------------------------------------
step "done"
ip="$(minikube -p "$PROFILE" ip)"
cat <<EOF
serving   http://$ip:30080        (e.g. curl http://$ip:30080/model)
MLflow    http://$ip:30500
admin     token: kubectl --context $PROFILE -n $NS get secret driftloop-serving -o jsonpath='{.data.admin-token}' | base64 -d
EOF
if ((!CORE_ONLY)); then
  cat <<EOF
Airflow   kubectl --context $PROFILE -n $AIRFLOW_NAMESPACE port-forward svc/airflow-api-server 8080:8080
          then http://127.0.0.1:8080  (user admin, password admin: the chart's default user)
KFP UI    kubectl --context $PROFILE -n $KFP_NAMESPACE port-forward svc/ml-pipeline-ui 8081:80
          then http://127.0.0.1:8081
EOF
fi
echo "(With the docker driver on macOS or Windows the node IP is not reachable: use"
echo " 'minikube -p $PROFILE service -n $NS driftloop-serving --url' instead.)"
