"""Airflow Helm values and connections, the KFP pins, the compiled pipeline's images, CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop import naming
from tests.k8s.conftest import (
    BIN,
    K8S,
    ROOT,
    SCRIPTS,
    VERSIONS,
    find,
    load_docs,
    pinned,
    pyproject,
)

VALUES = load_docs(K8S / "airflow" / "values.yaml")[0]
(CONNECTIONS,) = load_docs(K8S / "airflow" / "connections-secret.yaml")
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yaml"


# --- Airflow ---------------------------------------------------------------------------------


def test_airflow_runs_our_image_with_the_kubernetes_executor() -> None:
    repository, tag = naming.images()["DRIFTLOOP_AIRFLOW_IMAGE"].split(":")
    assert VALUES["executor"] == "KubernetesExecutor"
    assert (VALUES["images"]["airflow"]["repository"], VALUES["images"]["airflow"]["tag"]) == \
        (repository, tag)
    assert (VALUES["defaultAirflowRepository"], VALUES["defaultAirflowTag"]) == (repository, tag)
    assert VALUES["images"]["useDefaultImageForMigration"] is False


def test_dags_are_baked_in_and_examples_are_off() -> None:
    assert VALUES["dags"]["gitSync"]["enabled"] is False
    assert VALUES["dags"]["persistence"]["enabled"] is False
    assert VALUES["config"]["core"]["load_examples"] == "False"
    assert {"name": "AIRFLOW__CORE__LOAD_EXAMPLES", "value": "False"} in VALUES["env"]


def test_helm_wait_is_paired_with_hookless_jobs() -> None:
    assert "--wait" in (SCRIPTS / "minikube-up.sh").read_text()
    for job in ("migrateDatabaseJob", "createUserJob"):
        assert VALUES[job]["useHelmHooks"] is False, job


def test_connections_come_from_the_secret_in_the_airflow_namespace() -> None:
    sources = yaml.safe_load(VALUES["extraEnvFrom"])
    assert sources == [{"secretRef": {"name": CONNECTIONS["metadata"]["name"]}}]
    assert CONNECTIONS["metadata"]["namespace"] == VERSIONS["AIRFLOW_NAMESPACE"]
    assert set(CONNECTIONS["stringData"]) == {"AIRFLOW_CONN_DRIFTLOOP_SERVING",
                                              "AIRFLOW_CONN_DRIFTLOOP_KFP"}


def airflow_connections(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The Secret's values read by Airflow's own environment-variables secrets backend."""
    code = (
        "import json\n"
        "from airflow.secrets.environment_variables import EnvironmentVariablesBackend\n"
        "out = {}\n"
        "for cid in ('driftloop_serving', 'driftloop_kfp'):\n"
        "    c = EnvironmentVariablesBackend().get_connection(cid)\n"
        "    out[cid] = dict(conn_type=c.conn_type, host=c.host, port=c.port, "
        "schema=c.schema, password=c.password)\n"
        "print('RESULT ' + json.dumps(out))\n"
    )
    env = {**os.environ, **CONNECTIONS["stringData"], "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def test_airflow_parses_the_connections_to_the_right_services(
    tmp_path: Path, overlay: list[dict]
) -> None:
    conns = airflow_connections(tmp_path)
    serving = conns["driftloop_serving"]
    service = find(overlay, "Service", naming.SERVING_DEPLOYMENT)
    assert serving["conn_type"] == "http" and serving["schema"] == "http"
    assert serving["host"] == f"{service['metadata']['name']}.{naming.NAMESPACE}.svc"
    assert serving["port"] == service["spec"]["ports"][0]["port"] == naming.SERVING_PORT
    token = find(overlay, "Secret", "driftloop-serving")["stringData"]["admin-token"]
    assert serving["password"] == token, "Airflow's token must be the server's admin token"
    kfp = conns["driftloop_kfp"]
    assert (kfp["conn_type"], kfp["host"], kfp["port"]) == \
        ("http", f"ml-pipeline.{VERSIONS['KFP_NAMESPACE']}.svc", 8888)


# --- KFP -------------------------------------------------------------------------------------


def test_kfp_backend_and_sdk_are_the_same_release() -> None:
    sdk = pinned("kfp", pyproject()["project"]["optional-dependencies"]["pipelines"])
    assert VERSIONS["KFP_VERSION"] == sdk
    assert f"kfp=={sdk}" in (K8S / "kfp" / "README.md").read_text()


def test_the_compiled_pipeline_runs_on_the_trainer_image() -> None:
    package = ROOT / "kfp_pipelines" / "retrain_pipeline.yaml"
    if not package.exists():
        pytest.skip("kfp_pipelines/retrain_pipeline.yaml is not compiled yet (README, "
                    "\"Retrain pipeline\")")
    docs = list(yaml.safe_load_all(package.read_text()))
    executors = docs[0]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {naming.images()["DRIFTLOOP_TRAINER_IMAGE"]}


# --- CI --------------------------------------------------------------------------------------


def test_the_workflow_validates_against_githubs_schema() -> None:
    out = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema",
                          "vendor.github-workflows", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_workflow_runs_the_readmes_test_command_with_postgres() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["test"]
    runs = [s.get("run", "") for s in job["steps"]]
    assert "make test" in runs
    assert "`make test`" in (ROOT / "README.md").read_text()
    python = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    assert python and python[0]["with"]["python-version"] == "3.11"
    postgres = job["services"]["postgres"]
    url = job["env"]["DRIFTLOOP_TEST_PG_URL"]
    assert url.endswith("/" + postgres["env"]["POSTGRES_DB"])
    assert url.startswith("postgresql://postgres@127.0.0.1:5432/")
    assert "5432:5432" in postgres["ports"]
    assert job["timeout-minutes"] <= 90


# --- what the retrain pipeline's pods read in the KFP namespace -----------------------------


def test_the_kfp_hook_submits_the_package_baked_into_the_airflow_image() -> None:
    extra = json.loads(CONNECTIONS["stringData"]["AIRFLOW_CONN_DRIFTLOOP_KFP"])["extra"]
    dockerfile = (ROOT / "docker" / "airflow.Dockerfile").read_text()
    script = (SCRIPTS / "minikube-up.sh").read_text()
    default_package = "kfp_pipelines/retrain_pipeline.yaml"
    assert f"COPY --chown=airflow:0 {default_package} {extra['pipeline_package']}" in dockerfile
    assert f"DRIFTLOOP_PIPELINE_PACKAGE:-{default_package}" in script


def test_the_pipeline_finds_its_settings_and_credentials(
    kfp_overlay: list[dict], overlay: list[dict]
) -> None:
    pipeline = pytest.importorskip("kfp_pipelines.retrain_pipeline",
                                   reason="the retrain pipeline (kfp_pipelines) is absent")
    for doc in kfp_overlay:
        assert doc["metadata"]["namespace"] == VERSIONS["KFP_NAMESPACE"]
    configmap = find(kfp_overlay, "ConfigMap", pipeline.SETTINGS_CONFIG_MAP)
    assert configmap["data"] == find(overlay, "ConfigMap", pipeline.SETTINGS_CONFIG_MAP)["data"]
    wanted = {"DRIFTLOOP_MLFLOW_TRACKING_URI", "DRIFTLOOP_MODEL_NAME", "DRIFTLOOP_SPEC_PATH"}
    assert wanted <= set(configmap["data"]) & set(pipeline.SETTINGS_FROM_CONFIG_MAP)

    secret = find(kfp_overlay, "Secret", pipeline.SETTINGS_SECRET)["stringData"]
    assert set(secret) == set(pipeline.SETTINGS_FROM_SECRET)
    pg = find(overlay, "Secret", "driftloop-postgres")["stringData"]
    serving = find(overlay, "Deployment", naming.SERVING_DEPLOYMENT)
    (url_template,) = [e["value"] for c in serving["spec"]["template"]["spec"]["containers"]
                       for e in c["env"] if e["name"] == "DRIFTLOOP_PREDICTION_LOG_URL"]
    composed = url_template.replace("$(POSTGRES_USER)", pg["username"]).replace(
        "$(POSTGRES_PASSWORD)", pg["password"])
    assert secret["DRIFTLOOP_PREDICTION_LOG_URL"] == composed, \
        "the pipeline must read the prediction log the server writes"
    token = find(overlay, "Secret", "driftloop-serving")["stringData"]["admin-token"]
    assert secret["DRIFTLOOP_ADMIN_TOKEN"] == token


# --- the manual promote/rollback DAG's pod (driftloop_airflow.hooks.driftloop_cli) ----------


def test_the_manual_action_pod_can_run_and_be_started(overlay: list[dict]) -> None:
    """The pod runs in the trainer image as `driftloop-promoter`, which holds the deploy Role
    and nothing else; Airflow's worker account may start, follow and delete pods there."""
    extra = json.loads(CONNECTIONS["stringData"]["AIRFLOW_CONN_DRIFTLOOP_KFP"])["extra"]
    assert extra["trainer_image"] == naming.images()["DRIFTLOOP_TRAINER_IMAGE"]
    account = find(overlay, "ServiceAccount", naming.PROMOTER_SERVICE_ACCOUNT)
    assert account["metadata"]["namespace"] == naming.NAMESPACE
    promoter = find(overlay, "RoleBinding", "driftloop-promoter-deployer")
    assert promoter["roleRef"]["name"] == "driftloop-serving-deployer"
    assert promoter["subjects"] == [{"kind": "ServiceAccount",
                                     "name": naming.PROMOTER_SERVICE_ACCOUNT,
                                     "namespace": naming.NAMESPACE}]
    starter = find(overlay, "RoleBinding", "driftloop-manual-actions")
    assert starter["subjects"] == [{"kind": "ServiceAccount", "name": "airflow-worker",
                                    "namespace": VERSIONS["AIRFLOW_NAMESPACE"]}]
    rules = {(r, v) for rule in find(overlay, "Role", "driftloop-manual-actions")["rules"]
             for r in rule["resources"] for v in rule["verbs"]}
    assert {("pods", "create"), ("pods", "delete"), ("pods/log", "get"),
            ("pods/exec", "create")} <= rules
    assert not {r for r, _ in rules} & {"deployments", "secrets", "configmaps"}
    values = (K8S / "airflow" / "values.yaml").read_text()
    assert "executor: KubernetesExecutor" in values  # task pods run as airflow-worker
