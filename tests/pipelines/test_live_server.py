"""The retrain pipeline and LocalDeployer against a running ``driftloop serve`` process.

Traffic goes through the real API (``/predict`` then ``/feedback``) into the real prediction
log; the pipeline runs through KFP's local runner as Airflow runs it; the server is
hot-swapped through ``POST /admin/reload``. The server's PYTHONPATH lacks the test
estimators, so a version trained with one registers fine but cannot be served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.deploy import DeployError, LocalDeployer
from tests.pipelines.conftest import (
    MODEL,
    PETAL_SHIFT,
    LocalLoop,
    Server,
    assert_retrain_artifacts,
    iris_rows,
    iris_spec_with,
    make_loop,
    running_server,
    window_after,
)
from tests.processes import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def module_loop(champion_template: Path,
                tmp_path_factory: pytest.TempPathFactory) -> LocalLoop:
    return make_loop(champion_template, tmp_path_factory.mktemp("live-deployer"))


@pytest.fixture(scope="module")
def module_server(module_loop: LocalLoop,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(module_loop, tmp_path_factory.mktemp("logs")) as server:
        yield server


@pytest.fixture
def server(loop: LocalLoop, tmp_path: Path) -> Iterator[Server]:
    with running_server(loop, tmp_path) as server:
        yield server


# --- LocalDeployer against the real server ------------------------------------------------


def test_local_deployer_swaps_versions_on_the_real_server(
    module_loop: LocalLoop, module_server: Server,
) -> None:
    from driftloop.bootstrap import bootstrap

    bootstrap(module_loop.settings, force=True)  # v2, champion
    deployer = LocalDeployer(module_server.url, module_server.token, timeout_s=60)

    result = deployer.deploy("2")
    assert (result.status, result.version, result.previous) == ("deployed", "2", "1")
    assert module_server.served_version() == "2"
    assert deployer.deploy("2").status == "unchanged"
    back = deployer.deploy("1")
    assert (back.status, back.previous) == ("deployed", "2")
    assert module_server.served_version() == "1"


def test_local_deployer_refusals_leave_the_served_version(
    module_loop: LocalLoop, module_server: Server,
) -> None:
    served = module_server.served_version()
    wrong = LocalDeployer(module_server.url, "not-the-token", timeout_s=5)
    with pytest.raises(DeployError, match=r"answered 403: the admin token was refused"):
        wrong.deploy("1")
    right = LocalDeployer(module_server.url, module_server.token, timeout_s=5)
    with pytest.raises(DeployError, match=r"answered 404: the server's registry has no such "
                                          r"version .*; version \d+ keeps serving"):
        right.deploy("99")
    assert module_server.served_version() == served


# --- the whole pipeline, deploy=local ---------------------------------------------------


def _drift_retrain_promotes(loop: LocalLoop, server: Server) -> tuple[tuple[str, ...], dict]:
    """Steps 1 and 2 of the whole loop (drifted traffic, then a retrain that promotes and
    serves v2), asserted; returns the run's parameters and summary."""
    # 1. Drifted traffic through the API, labeled through /feedback.
    served = server.predict_and_label(iris_rows(240, seed=1, shift=PETAL_SHIFT))
    drifted = iris_rows(240, seed=1, shift=PETAL_SHIFT)["species"].tolist()
    before_accuracy = sum(a == b for a, b in zip(served, drifted, strict=True)) / len(served)
    assert before_accuracy < 0.6  # the champion is lost on the new sensor readings
    # The latest window, once the log holds every served row (the writer flushes in the
    # background: a busy machine can lag).
    wait_until(lambda: server.get("/drift/status").json()["window"]["rows"] >= 240,
               "240 served rows in the latest window", timeout=60, interval=0.2)
    status = server.get("/drift/status").json()
    assert status["dataset_drift"] is True, status
    start, end = window_after(minutes=10)
    params = ("trigger=drift", f"window_start={start}", f"window_end={end}",
              "airflow_run_id=scheduled__2026-03-01T10:00:00+00:00", "deploy_target=local")

    # 2. Retrain: the gate passes on the fresh rows, v2 is champion and is served.
    summary, proc = loop.run_pipeline(*params)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert summary["status"] == "succeeded"
    assert (summary["champion_before"], summary["champion_after"]) == ("1", "2")
    assert summary["promoted"] is True and summary["new_version"] == "2"
    gate = summary["gate"]
    assert gate["passed"] is True and gate["holdout"] == "fresh labeled"
    assert float(gate["challenger"]) >= 0.9 > 0.6 > float(gate["champion"])
    assert int(gate["holdout_rows"]) >= 30
    assert server.served_version() == "2"
    assert loop.alias("champion") == "2" and loop.alias("previous") == "1"
    tags = loop.versions()["2"]
    assert tags["trigger"] == "drift" and tags["retrain_outcome"] == "promoted"
    assert tags["airflow_run_id"] == "scheduled__2026-03-01T10:00:00+00:00"
    assert tags["window_start"] == start.replace("Z", "+00:00")
    assert tags["kfp_run_name"] == summary["kfp_run_name"]
    assert tags["kfp_run_id"] == summary["kfp_run_id"]
    assert summary["artifacts"].endswith("/" + summary["kfp_run_name"])
    # The new model gets the drifted readings right.
    fresh = iris_rows(200, seed=5, shift=PETAL_SHIFT)
    now_served = server.post("/predict", {"records": fresh.drop(columns="species")
                                          .to_dict("records")}).json()
    assert now_served["model"]["version"] == "2"
    hits = sum(p["label"] == t for p, t in zip(now_served["predictions"], fresh["species"],
                                                 strict=True))
    assert hits / len(fresh) >= 0.9

    assert_retrain_artifacts(summary, production_rows=240)
    return params, summary


@pytest.mark.full
def test_drift_retrain_serves_the_new_champion(loop: LocalLoop, server: Server) -> None:
    """The run-local form (make test-full) of what make test runs through Airflow
    (tests/airflow/test_dag_runs.py: drift, a KFP local run, v2 promoted and hot-swapped,
    the same artifacts checked) and the demo."""
    _drift_retrain_promotes(loop, server)


@pytest.mark.full
def test_a_version_the_server_cannot_load_rolls_back_to_the_served_champion(
    loop: LocalLoop, server: Server, tmp_path: Path,
) -> None:
    """The whole-run form (make test-full: two KFP runs) of what make test checks by step:
    the server's 422 on a version it cannot load (tests/serving/test_admin_reload.py), the
    deployer naming it (tests/unit/test_deploy.py) and the aliases put back
    (tests/pipelines/test_steps.py)."""
    params, _ = _drift_retrain_promotes(loop, server)
    start, end = (p.partition("=")[2] for p in params[1:3])

    # 3. A version the server cannot load: registered, promoted, refused on reload ->
    #    the aliases go back and v2 keeps serving.
    spec = iris_spec_with(tmp_path / "unservable.yaml",
                          "driftloop_test_estimators.UnservableForest",
                          "{n_estimators: 100, random_state: 42}")
    # A margin of 1: the paired gate passes a forest no better than v2 (same data), so
    # that the deploy is what fails.
    broken, proc = loop.run_pipeline(
        f"spec={spec}", "trigger=manual", f"window_start={start}", f"window_end={end}",
        "airflow_run_id=manual__broken", "deploy_target=local", "max_regression=1")
    assert proc.returncode == 1
    assert broken["status"] == "failed" and broken["failed_step"] == "deploy_model"
    assert broken["gate"]["passed"] is True and broken["new_version"] == "3"
    assert "answered 422: the server could not load or warm that version" in broken["error"]
    assert "version 2 keeps serving" in broken["error"]
    assert broken["error"].endswith("champion alias restored to v2")
    assert (broken["champion_before"], broken["champion_after"]) == ("2", "2")
    assert loop.alias("champion") == "2" and loop.alias("previous") == "1"
    assert loop.versions()["3"]["retrain_outcome"] == "rolled_back"
    assert server.served_version() == "2"
    assert server.post("/predict", {"features": [5.1, 3.5, 2.9, 0.8]}).json()["model"] == \
        {"name": MODEL, "version": "2"}


@pytest.mark.full
def test_the_same_run_again_registers_and_promotes_nothing(loop: LocalLoop,
                                                            server: Server) -> None:
    """The whole-run form of tests/pipelines/test_steps.py::
    test_register_promotes_once_per_run_key (make reliability: one more KFP run)."""
    params, summary = _drift_retrain_promotes(loop, server)

    # The same run again: nothing registered, nothing promoted, still served.
    again, proc = loop.run_pipeline(*params)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert again["status"] == "succeeded"
    assert again["run_key"] == summary["run_key"]
    assert (again["champion_before"], again["champion_after"]) == ("2", "2")
    assert again["promoted"] is False and again["new_version"] is None
    assert again["version"] == "2"
    assert again["kfp_run_name"] != summary["kfp_run_name"]  # this run's, not v2's
    assert sorted(loop.versions()) == ["1", "2"]
    assert loop.alias("previous") == "1"
    assert "already promoted as v2 (still champion" in proc.stderr
    assert server.served_version() == "2"


def test_driftloop_rollback_makes_the_running_server_answer_with_the_previous_version(
    loop: LocalLoop, server: Server,
) -> None:
    """What a person on call runs: ``driftloop rollback`` against the running server (its
    URL and admin token from the environment), then ``driftloop status``."""
    import subprocess
    import sys

    from driftloop.bootstrap import bootstrap
    from driftloop.settings import PROJECT_ROOT

    bootstrap(loop.settings, force=True)  # v2 is champion, v1 previous
    LocalDeployer(server.url, server.token, timeout_s=60).deploy("2")
    assert server.served_version() == "2"

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "driftloop", *argv], env=loop.env,
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)

    done = cli("rollback", "--reason", "v2 answers late", "--by", "oncall")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ("rollback: v1 is champion of iris-classifier (was "
                                           "v2; previous now v2)")
    assert server.served_version() == "1"
    answer = server.post("/predict", {"features": [5.1, 3.5, 1.4, 0.2]}).json()
    assert answer["model"] == {"name": MODEL, "version": "1"}
    state = json.loads(cli("status", "--json").stdout)
    assert state["server"]["version"] == "1"
    assert state["aliases"]["champion"]["version"] == "1"
    assert state["aliases"]["champion"]["promoted_by"].startswith("rollback by oncall at ")
    assert state["aliases"]["previous"]["rolled_back"].endswith(": v2 answers late")
    # Said in words too.
    text = cli("status").stdout
    assert f"server:      {server.url} serves v1 (onnx)" in text
