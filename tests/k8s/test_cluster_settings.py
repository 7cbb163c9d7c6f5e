"""The cluster shape, as each component would see it: the settings the dag-processor, the
scheduler, a task pod, a KFP step and the server derive from the rendered manifests and the
Airflow chart's values, and the steps that must run for the DAGs to schedule at all.

Nothing here talks to a cluster or renders the Helm chart (no helm here): the chart's
documented values (`env`, `extraEnvFrom`, `scheduler.args`, `logs.persistence`) are read
as the chart applies them to every Airflow container.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from driftloop import naming
from driftloop.settings import Settings
from tests.k8s.conftest import K8S, ROOT, container, find, load_docs
from tests.k8s.test_contracts import configmap_env

VALUES = load_docs(K8S / "airflow" / "values.yaml")[0]
(CONNECTIONS,) = load_docs(K8S / "airflow" / "connections-secret.yaml")
#: Where the chart mounts the logs volume in every Airflow container.
AIRFLOW_LOGS = Path("/opt/airflow/logs")


def airflow_env() -> dict[str, str]:
    """What every Airflow container (dag-processor, scheduler, task pods) gets: the chart's
    `env` list and the connections Secret of `extraEnvFrom`."""
    env = {e["name"]: e["value"] for e in VALUES["env"]}
    env.update(CONNECTIONS["stringData"])
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("DRIFTLOOP_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_airflow_components_deploy_with_kubernetes(monkeypatch: pytest.MonkeyPatch,
                                                   overlay: list[dict]) -> None:
    """The HPA runs 2+ serving replicas: a local hot reload would reach one pod (and the
    server refuses it), so the Airflow side must default to patching the Deployment."""
    hpa = next(d for d in overlay if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] >= 2
    assert settings_from(airflow_env(), monkeypatch).deploy_target == "kubernetes"


def test_the_dag_processor_parses_kubernetes_as_the_deploy_default(tmp_path: Path) -> None:
    """The DAGs' `deploy_target` param is read when the dag-processor parses the files, from
    the environment the chart gives it."""
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "for dag_id in sorted(bag.dags):\n"
        "    print('DEFAULT', dag_id, bag.dags[dag_id].params['deploy_target'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLOOP_", "AIRFLOW"))}
    env.update(airflow_env(), AIRFLOW_HOME=str(tmp_path),
               DRIFTLOOP_STATE_DIR=str(tmp_path / "state"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    defaults = [ln.split()[1:] for ln in out.stdout.splitlines() if ln.startswith("DEFAULT")]
    assert defaults == [["driftloop_drift_monitor", "kubernetes"],
                        ["driftloop_live_gate", "kubernetes"],
                        ["driftloop_manual_promotion", "kubernetes"],
                        ["driftloop_weekly_retrain", "kubernetes"]]


def test_task_logs_and_reports_outlive_their_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    """KubernetesExecutor deletes a task's pod when it ends: its log and the validation
    report must be on the persisted logs volume."""
    assert VALUES["executor"] == "KubernetesExecutor"
    assert VALUES["logs"]["persistence"]["enabled"] is True
    state = settings_from(airflow_env(), monkeypatch).state_dir
    assert state.is_relative_to(AIRFLOW_LOGS), "reports go under <state_dir>/reports/airflow"
    dag = (ROOT / "dags" / "driftloop_drift_monitor.py").read_text()
    assert 'report_dir=str(settings.state_dir / "reports" / "airflow")' in dag


def test_the_scheduler_applies_the_declared_pools_before_it_starts() -> None:
    """Airflow never schedules a task whose pool does not exist: the scheduler's start
    command applies resources.yaml first, from the driftloop wheel the image installs."""
    from driftloop_airflow.resources import DECLARATION, load

    (script,) = [a for a in VALUES["scheduler"]["args"] if "airflow scheduler" in a]
    steps = [shlex.split(s) for s in script.split("&&")]
    assert steps[0] == ["python", "-m",
                        "driftloop_airflow.resources", "apply"]
    assert steps[-1] == ["exec", "airflow", "scheduler"]
    dockerfile = (ROOT / "docker" / "airflow.Dockerfile").read_text()
    assert "COPY driftloop_airflow ./driftloop_airflow" in dockerfile
    assert DECLARATION.is_relative_to(ROOT / "driftloop_airflow")
    assert "driftloop_airflow" in tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "driftloop_retrain" in load().pools
    # The connections it checks are the ones the Secret supplies.
    declared = {f"AIRFLOW_CONN_{c.upper()}" for c in load().connections}
    assert declared == set(CONNECTIONS["stringData"])


def test_every_component_reads_the_same_log_registry_and_server(
    monkeypatch: pytest.MonkeyPatch, overlay: list[dict], kfp_overlay: list[dict]
) -> None:
    """The server writes the log the KFP steps train from, both use one MLflow, and the
    deploy step patches the Deployment the Service routes to."""
    serving = container(find(overlay, "Deployment", naming.SERVING_DEPLOYMENT),
                        naming.SERVING_CONTAINER)
    env = configmap_env(overlay, serving)
    env.update({e["name"]: e["value"] for e in serving["env"] if "value" in e})
    pg = find(overlay, "Secret", "driftloop-postgres")["stringData"]
    env["POSTGRES_USER"], env["POSTGRES_PASSWORD"] = pg["username"], pg["password"]
    env = {k: v.replace("$(POSTGRES_USER)", pg["username"]).replace(
        "$(POSTGRES_PASSWORD)", pg["password"]) for k, v in env.items()}
    token = find(overlay, "Secret", "driftloop-serving")["stringData"]["admin-token"]
    env["DRIFTLOOP_ADMIN_TOKEN"] = token
    server = settings_from(env, monkeypatch)

    step_env = dict(find(kfp_overlay, "ConfigMap", "driftloop-settings")["data"])
    step_env.update(find(kfp_overlay, "Secret", "driftloop-pipeline")["stringData"])
    step = settings_from(step_env, monkeypatch)
    assert step.log_url == server.log_url
    assert step.tracking_uri == server.tracking_uri
    assert step.admin_token.get_secret_value() == token
    assert (step.model_name or "") == (server.model_name or "")
    served = urlsplit(step.server_url)
    assert served.hostname == f"{naming.SERVING_DEPLOYMENT}.{naming.NAMESPACE}.svc"
